"""Typed audit events: one pydantic model per ``event_type``, each with a fixed severity.

Event data holds identifiers and digests, never clinical content: no transcript text, no
patient names, no payload bodies (their SHA-256 instead). Writes go through
``model_dump(mode="json")``; reads come back through :data:`EVENT_ADAPTER`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

Severity = Literal["info", "warning", "error", "critical"]


class AuditEvent(BaseModel):
    """Base of every event; subclasses set ``event_type`` and ``severity``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_type: str
    severity: ClassVar[Severity] = "info"

    def data(self) -> dict[str, Any]:
        """The JSON stored in ``event_data`` (everything but ``event_type``)."""
        return self.model_dump(mode="json", exclude={"event_type"})


class RequestSubmitted(AuditEvent):
    """A service submitted a request."""

    event_type: Literal["request_submitted"] = "request_submitted"
    kind: str
    priority: int
    payload_digest: str
    idempotency_key: str | None = None


class StateChanged(AuditEvent):
    """The request moved from one state to another (one per ``state_transitions`` row)."""

    event_type: Literal["state_changed"] = "state_changed"
    from_state: str | None
    to_state: str
    step: str | None = None
    reason: str | None = None


class AgentStarted(AuditEvent):
    """A worker started an attempt of a step."""

    event_type: Literal["agent_started"] = "agent_started"
    step: str
    attempt: int
    input_digest: str
    worker_id: str


class AgentSucceeded(AuditEvent):
    """An attempt finished and its output was recorded."""

    event_type: Literal["agent_succeeded"] = "agent_succeeded"
    step: str
    attempt: int
    output_digest: str
    duration_ms: int


class AgentFailed(AuditEvent):
    """An attempt raised an error."""

    event_type: Literal["agent_failed"] = "agent_failed"
    severity: ClassVar[Severity] = "warning"
    step: str
    attempt: int
    error_type: str
    error: str
    retryable: bool
    duration_ms: int


class AgentTimedOut(AuditEvent):
    """An attempt ran past its step's timeout (counts as a failed attempt)."""

    event_type: Literal["agent_timed_out"] = "agent_timed_out"
    severity: ClassVar[Severity] = "warning"
    step: str
    attempt: int
    timeout_seconds: float


class AgentRetryScheduled(AuditEvent):
    """A failed attempt will be tried again after a backoff."""

    event_type: Literal["agent_retry_scheduled"] = "agent_retry_scheduled"
    step: str
    next_attempt: int
    not_before: datetime
    delay_seconds: float


class StepRecovered(AuditEvent):
    """A worker took over a step whose previous worker's lease expired mid-attempt."""

    event_type: Literal["step_recovered"] = "step_recovered"
    severity: ClassVar[Severity] = "warning"
    step: str
    attempt: int
    previous_attempt: int
    previous_worker: str | None


class StaleResultDiscarded(AuditEvent):
    """A worker finished after losing its lease; its result was not recorded."""

    event_type: Literal["stale_result_discarded"] = "stale_result_discarded"
    severity: ClassVar[Severity] = "warning"
    step: str
    attempt: int
    worker_id: str
    output_digest: str | None = None
    reason: str


class ApprovalRequested(AuditEvent):
    """A step's human gate opened."""

    event_type: Literal["approval_requested"] = "approval_requested"
    approval_id: str
    step: str
    reason: str | None = None


class ApprovalDecided(AuditEvent):
    """A reviewer approved or rejected."""

    event_type: Literal["approval_decided"] = "approval_decided"
    approval_id: str
    step: str
    decision: Literal["approve", "reject"]
    note: str | None = None


class EscalationOpened(AuditEvent):
    """A request needs a person: retries exhausted, infeasible, or the agent asked."""

    event_type: Literal["escalation_opened"] = "escalation_opened"
    severity: ClassVar[Severity] = "error"
    escalation_id: str
    step: str
    reason: str


class EscalationResolved(AuditEvent):
    """A person decided what an escalated request does next."""

    event_type: Literal["escalation_resolved"] = "escalation_resolved"
    escalation_id: str
    step: str
    resolution: Literal["retry", "skip", "fail"]
    note: str | None = None


class RequestCancelled(AuditEvent):
    """Somebody cancelled the request."""

    event_type: Literal["request_cancelled"] = "request_cancelled"
    severity: ClassVar[Severity] = "warning"
    reason: str | None = None
    step: str | None = None


class RequestCompleted(AuditEvent):
    """Every step succeeded."""

    event_type: Literal["request_completed"] = "request_completed"
    steps: int
    result_digest: str


class RequestFailed(AuditEvent):
    """The request ended without completing."""

    event_type: Literal["request_failed"] = "request_failed"
    severity: ClassVar[Severity] = "error"
    step: str | None
    reason: str


class AuditAccessed(AuditEvent):
    """Somebody read, verified or exported the audit trail (or was denied)."""

    event_type: Literal["audit_accessed"] = "audit_accessed"
    action: str
    filters: dict[str, Any]
    row_count: int
    format: str | None = None
    denied: bool = False
    outcome: Literal["ok", "failed"] | None = Field(
        default=None, description="`verify` only: `ok` when every check passed, else `failed`"
    )
    problems: int | None = Field(
        default=None, description="`verify` only: how many problems it found"
    )


class AccessDenied(AuditEvent):
    """An entry point refused a call (HTTP 401, 403 or 404; the CLI or console alike);
    the row's actor is the caller, if known."""

    event_type: Literal["access_denied"] = "access_denied"
    severity: ClassVar[Severity] = "warning"
    method: str = Field(
        description="HTTP method of the refused call (`CLI` or `CALL` outside HTTP)"
    )
    route: str = Field(
        description="the route's path template, e.g. `/v1/requests/{request_id}` (or the "
        "command or function called)"
    )
    path: str = Field(description="the path called (identifiers only; no query string)")
    status: int = Field(
        description="`401` (no valid key), `403` (key valid, role refused) or `404` (someone "
        "else's request or recording: answered as if it did not exist)"
    )
    reason: str = Field(description="why the call was refused, e.g. `unknown key`")
    role: str | None = Field(default=None, description="the caller's role, when the key was valid")
    key_prefix: str | None = Field(
        default=None, description="the public prefix of the key presented, if it had one"
    )


class LegalHoldPlaced(AuditEvent):
    """A legal hold was placed on the request: retention will not purge any of its data."""

    event_type: Literal["legal_hold_placed"] = "legal_hold_placed"
    reason: str


class LegalHoldReleased(AuditEvent):
    """The request's legal hold was released: retention may purge it again."""

    event_type: Literal["legal_hold_released"] = "legal_hold_released"
    held_since: datetime = Field(description="UTC time the released hold was placed")
    reason: str | None = None


class DataPurged(AuditEvent):
    """Retention purged one kind of a finished request's data; its digests stay in the trail."""

    event_type: Literal["data_purged"] = "data_purged"
    category: Literal["payload", "audio", "delivery"] = Field(
        description="`payload` (payload, result and step outputs, transcript), `audio` (the "
        "recording's file) or `delivery` (the research delivery folder)"
    )
    finished_at: datetime = Field(description="UTC time the request finished")
    retention_days: int = Field(description="the retention age (days) that had passed")
    files_deleted: int = Field(default=0, description="files removed from disk")
    bytes_deleted: int = Field(default=0, description="bytes those files held")
    sha256: str | None = Field(
        default=None,
        description="digest of what was deleted (audio SHA-256 or delivery manifest), if known",
    )


class PhiAccessed(AuditEvent):
    """Somebody read clinical content: a transcript's text or a recording's audio.

    The row's ``actor`` is who read it; the text or audio itself is never recorded.
    """

    event_type: Literal["phi_accessed"] = "phi_accessed"
    recording_id: str = Field(description="id of the `recordings` row read")
    resource: Literal["transcript", "audio"] = Field(
        description="`transcript` (its text) or `audio` (the recording's bytes)"
    )
    version: int | None = Field(default=None, description="the transcript version read")
    byte_range: str | None = Field(
        default=None, description="audio bytes sent, `first-last/size` (HTTP Range)"
    )
    channel: str = Field(description="how it was read: `http`, `cli`, `console` or `python`")


class TranscriptCorrected(AuditEvent):
    """A clinician saved a corrected transcript as a new version (the old one is kept)."""

    event_type: Literal["transcript_corrected"] = "transcript_corrected"
    recording_id: str = Field(description="id of the `recordings` row corrected")
    version: int = Field(description="the new version's number")
    previous_version: int = Field(description="the version it replaces as current")
    old_digest: str = Field(description="SHA-256 of the previous version's text")
    new_digest: str = Field(description="SHA-256 of the new version's text")
    channel: str = Field(description="how it was saved: `http`, `cli`, `console` or `python`")


class DataAccessed(AuditEvent):
    """Somebody downloaded a file of a research delivery."""

    event_type: Literal["data_accessed"] = "data_accessed"
    file: str = Field(description="the delivery file's name (e.g. `conditions.csv`)")
    sha256: str = Field(description="the file's SHA-256 as the manifest records it")
    bytes_sent: int = Field(description="bytes sent (less than the file for a range)")
    byte_range: str | None = Field(default=None, description="`first-last/size` for a range")
    channel: str = Field(description="how it was read: `http`, `cli`, `console` or `python`")


class CallbackSent(AuditEvent):
    """A webhook receiver accepted a callback (2xx). On the system chain, with the request's id."""

    event_type: Literal["callback_sent"] = "callback_sent"
    callback_id: str = Field(description="id of the `callback_outbox` row (the `Webhook-Id`)")
    state: str = Field(description="the request state the callback announced")
    host: str = Field(description="the receiver's host (never the full URL)")
    status: int = Field(description="the receiver's HTTP status")
    attempt: int = Field(description="delivery attempt number (1 for the first)")


class CallbackFailed(AuditEvent):
    """A webhook delivery attempt failed; ``final`` when no attempt is left. The request's own
    outcome is never affected. On the system chain, with the request's id."""

    event_type: Literal["callback_failed"] = "callback_failed"
    severity: ClassVar[Severity] = "warning"
    callback_id: str = Field(description="id of the `callback_outbox` row (the `Webhook-Id`)")
    state: str = Field(description="the request state the callback announced")
    host: str = Field(description="the receiver's host (never the full URL)")
    status: int | None = Field(
        default=None, description="the receiver's HTTP status (`null`: no answer)"
    )
    error_type: str | None = Field(
        default=None,
        description="`timeout`, `connect_error`, `redirect` (3xx: not followed), "
        "`url_refused`, `no_secret`, … when there was no usable answer",
    )
    attempt: int = Field(description="delivery attempt number (1 for the first)")
    final: bool = Field(description="true when ledgerflow gave up (no retry follows)")


#: Why files were removed (``files_removed``).
RemovalReason = Literal["cancelled", "failed", "recovered", "stale"]


class FilesRemoved(AuditEvent):
    """Files a request's steps wrote were removed: it was cancelled or failed (no delivery),
    or a step interrupted by a crash runs again. Counts and digests only, never content."""

    event_type: Literal["files_removed"] = "files_removed"
    reason: RemovalReason = Field(
        description="`cancelled` / `failed` (the request ended without a delivery), "
        "`recovered` (before a crashed step's re-run), `stale` (retention found staging a "
        "crash left behind)"
    )
    steps: list[str] = Field(description="the steps whose agents removed files")
    files_removed: int = Field(description="files removed from disk")
    bytes_removed: int = Field(description="bytes those files held")
    sha256: list[str] = Field(description="SHA-256 of each removed file, in name order")


class SessionStarted(AuditEvent):
    """Somebody signed in to the web console with an API key; the actor is its client."""

    event_type: Literal["session_started"] = "session_started"
    session_id: str = Field(description="the console session's id (never its token)")
    role: str = Field(description="the client's role, which the session acts with")
    key_prefix: str = Field(description="the public prefix of the key that was presented")


class SessionEnded(AuditEvent):
    """A web console session ended; the actor is its client."""

    event_type: Literal["session_ended"] = "session_ended"
    session_id: str = Field(description="the console session's id")
    reason: Literal["signed_out", "idle", "expired", "revoked"] = Field(
        description="`signed_out`, `idle` (no page view for CONSOLE_IDLE_SECONDS), `expired` "
        "(CONSOLE_SESSION_SECONDS after sign-in) or `revoked` (the client's key was revoked)"
    )


class RegisteredEnd(BaseModel):
    """Where a request chain ended: its terminal head and the state it ended in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    request_id: str = Field(description="the request whose chain ended")
    seq: int = Field(description="`seq` of the chain's last row when the request ended")
    hash: str = Field(description="`hash` of that row: the chain must always contain it")
    state: str = Field(description="the terminal state (`completed`, `failed`, `cancelled`)")


class ChainsRegistered(AuditEvent):
    """The chain registry recorded request chains created and ended (one row per batch).

    On a ``registry-*`` chain, never a request's: ``audit verify`` names a registered chain
    that is gone, a request or chain the registry never recorded, and a chain cut back
    before its registered terminal head.
    """

    event_type: Literal["chains_registered"] = "chains_registered"
    opened: list[str] = Field(
        default_factory=list, description="ids of the requests whose chains were created"
    )
    closed: list[RegisteredEnd] = Field(
        default_factory=list,
        description="requests that ended: `{request_id, seq, hash, state}` of each chain's "
        "terminal head",
    )


AnyEvent = Annotated[
    RequestSubmitted
    | StateChanged
    | AgentStarted
    | AgentSucceeded
    | AgentFailed
    | AgentTimedOut
    | AgentRetryScheduled
    | StepRecovered
    | StaleResultDiscarded
    | ApprovalRequested
    | ApprovalDecided
    | EscalationOpened
    | EscalationResolved
    | RequestCancelled
    | RequestCompleted
    | RequestFailed
    | AuditAccessed
    | AccessDenied
    | LegalHoldPlaced
    | LegalHoldReleased
    | DataPurged
    | ChainsRegistered
    | PhiAccessed
    | TranscriptCorrected
    | DataAccessed
    | CallbackSent
    | CallbackFailed
    | FilesRemoved
    | SessionStarted
    | SessionEnded,
    Field(discriminator="event_type"),
]

#: Parses stored rows back into typed events: ``EVENT_ADAPTER.validate_python({...})``.
EVENT_ADAPTER: TypeAdapter[AnyEvent] = TypeAdapter(AnyEvent)

#: Every event model by its ``event_type``.
EVENT_TYPES: dict[str, type[AuditEvent]] = {
    model.model_fields["event_type"].default: model for model in AuditEvent.__subclasses__()
}


def parse_event(event_type: str, event_data: dict[str, Any]) -> AuditEvent:
    """Turn a stored ``(event_type, event_data)`` back into its typed event."""
    event: AuditEvent = EVENT_ADAPTER.validate_python({"event_type": event_type, **event_data})
    return event
