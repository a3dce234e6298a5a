"""The shapes of a state change: typed rows, the request snapshot, and the change itself.

Pure data, no I/O. :mod:`app.orchestrator.transitions` builds :class:`Change` s from
:class:`Snapshot` s; :mod:`app.orchestrator.changes` writes them. Rows are ``TypedDict`` s:
mypy checks every key, and at run time they are the plain dicts the bulk writer takes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypedDict

from app.agents.base import DomainWrite
from app.audit.chain import AuditRow
from app.orchestrator.states import State


class RequestRow(TypedDict):
    """A new ``requests`` row (submit)."""

    id: uuid.UUID
    kind: str
    state: str
    step_index: int
    current_step: str | None
    attempt: int
    max_attempt: int
    priority: int
    submitted_by: str
    idempotency_key: str | None
    payload_digest: str
    payload: dict[str, Any]
    not_before: datetime
    version: int
    audit_seq: int
    audit_head: str
    created_at: datetime
    updated_at: datetime
    callback_url: str | None


class RequestUpdate(TypedDict, total=False):
    """The columns of a ``requests`` row one change sets (fence and chain head aside)."""

    state: str
    step_index: int
    current_step: str | None
    attempt: int
    max_attempt: int
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    not_before: datetime
    completed_at: datetime


class TransitionRow(TypedDict):
    """One ``state_transitions`` row."""

    id: uuid.UUID
    request_id: uuid.UUID
    from_state: str | None
    to_state: str
    step: str | None
    actor: str
    reason: str | None
    created_at: datetime


class ExecutionRow(TypedDict):
    """One ``agent_executions`` row: an attempt of a step and how it ended."""

    id: uuid.UUID
    request_id: uuid.UUID
    step: str
    step_index: int
    agent_id: str
    attempt: int
    status: str
    input_digest: str | None
    output_digest: str | None
    output: dict[str, Any] | None
    error: str | None
    worker_id: str | None
    started_at: datetime
    finished_at: datetime
    duration_ms: int


class ApprovalRow(TypedDict):
    """A new ``approvals`` row (a gate opened)."""

    id: uuid.UUID
    request_id: uuid.UUID
    step: str
    status: str
    summary: dict[str, Any]
    requested_at: datetime


class EscalationRow(TypedDict):
    """A new ``escalations`` row (an unplanned stop opened)."""

    id: uuid.UUID
    request_id: uuid.UUID
    step: str
    reason: str
    detail: dict[str, Any]
    status: str
    opened_at: datetime


class CleanupRow(TypedDict):
    """A ``file_cleanups`` row: the files of a request's steps are owed a removal."""

    id: uuid.UUID
    request_id: uuid.UUID
    reason: str
    created_at: datetime
    attempts: int
    not_before: datetime


class OutboxRow(TypedDict):
    """A ``callback_outbox`` row: a webhook callback owed for a change of state."""

    id: uuid.UUID
    request_id: uuid.UUID
    kind: str
    state: str
    client: str
    url: str
    created_at: datetime
    attempts: int
    not_before: datetime


#: Where an open gate sits before it is decided (the writer's guard).
OPEN_GATE = {"approvals": "pending", "escalations": "open"}


@dataclass(frozen=True, slots=True)
class GateClosed:
    """An approval decided, an escalation resolved, or (``gate_id`` None) every open gate of
    the request closed (on cancel). Written only where the gate is still open."""

    table: Literal["approvals", "escalations"]
    request_id: uuid.UUID
    gate_id: uuid.UUID | None
    status: str
    by: str
    at: datetime
    note: str | None = None
    #: Escalations only: retry | skip | fail.
    resolution: str | None = None


@dataclass(frozen=True, slots=True)
class Gate:
    """What a decision needs to know of an approval or escalation row."""

    id: uuid.UUID
    request_id: uuid.UUID
    step: str
    status: str
    reason: str | None = None


@dataclass(slots=True)
class Snapshot:
    """What a writer knows of a request row: enough to build the next change."""

    id: uuid.UUID
    kind: str
    state: State
    step_index: int
    current_step: str | None
    attempt: int
    max_attempt: int
    version: int
    audit_seq: int
    audit_head: str
    payload: dict[str, Any]
    result: dict[str, Any] | None
    submitted_by: str
    priority: int
    lease_owner: str | None = None
    #: When the row was last written (a recovered attempt started at most then).
    updated_at: datetime | None = None
    #: Digest of the current step's input (payload and earlier outputs), computed once by
    #: :func:`app.orchestrator.transitions.input_digest` and kept while the result is unchanged.
    input_digest: str | None = None
    #: The current attempt follows one a crash interrupted: its files are cleaned first.
    interrupted: bool = False
    #: Where the request's webhook callbacks go (None: nowhere).
    callback_url: str | None = None

    @classmethod
    def from_row(cls, row: Any) -> Snapshot:
        """Build from a ``requests`` row (ORM object or Core row)."""
        return cls(
            id=row.id,
            kind=row.kind,
            state=State(row.state),
            step_index=row.step_index,
            current_step=row.current_step,
            attempt=row.attempt,
            max_attempt=row.max_attempt,
            version=row.version,
            audit_seq=row.audit_seq,
            audit_head=row.audit_head,
            payload=row.payload,
            result=row.result,
            submitted_by=row.submitted_by,
            priority=row.priority,
            lease_owner=row.lease_owner,
            updated_at=row.updated_at,
            callback_url=row.callback_url,
        )


@dataclass(slots=True)
class Change:
    """Everything one event does to one request, ready to be written in one transaction.

    A new request carries ``insert``; every other change carries ``update`` and applies only
    while the row still has ``expected_version`` (the fence). ``after`` is the snapshot once
    the change is committed.
    """

    request_id: uuid.UUID
    expected_version: int | None
    after: Snapshot
    actor: str
    now: datetime
    insert: RequestRow | None = None
    update: RequestUpdate = field(default_factory=lambda: RequestUpdate())
    transitions: list[TransitionRow] = field(default_factory=list)
    audit: list[AuditRow] = field(default_factory=list)
    executions: list[ExecutionRow] = field(default_factory=list)
    approvals: list[ApprovalRow] = field(default_factory=list)
    escalations: list[EscalationRow] = field(default_factory=list)
    gates: list[GateClosed] = field(default_factory=list)
    cleanups: list[CleanupRow] = field(default_factory=list)
    #: Webhook callbacks owed (:mod:`app.webhooks`): written with the change, or not at all.
    outbox: list[OutboxRow] = field(default_factory=list)
    domain: list[DomainWrite] = field(default_factory=list)

    @property
    def changes_state(self) -> bool:
        """True when the change moves the request to another state."""
        return bool(self.transitions)
