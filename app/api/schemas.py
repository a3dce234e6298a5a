"""The API's request and response bodies (converted from the orchestrator's views at the edge)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, StrictBool, StrictInt

from app.agents.research.submission import ResearchSubmission
from app.agents.transcription import TranscriptionPayload
from app.orchestrator.views import (
    ApprovalView,
    EscalationView,
    ExecutionView,
    RequestView,
    TransitionView,
)

Priority = Annotated[StrictInt, Field(ge=-100, le=100, description="higher runs first")]
CallbackUrl = Annotated[
    str,
    Field(
        min_length=1,
        max_length=2048,
        description="Where to POST a signed callback at each terminal or waiting-for-a-person "
        "state (https; default: the API client's callback URL). See docs/webhooks.md.",
    ),
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ResearchCreate(_Body):
    """A research data request."""

    kind: Literal["research"]
    payload: ResearchSubmission
    priority: Priority = 0
    callback_url: CallbackUrl | None = None


class TranscriptionCreate(_Body):
    """A transcription of a recording already in ``AUDIO_DIR`` (else use ``/v1/recordings``)."""

    kind: Literal["transcription"]
    payload: TranscriptionPayload
    priority: Priority = 0
    callback_url: CallbackUrl | None = None


#: ``POST /v1/requests``: the payload's schema follows ``kind``. (A ``Discriminator``, not
#: ``Field(discriminator=...)``: FastAPI before 0.156.1 lets ``Body()`` erase the latter.)
RequestCreate = Annotated[ResearchCreate | TranscriptionCreate, Discriminator("kind")]


class RequestPublic(RequestView):
    """A request as the API returns it."""


BatchIdempotencyKey = Annotated[
    str,
    Field(
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Retry-safe submission: the same key and payload return the same request.",
    ),
]


class ResearchBatchItem(ResearchCreate):
    """A research request within a batch, with its own idempotency key."""

    idempotency_key: BatchIdempotencyKey


class TranscriptionBatchItem(TranscriptionCreate):
    """A transcription request within a batch, with its own idempotency key."""

    idempotency_key: BatchIdempotencyKey


class RequestBatchCreate(_Body):
    """``POST /v1/requests/batch``: 1 to 500 requests, each checked before any is written."""

    requests: list[
        Annotated[ResearchBatchItem | TranscriptionBatchItem, Field(discriminator="kind")]
    ] = Field(min_length=1, max_length=500)


class BatchItemResult(BaseModel):
    """What became of one request of a batch: created, replayed (its idempotency key was
    used before with the same payload), or refused (``conflict``: the key was used with
    another payload; ``queue_full``: too many requests are waiting), with why."""

    index: int
    status: Literal["created", "replayed", "conflict", "queue_full"]
    request: RequestPublic | None = None
    detail: str | None = None


class RequestBatchResult(BaseModel):
    """One result per request of the batch, in the order they were sent."""

    items: list[BatchItemResult]


class RequestsPage(BaseModel):
    """One page of requests, newest first; pass ``next_cursor`` as ``cursor`` for the next."""

    items: list[RequestPublic]
    next_cursor: str | None


class HistoryPublic(BaseModel):
    """A request with its transitions, executions, approvals and escalations, in order."""

    request: RequestPublic
    transitions: list[TransitionView]
    executions: list[ExecutionView]
    approvals: list[ApprovalView]
    escalations: list[EscalationView]


class CancelBody(_Body):
    """Why the request is cancelled (optional)."""

    reason: str | None = Field(default=None, max_length=2000)


class DecisionBody(_Body):
    """A reviewer's decision on an approval gate."""

    decision: Literal["approve", "reject"]
    note: str | None = Field(default=None, max_length=2000)


class ResolutionBody(_Body):
    """What an escalated request does next."""

    resolution: Literal["retry", "skip", "fail"]
    note: str | None = Field(default=None, max_length=2000)


class AuditRecordPublic(BaseModel):
    """One audit row: its canonical columns, ``hash``, and the event's data."""

    id: uuid.UUID
    chain_key: str
    seq: int
    request_id: uuid.UUID | None
    event_type: str
    severity: str
    actor: str
    agent_id: str | None
    occurred_at: str = Field(description="UTC, ISO 8601 with microseconds and `Z`")
    event_data: dict[str, Any]
    prev_hash: str
    hash: str


class AuditLogPage(BaseModel):
    """One keyset page of audit rows."""

    items: list[AuditRecordPublic]
    next_cursor: str | None


class VerifyBody(_Body):
    """What to verify: everything, or one request's chain, optionally against a checkpoint.

    The newest stored checkpoint is always used; ``checkpoint`` names another stored one to
    hold the chains to as well.
    """

    request_id: uuid.UUID | None = None
    checkpoint: str | None = Field(
        default=None, pattern=r"^[0-9a-fA-F]{64}$", description="digest of a stored checkpoint"
    )
    allow_unsigned: bool = Field(
        default=False,
        description="accept an unsigned checkpoint although AUDIT_HMAC_KEY is set (a note)",
    )


class CheckpointUsed(BaseModel):
    """The checkpoint a verification held the chains to."""

    id: uuid.UUID
    seq: int | None
    digest: str
    created_at: str
    created_by: str
    chains: int
    signed: bool
    source: str


class VerifyReport(BaseModel):
    """The outcome of a verification."""

    ok: bool
    rows: int
    chains: int
    checkpoint: CheckpointUsed | None = None
    problems: list[dict[str, Any]]
    notes: list[str]


class CheckpointBody(_Body):
    """Whether to sign the checkpoint with ``AUDIT_HMAC_KEY`` (when it is set)."""

    sign: StrictBool = True


class CheckpointPublic(BaseModel):
    """A recorded checkpoint: keep ``digest`` outside the database.

    ``prev_digest`` is the digest of checkpoint ``seq - 1``: checkpoints form a chain.
    """

    seq: int
    digest: str
    prev_digest: str | None
    created_at: datetime
    created_by: str
    chains: int
    signature: str | None


class AuditStatusPublic(BaseModel):
    """The newest checkpoint and whether the last full verification passed."""

    last_checkpoint: CheckpointPublic | None
    last_verify_at: datetime | None
    last_verify_by: str | None
    last_verify_ok: bool | None


class Health(BaseModel):
    """Liveness or readiness."""

    status: Literal["ok", "unavailable"]
    reason: str | None = None
    revision: str | None = None
