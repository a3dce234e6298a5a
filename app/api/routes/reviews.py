"""``/v1/approvals`` and ``/v1/escalations``: the human side of the workflows (reviewers)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from app.api.auth import ReviewerDep
from app.api.deps import ServicesDep
from app.api.problems import ERROR_RESPONSES
from app.api.routes.requests import public
from app.api.schemas import DecisionBody, RequestPublic, ResolutionBody
from app.orchestrator.views import ApprovalView, EscalationView

router = APIRouter(prefix="/v1", tags=["reviews"], responses=ERROR_RESPONSES)

Limit = Annotated[int, Query(ge=1, le=500)]


@router.get("/approvals")
async def list_approvals(
    principal: ReviewerDep,
    services: ServicesDep,
    status: Literal["pending", "approved", "rejected", "cancelled", "all"] = "pending",
    limit: Limit = 100,
) -> list[ApprovalView]:
    """Approval gates, oldest first (pending ones by default)."""
    return await services.orchestrator.approvals(None if status == "all" else status, limit)


@router.post("/approvals/{approval_id}/decision")
async def decide_approval(
    approval_id: uuid.UUID, body: DecisionBody, principal: ReviewerDep, services: ServicesDep
) -> RequestPublic:
    """Approve (the request goes on) or reject (it fails); 409 if already decided."""
    view = await services.orchestrator.decide_approval(
        approval_id, principal.name, body.decision, body.note
    )
    return public(view)


@router.get("/escalations")
async def list_escalations(
    principal: ReviewerDep,
    services: ServicesDep,
    status: Literal["open", "resolved", "cancelled", "all"] = "open",
    limit: Limit = 100,
) -> list[EscalationView]:
    """Escalations, oldest first (open ones by default)."""
    return await services.orchestrator.escalations(None if status == "all" else status, limit)


@router.post("/escalations/{escalation_id}/resolve")
async def resolve_escalation(
    escalation_id: uuid.UUID, body: ResolutionBody, principal: ReviewerDep, services: ServicesDep
) -> RequestPublic:
    """Retry the step, skip it, or fail the request; 409 if already resolved."""
    view = await services.orchestrator.resolve_escalation(
        escalation_id, principal.name, body.resolution, body.note
    )
    return public(view)
