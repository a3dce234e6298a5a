"""Requests: a filterable, keyset-paged list; one request's page; Cancel with a reason.

Same rules as ``/v1/requests``: submitters see and cancel only their own requests (someone
else's answers the 404 a missing one gets, recorded like the results service records it),
reviewers read every request, admins do everything; auditors read the audit trail instead.
An admin's request page also shows the request's audit events, read (and audited) as the
API's audit-trail route reads them. A completed research request lists its delivery files,
downloaded through :class:`app.results.Deliveries` (each download recorded).
"""

from __future__ import annotations

import uuid
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.audit import AuditAccess
from app.auth import ConsoleUser, Role
from app.console.access import acting, refuse, services_of, viewer
from app.console.files import file_response
from app.console.forms import FieldErrors, optional_text, optional_time, required_text
from app.console.render import base_path, render
from app.console.timeline import timeline
from app.orchestrator.states import TERMINAL, State
from app.results import Gone, NotReady

router = APIRouter()

PAGE_SIZE = 50
_NOTICES = {
    "cancelled": "The request was cancelled.",
    "approved": "Approved: the request goes on.",
    "rejected": "Rejected: the request has failed with your note.",
    "retry": "The step will be tried again.",
    "skip": "The step was skipped: the request goes on.",
    "fail": "The request has failed with your note.",
}
Reader = Annotated[ConsoleUser, Depends(viewer(Role.SUBMITTER, Role.REVIEWER))]
Canceller = Annotated[ConsoleUser, Depends(viewer(Role.SUBMITTER))]


@router.get("/requests")
async def list_requests(
    request: Request,
    user: Reader,
    kind: str | None = None,
    state: str | None = None,
    submitted_by: str | None = None,
    created_after: str | None = None,
    created_before: str | None = None,
    cursor: str | None = None,
) -> HTMLResponse:
    """Requests newest first, 50 a page; submitters see their own."""
    services = services_of(request)
    kinds = services.orchestrator.workflows.kinds
    errors: FieldErrors = {}
    if kind and kind not in kinds:
        errors["kind"] = f"Choose one of: {', '.join(kinds)}."
    if state and state not in State.__members__.values():
        errors["state"] = "Choose a state from the list."
    after = optional_time(created_after, "created_after", errors)
    before = optional_time(created_before, "created_before", errors)
    who = optional_text(submitted_by, "submitted_by", errors)
    if user.principal.role == Role.SUBMITTER:
        who = user.principal.name
    filters = {
        "kind": kind or "",
        "state": state or "",
        "submitted_by": submitted_by or "",
        "created_after": created_after or "",
        "created_before": created_before or "",
    }
    page = None
    if not errors:
        page = await services.orchestrator.list(
            kind=kind or None,
            state=state or None,
            submitted_by=who,
            created_after=after,
            created_before=before,
            cursor=cursor or None,
            limit=PAGE_SIZE,
        )
    query = {k: v for k, v in filters.items() if v}
    here = f"{base_path(request)}/requests"
    return render(
        request,
        "requests.html",
        status=422 if errors else 200,
        title="Requests",
        section="requests",
        page=page,
        errors=errors,
        filters=filters,
        kinds=kinds,
        states=[s.value for s in State],
        own_only=user.principal.role == Role.SUBMITTER,
        next_url=(
            f"{here}?{urlencode({**query, 'cursor': page.next_cursor})}"
            if page and page.next_cursor
            else None
        ),
        first_url=f"{here}?{urlencode(query)}" if cursor else None,
    )


async def hide_unless_owner(
    request: Request, user: ConsoleUser, submitted_by: str, request_id: uuid.UUID
) -> None:
    """A submitter reaching for another's request gets the 404 page (the refusal recorded)."""
    if not user.principal.owns(submitted_by):
        await refuse(
            request,
            user,
            "belongs to another submitter",
            status=404,
            message=f"no request {request_id}",
            request_id=request_id,
        )


async def request_page(
    request: Request,
    user: ConsoleUser,
    request_id: uuid.UUID,
    *,
    status: int = 200,
    errors: FieldErrors | None = None,
    form: dict[str, str] | None = None,
) -> HTMLResponse:
    """One request's page (also re-shown with the errors of a refused form)."""
    services = services_of(request)
    history = await services.orchestrator.history(request_id)
    await hide_unless_owner(request, user, history.request.submitted_by, request_id)
    trail = None
    if user.principal.has(Role.AUDITOR):
        trail = await AuditAccess(services.database, user.principal.name).trail(
            request_id, fmt="html"
        )
    view = history.request
    delivery, delivery_note = None, None
    if view.kind == "research" and view.state == State.COMPLETED:
        try:
            delivery = await services.deliveries.manifest(acting(request, user), request_id)
        except (NotReady, Gone) as exc:
            delivery_note = exc.message
    return render(
        request,
        "request.html",
        status=status,
        title=f"Request {str(view.id)[:8]}",
        section="requests",
        req=view,
        history=history,
        moments=timeline(history),
        trail=trail,
        delivery=delivery,
        delivery_note=delivery_note,
        may_cancel=user.principal.has(Role.SUBMITTER) and State(view.state) not in TERMINAL,
        errors=errors or {},
        form=form or {},
        notice=_NOTICES.get(request.query_params.get("done", "")),
    )


@router.get("/requests/{request_id}")
async def show_request(request: Request, request_id: uuid.UUID, user: Reader) -> HTMLResponse:
    """A request: state, timeline (who did what), executions, gates, result, error."""
    return await request_page(request, user, request_id)


@router.get("/requests/{request_id}/delivery/{name}")
async def delivery_file(
    request: Request, request_id: uuid.UUID, name: str, user: Reader
) -> Response:
    """Download one delivered file (each download recorded as ``data_accessed``)."""
    opened = await services_of(request).deliveries.open_file(
        acting(request, user), request_id, name, request.headers.get("range")
    )
    return file_response(opened, download=True)


@router.post("/requests/{request_id}/cancel")
async def cancel_request(request: Request, request_id: uuid.UUID, user: Canceller) -> Response:
    """Cancel with a required reason (re-shown beside the field when empty; nothing written)."""
    services = services_of(request)
    form = await request.form()
    errors: FieldErrors = {}
    reason = required_text(form, "reason", errors, what="why you cancel it")
    view = await services.orchestrator.get(request_id)
    await hide_unless_owner(request, user, view.submitted_by, request_id)
    if errors:
        return await request_page(
            request, user, request_id, status=422, errors=errors, form={"reason": reason}
        )
    await services.orchestrator.cancel(request_id, user.principal.name, reason)
    return RedirectResponse(
        f"{base_path(request)}/requests/{request_id}?done=cancelled", status_code=303
    )
