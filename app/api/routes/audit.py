"""``/v1/audit-logs``, ``/v1/requests/{id}/audit-trail``, ``/v1/audit/verify|checkpoints|status``.

Auditors (and admins) only; every call is itself recorded by :class:`AuditAccess` as the
calling client. The same filters and formats as ``ledgerflow audit query|export``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse

from app.api.auth import AuditorDep
from app.api.deps import ServicesDep
from app.api.problems import ERROR_RESPONSES, ApiError
from app.api.schemas import (
    AuditLogPage,
    AuditRecordPublic,
    AuditStatusPublic,
    CheckpointBody,
    CheckpointPublic,
    VerifyBody,
    VerifyReport,
)
from app.audit import AuditAccess, AuditFilter, AuditRecord, InvalidFilter, render
from app.audit.checkpoint import Checkpoint, configured_hmac_key, stored_checkpoints
from app.audit.query import MAX_PAGE
from app.audit.status import last_verify
from app.audit.streaming import stream_export
from app.orchestrator.exceptions import NotFound

router = APIRouter(prefix="/v1", tags=["audit"], responses=ERROR_RESPONSES)

Format = Literal["json", "jsonl", "csv", "fhir", "fhir-ndjson"]
MEDIA_TYPES: dict[str, str] = {
    "json": "application/json",
    "jsonl": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
    "fhir": "application/fhir+json",
    "fhir-ndjson": "application/fhir+ndjson",
}
_TEXT_FORMATS: dict[str, Any] = {
    media.split(";")[0]: {"schema": {"type": "object" if name == "fhir" else "string"}}
    for name, media in MEDIA_TYPES.items()
    if name != "json"
}
_LOG_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A page (JSON object), or with `stream=true` every row (JSON array); "
        "other formats as text",
        "content": {
            "application/json": {
                "schema": {
                    "anyOf": [
                        {"$ref": "#/components/schemas/AuditLogPage"},
                        {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/AuditRecordPublic"},
                        },
                    ]
                }
            },
            **_TEXT_FORMATS,
        },
    }
}


#: Models the responses above refer to by ``$ref`` without FastAPI seeing them in a
#: signature; ``create_app`` adds them to the OpenAPI components.
REFERENCED_MODELS = (AuditLogPage, AuditRecordPublic)


def _public(record: AuditRecord) -> AuditRecordPublic:
    return AuditRecordPublic.model_validate(record.to_json())


@router.get("/audit-logs", response_model=None, responses=_LOG_RESPONSES)
async def audit_logs(
    principal: AuditorDep,
    services: ServicesDep,
    request_id: uuid.UUID | None = None,
    actor: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    agent_id: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    event_type: Annotated[list[str] | None, Query(max_length=50)] = None,
    severity: Literal["info", "warning", "error", "critical"] | None = None,
    since: Annotated[str | None, Query(max_length=64, description="ISO 8601, inclusive")] = None,
    until: Annotated[str | None, Query(max_length=64, description="ISO 8601, exclusive")] = None,
    patient_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    format: Format = "json",
    stream: Annotated[bool, Query(description="every matching row, streamed")] = False,
    cursor: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    newest_first: bool = False,
) -> Response:
    """Audit rows matching the filters: one keyset page, or (``stream=true``) all of them."""
    audit_filter = AuditFilter.parse(
        request_id=request_id,
        actor=actor,
        agent_id=agent_id,
        event_types=tuple(event_type or ()),
        severity=severity,
        since=since,
        until=until,
        patient_id=patient_id,
    )
    media = MEDIA_TYPES[format]
    if stream:
        if cursor is not None:
            raise ApiError(422, "invalid_request", "cursor: not with stream=true", field="cursor")
        chunks = stream_export(
            services.database.url, services.settings, principal.name, audit_filter, format
        )
        first = await anext(chunks, "")

        async def body() -> AsyncIterator[str]:
            yield first
            async for chunk in chunks:
                yield chunk

        return StreamingResponse(body(), media_type=media)
    access = AuditAccess(services.database, principal.name)
    page = await access.query(
        audit_filter, cursor=cursor, limit=limit, newest_first=newest_first, fmt=format
    )
    headers = {"X-Next-Cursor": page.next_cursor} if page.next_cursor else {}
    if format == "json":
        content = AuditLogPage(items=[_public(r) for r in page.items], next_cursor=page.next_cursor)
        return Response(content.model_dump_json(), media_type=media, headers=headers)
    return Response(render(page.items, format), media_type=media, headers=headers)


@router.get("/requests/{request_id}/audit-trail")
async def audit_trail(
    request_id: uuid.UUID, principal: AuditorDep, services: ServicesDep
) -> list[AuditRecordPublic]:
    """One request's audit timeline, oldest first (404 for an unknown request)."""
    try:
        records = await AuditAccess(services.database, principal.name).trail(request_id)
    except InvalidFilter as exc:
        raise NotFound(f"no request {request_id}") from exc
    return [_public(r) for r in records]


@router.post("/audit/verify")
async def audit_verify(
    principal: AuditorDep, services: ServicesDep, body: VerifyBody | None = None
) -> VerifyReport:
    """Verify the ledger (or one request's chain): the chains held to the newest stored
    checkpoint (reported in ``checkpoint``), the checkpoints themselves, the chain registry
    and the tables beside the chains. ``ok`` is false when anything is wrong."""
    body = body or VerifyBody()
    report = await AuditAccess(services.database, principal.name).verify(
        body.request_id,
        body.checkpoint.lower() if body.checkpoint else None,
        hmac_key=configured_hmac_key(),
        allow_unsigned=body.allow_unsigned,
    )
    data = report.to_json()
    return VerifyReport.model_validate(data)


def _checkpoint_public(made: Checkpoint) -> CheckpointPublic:
    return CheckpointPublic(
        seq=made.seq or 0,
        digest=made.digest,
        prev_digest=made.prev_digest,
        created_at=made.created_at,
        created_by=made.created_by,
        chains=made.chain_count if made.chain_count is not None else len(made.heads),
        signature=made.signature,
    )


@router.post("/audit/checkpoints", status_code=201)
async def audit_checkpoint(
    principal: AuditorDep, services: ServicesDep, body: CheckpointBody | None = None
) -> CheckpointPublic:
    """Record the next checkpoint (chained to the one before); keep its digest outside
    the database."""
    key = configured_hmac_key() if (body is None or body.sign) else None
    made = await AuditAccess(services.database, principal.name).checkpoint(key)
    return _checkpoint_public(made)


@router.get("/audit/checkpoints")
async def audit_checkpoints(
    principal: AuditorDep,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[CheckpointPublic]:
    """Stored checkpoints, newest first: each links to the one before by ``prev_digest``."""
    async with services.database.read_session() as session:
        stored = await stored_checkpoints(session)
    return [_checkpoint_public(c) for c in reversed(stored[-limit:])]


@router.get("/audit/status")
async def audit_status_route(principal: AuditorDep, services: ServicesDep) -> AuditStatusPublic:
    """The newest checkpoint and whether the last full verification passed (and when)."""
    async with services.database.read_session() as session:
        stored = await stored_checkpoints(session)
        verify = await last_verify(session)
    return AuditStatusPublic(
        last_checkpoint=_checkpoint_public(stored[-1]) if stored else None,
        last_verify_at=verify.occurred_at if verify else None,
        last_verify_by=verify.actor if verify else None,
        last_verify_ok=verify.ok if verify else None,
    )
