"""``/v1/requests``: submit, read, list, history, cancel."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, Query, Request, Response

from app.api.auth import ReaderDep, SubmitterDep, deny, hide_unless_owner
from app.api.deps import ServicesDep
from app.api.problems import ERROR_RESPONSES, ApiError
from app.api.schemas import (
    BatchItemResult,
    CancelBody,
    HistoryPublic,
    RequestBatchCreate,
    RequestBatchResult,
    RequestCreate,
    RequestPublic,
    RequestsPage,
)
from app.auth.keys import Role
from app.database.types import utcnow
from app.orchestrator.engine import SubmitSpec
from app.orchestrator.exceptions import IdempotencyConflict, InvalidRequest, QueueFull
from app.orchestrator.states import State
from app.orchestrator.submit import Outcome
from app.orchestrator.views import RequestView
from app.orchestrator.watch import wait_for_change
from app.validation import FieldProblem, IsoDateTime

router = APIRouter(prefix="/v1", tags=["requests"], responses=ERROR_RESPONSES)

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Retry-safe submission: the same key and payload return the same request.",
    ),
]


WaitSeconds = Annotated[
    float,
    Query(
        ge=0,
        le=60,
        description="Long poll: answer at once when the request has finished or waits for a "
        "person (awaiting_approval, escalated), else when its state changes or after this "
        "many seconds (0 to 60), whichever comes first. 503 when too many callers wait.",
    ),
]


def public(view: RequestView) -> RequestPublic:
    """The API form of a request view."""
    return RequestPublic.model_validate(view, from_attributes=True)


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def reject_nul(value: Any, field: str) -> None:
    """Refuse NUL characters in submitted text (PostgreSQL cannot store them; SQLite could,
    and both backends must behave alike)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ApiError(
                422, "invalid_request", f"{field}: contains a NUL character", field=field
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            reject_nul(key, field)
            reject_nul(item, f"{field}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            reject_nul(item, f"{field}.{index}")


def created_or_replayed(response: Response, view: RequestView, before: datetime) -> None:
    """201 and ``Location`` for a new request; 200 for an idempotent replay."""
    response.headers["Location"] = f"/v1/requests/{view.id}"
    if view.created_at < before:
        response.status_code = 200


@router.post(
    "/requests",
    status_code=201,
    responses={200: {"model": RequestPublic, "description": "Idempotent replay"}},
)
async def submit_request(
    body: Annotated[RequestCreate, Body()],
    principal: SubmitterDep,
    services: ServicesDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> RequestPublic:
    """Submit a research or transcription request (submitters, admins)."""
    payload = body.payload.model_dump(mode="json", exclude_none=True)
    reject_nul(payload, "payload")
    before = utcnow()
    view = await services.orchestrator.submit(
        body.kind,
        payload,
        principal.name,
        idempotency_key,
        body.priority,
        body.callback_url or principal.callback_url,
    )
    created_or_replayed(response, view, before)
    return public(view)


@router.post("/requests/batch")
async def submit_batch(
    body: Annotated[RequestBatchCreate, Body()],
    principal: SubmitterDep,
    services: ServicesDep,
) -> RequestBatchResult:
    """Submit 1 to 500 requests in one call (submitters, admins).

    Every request is checked first: one invalid field anywhere answers 422 naming each
    (``requests.3.payload.age_range``) and nothing is written. Otherwise each request gets
    its own result, in order: ``created``, ``replayed`` (its idempotency key was used
    before with the same payload; the existing request is returned), ``conflict`` (the key
    was used with another payload) or ``queue_full``.
    """
    specs: list[SubmitSpec] = []
    for index, item in enumerate(body.requests):
        payload = item.payload.model_dump(mode="json", exclude_none=True)
        reject_nul(payload, f"requests.{index}.payload")
        specs.append(
            SubmitSpec(
                kind=item.kind,
                payload=payload,
                submitted_by=principal.name,
                idempotency_key=item.idempotency_key,
                priority=item.priority,
                callback_url=item.callback_url or principal.callback_url,
            )
        )
    before = utcnow()
    try:
        outcomes = await services.orchestrator.submit_many(specs)
    except InvalidRequest as exc:
        raise InvalidRequest(
            problems=[FieldProblem(f"requests.{p.field}", p.message) for p in exc.problems]
        ) from None
    return RequestBatchResult(items=[_batch_result(i, o, before) for i, o in enumerate(outcomes)])


def _batch_result(index: int, outcome: Outcome, before: datetime) -> BatchItemResult:
    if isinstance(outcome, RequestView):
        status: Literal["created", "replayed"] = (
            "replayed" if outcome.created_at < before else "created"
        )
        return BatchItemResult(index=index, status=status, request=public(outcome))
    if isinstance(outcome, IdempotencyConflict):
        return BatchItemResult(index=index, status="conflict", detail=outcome.message)
    if isinstance(outcome, QueueFull):
        return BatchItemResult(index=index, status="queue_full", detail=outcome.message)
    raise outcome


@router.get("/requests")
async def list_requests(
    request: Request,
    principal: ReaderDep,
    services: ServicesDep,
    kind: Annotated[str | None, Query(min_length=1, max_length=32)] = None,
    state: State | None = None,
    submitted_by: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    created_after: IsoDateTime | None = None,
    created_before: IsoDateTime | None = None,
    cursor: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> RequestsPage:
    """Requests newest first, keyset-paginated; submitters see only their own."""
    if principal.role == Role.SUBMITTER:
        if submitted_by is not None and submitted_by != principal.name:
            await deny(
                request, 403, "submitters may only list their own requests", principal=principal
            )
        submitted_by = principal.name
    page = await services.orchestrator.list(
        kind=kind,
        state=state.value if state is not None else None,
        submitted_by=submitted_by,
        created_after=_utc(created_after),
        created_before=_utc(created_before),
        cursor=cursor,
        limit=limit,
    )
    return RequestsPage(items=[public(v) for v in page.items], next_cursor=page.next_cursor)


@router.get("/requests/{request_id}")
async def get_request(
    request: Request,
    request_id: uuid.UUID,
    principal: ReaderDep,
    services: ServicesDep,
    wait: WaitSeconds = 0,
) -> RequestPublic:
    """One request (submitters: their own); with ``wait``, a long poll (see ``WaitSeconds``)."""
    view = await services.orchestrator.get(request_id)
    await hide_unless_owner(request, principal, view.submitted_by, request_id)
    if wait:
        view = await wait_for_change(services.orchestrator, services.watcher, view, wait)
    return public(view)


@router.get("/requests/{request_id}/history")
async def request_history(
    request: Request, request_id: uuid.UUID, principal: ReaderDep, services: ServicesDep
) -> HistoryPublic:
    """A request with its transitions, step executions, approvals and escalations."""
    history = await services.orchestrator.history(request_id)
    await hide_unless_owner(request, principal, history.request.submitted_by, request_id)
    return HistoryPublic.model_validate(
        {**history.model_dump(), "request": public(history.request)}
    )


@router.post("/requests/{request_id}/cancel")
async def cancel_request(
    request: Request,
    request_id: uuid.UUID,
    principal: SubmitterDep,
    services: ServicesDep,
    body: Annotated[CancelBody | None, Body()] = None,
) -> RequestPublic:
    """Cancel a request that has not finished (409 if it has)."""
    view = await services.orchestrator.get(request_id)
    await hide_unless_owner(request, principal, view.submitted_by, request_id)
    reason = body.reason if body is not None else None
    return public(await services.orchestrator.cancel(request_id, principal.name, reason))
