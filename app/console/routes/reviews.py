"""Approvals and escalations: the queues, oldest first, and each item with its decision.

Reviewers and admins only, as ``/v1/approvals`` and ``/v1/escalations``. Decisions go
through :meth:`Orchestrator.decide_approval` and :meth:`Orchestrator.resolve_escalation`,
so they write the same rows and audit events as the API's, with the signed-in client as
the actor. The console requires a note on every decision: an empty one is refused beside
the field and nothing is written.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.auth import ConsoleUser, Role
from app.console.access import services_of, viewer
from app.console.forms import FieldErrors, choice, required_text
from app.console.render import base_path, render

router = APIRouter()

QUEUE_SIZE = 200
Reviewer = Annotated[ConsoleUser, Depends(viewer(Role.REVIEWER))]


@router.get("/approvals")
async def approvals(request: Request, user: Reviewer) -> HTMLResponse:
    """Pending approvals, oldest first."""
    items = await services_of(request).orchestrator.approvals("pending", QUEUE_SIZE)
    return render(
        request,
        "approvals.html",
        title="Approvals",
        section="approvals",
        items=items,
        limit=QUEUE_SIZE,
    )


async def approval_page(
    request: Request,
    approval_id: uuid.UUID,
    *,
    status: int = 200,
    errors: FieldErrors | None = None,
    note: str = "",
) -> HTMLResponse:
    """One approval with its request and summary (also re-shown with a form's errors)."""
    orchestrator = services_of(request).orchestrator
    approval = await orchestrator.approval(approval_id)
    req = await orchestrator.get(approval.request_id)
    return render(
        request,
        "approval.html",
        status=status,
        title=f"Approval {str(approval.id)[:8]}",
        section="approvals",
        approval=approval,
        req=req,
        errors=errors or {},
        note=note,
    )


@router.get("/approvals/{approval_id}")
async def show_approval(request: Request, approval_id: uuid.UUID, user: Reviewer) -> HTMLResponse:
    """The gate: what the step produced (e.g. the normalised criteria), and the decision."""
    return await approval_page(request, approval_id)


@router.post("/approvals/{approval_id}/decision")
async def decide(request: Request, approval_id: uuid.UUID, user: Reviewer) -> Response:
    """Approve or reject with a required note."""
    form = await request.form()
    errors: FieldErrors = {}
    decision = choice(form, "decision", ("approve", "reject"), errors)
    note = required_text(form, "note", errors, what="a note for the record")
    if errors:
        return await approval_page(request, approval_id, status=422, errors=errors, note=note)
    orchestrator = services_of(request).orchestrator
    view = await orchestrator.decide_approval(
        approval_id,
        user.principal.name,
        "approve" if decision == "approve" else "reject",
        note,
    )
    done = "approved" if decision == "approve" else "rejected"
    return RedirectResponse(f"{base_path(request)}/requests/{view.id}?done={done}", status_code=303)


@router.get("/escalations")
async def escalations(request: Request, user: Reviewer) -> HTMLResponse:
    """Open escalations, oldest first."""
    items = await services_of(request).orchestrator.escalations("open", QUEUE_SIZE)
    return render(
        request,
        "escalations.html",
        title="Escalations",
        section="escalations",
        items=items,
        limit=QUEUE_SIZE,
    )


async def escalation_page(
    request: Request,
    escalation_id: uuid.UUID,
    *,
    status: int = 200,
    errors: FieldErrors | None = None,
    note: str = "",
) -> HTMLResponse:
    """One escalation with its request and detail (also re-shown with a form's errors)."""
    orchestrator = services_of(request).orchestrator
    escalation = await orchestrator.escalation(escalation_id)
    req = await orchestrator.get(escalation.request_id)
    return render(
        request,
        "escalation.html",
        status=status,
        title=f"Escalation {str(escalation.id)[:8]}",
        section="escalations",
        escalation=escalation,
        req=req,
        errors=errors or {},
        note=note,
    )


@router.get("/escalations/{escalation_id}")
async def show_escalation(
    request: Request, escalation_id: uuid.UUID, user: Reviewer
) -> HTMLResponse:
    """The escalation: why the request stopped, its detail, and retry / skip / fail."""
    return await escalation_page(request, escalation_id)


@router.post("/escalations/{escalation_id}/resolve")
async def resolve(request: Request, escalation_id: uuid.UUID, user: Reviewer) -> Response:
    """Retry the step, skip it, or fail the request, with a required note."""
    form = await request.form()
    errors: FieldErrors = {}
    resolution = choice(form, "resolution", ("retry", "skip", "fail"), errors)
    note = required_text(form, "note", errors, what="a note for the record")
    if errors:
        return await escalation_page(request, escalation_id, status=422, errors=errors, note=note)
    orchestrator = services_of(request).orchestrator
    view = await orchestrator.resolve_escalation(
        escalation_id,
        user.principal.name,
        "retry" if resolution == "retry" else "skip" if resolution == "skip" else "fail",
        note,
    )
    return RedirectResponse(
        f"{base_path(request)}/requests/{view.id}?done={resolution}", status_code=303
    )
