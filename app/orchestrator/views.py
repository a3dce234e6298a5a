"""What the orchestrator's Python API returns (converted from rows at the edge)."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from app.orchestrator.exceptions import InvalidRequest


class _View(BaseModel):
    model_config = ConfigDict(from_attributes=True, frozen=True)


class RequestView(_View):
    """A request as callers see it."""

    id: uuid.UUID
    kind: str
    state: str
    current_step: str | None
    step_index: int
    attempt: int
    priority: int
    submitted_by: str
    idempotency_key: str | None
    payload: dict[str, Any]
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None


class TransitionView(_View):
    """One ``state_transitions`` row."""

    from_state: str | None
    to_state: str
    step: str | None
    actor: str
    reason: str | None
    created_at: datetime


class ExecutionView(_View):
    """One ``agent_executions`` row."""

    step: str
    agent_id: str
    attempt: int
    status: str
    error: str | None
    worker_id: str | None
    started_at: datetime
    finished_at: datetime | None
    duration_ms: int | None


class ApprovalView(_View):
    """One ``approvals`` row."""

    id: uuid.UUID
    request_id: uuid.UUID
    step: str
    status: str
    summary: dict[str, Any] | None
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    note: str | None


class EscalationView(_View):
    """One ``escalations`` row."""

    id: uuid.UUID
    request_id: uuid.UUID
    step: str
    reason: str
    detail: dict[str, Any] | None
    status: str
    opened_at: datetime
    resolved_by: str | None
    resolved_at: datetime | None = None
    resolution: str | None
    note: str | None


class History(_View):
    """A request with its transitions, executions, approvals and escalations."""

    request: RequestView
    transitions: list[TransitionView]
    executions: list[ExecutionView]
    approvals: list[ApprovalView]
    escalations: list[EscalationView]


class RequestPage(_View):
    """One page of requests, newest first, and the cursor of the next page (if any)."""

    items: list[RequestView]
    next_cursor: str | None


def encode_cursor(created_at: datetime, request_id: uuid.UUID) -> str:
    """An opaque keyset cursor for the row after which the next page starts."""
    raw = f"{created_at.isoformat()}|{request_id}".encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """Read a cursor made by :func:`encode_cursor`; a bad one is an ``InvalidRequest``."""
    try:
        stamp, _, rid = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return datetime.fromisoformat(stamp), uuid.UUID(rid)
    except ValueError as exc:
        raise InvalidRequest("not a cursor this API issued", field="cursor") from exc
