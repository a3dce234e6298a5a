"""SQLAlchemy 2 typed models for every ledgerflow table.

Conventions: UUID primary keys (native ``uuid`` on PostgreSQL, ``CHAR(32)`` on SQLite),
timezone-aware UTC timestamps with microseconds (:class:`UTCDateTime`), JSON columns that
are JSONB on PostgreSQL. Foreign keys into ``requests`` are ``ON DELETE RESTRICT``: a
request that has an audit trail can never be deleted out from under it, and nothing is
cascaded away silently. Domain rows (research, recordings) hang off their request.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.database.types import JSONType, UTCDateTime, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONDict = dict[str, Any]


class Base(DeclarativeBase):
    """Declarative base of the orchestrator's own tables."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        uuid.UUID: Uuid(),
        JSONDict: JSONType,
        dict[str, Any]: JSONType,
        list[Any]: JSONType,
    }


class WarehouseBase(DeclarativeBase):
    """Declarative base of the synthetic clinical warehouse (may live in another database)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime()}


def _request_fk() -> ForeignKey:
    return ForeignKey("requests.id", ondelete="RESTRICT")


# --------------------------------------------------------------------------- orchestrator


class Request(Base):
    """One unit of work (a research data request or a transcription) and its live state.

    The row is also the head of the request's audit hash chain (``audit_seq``,
    ``audit_head``): the lease holder is its only writer, so appending costs no extra round
    trip. ``version`` increases on every write and fences stale workers.
    """

    __tablename__ = "requests"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(24))
    step_index: Mapped[int] = mapped_column(Integer, default=0)
    current_step: Mapped[str | None] = mapped_column(String(64))
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    #: The last attempt the current step may make before it escalates (grows on "retry").
    max_attempt: Mapped[int] = mapped_column(Integer, default=1)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    submitted_by: Mapped[str] = mapped_column(String(128))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    payload_digest: Mapped[str] = mapped_column(String(64))
    payload: Mapped[JSONDict]
    result: Mapped[JSONDict | None]
    error: Mapped[JSONDict | None]
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None]
    not_before: Mapped[datetime] = mapped_column(default=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=0)
    audit_seq: Mapped[int] = mapped_column(Integer, default=0)
    audit_head: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None]
    #: Legal hold (issue 7): while set, retention never purges this request's data.
    legal_hold_at: Mapped[datetime | None]
    legal_hold_by: Mapped[str | None] = mapped_column(String(128))
    legal_hold_reason: Mapped[str | None] = mapped_column(Text)
    #: When retention purged the payload bodies (``payload``, ``result``, step outputs).
    purged_at: Mapped[datetime | None]
    #: Where a signed callback goes on each terminal or waiting-for-a-person state (the
    #: submit's own ``callback_url``, else its API client's default); None: no callbacks.
    callback_url: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("submitted_by", "idempotency_key"),
        Index("ix_requests_state_created_at", "state", "created_at"),
        Index("ix_requests_kind_created_at", "kind", "created_at"),
        Index("ix_requests_submitted_by_created_at", "submitted_by", "created_at"),
        Index("ix_requests_created_at_id", "created_at", "id"),
        # The claim query walks this partial index in claim order (priority, then age) and
        # only ever sees rows a worker could take.
        Index(
            "ix_requests_claim",
            text("priority DESC"),
            "created_at",
            postgresql_where=text("state IN ('pending', 'running')"),
            sqlite_where=text("state IN ('pending', 'running')"),
        ),
        # Retention walks finished, not yet purged requests oldest first.
        Index(
            "ix_requests_retention",
            "completed_at",
            postgresql_where=text("purged_at IS NULL"),
            sqlite_where=text("purged_at IS NULL"),
        ),
    )


class StateTransition(Base):
    """One change of a request's state: from, to, at which step, by whom and why."""

    __tablename__ = "state_transitions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    request_id: Mapped[uuid.UUID] = mapped_column(_request_fk())
    from_state: Mapped[str | None] = mapped_column(String(24))
    to_state: Mapped[str] = mapped_column(String(24))
    step: Mapped[str | None] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_state_transitions_request_id_created_at", "request_id", "created_at"),
    )


class AgentExecution(Base):
    """One attempt of one agent step: outcome, digests of input and output, timing, worker."""

    __tablename__ = "agent_executions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    request_id: Mapped[uuid.UUID] = mapped_column(_request_fk())
    step: Mapped[str] = mapped_column(String(64))
    step_index: Mapped[int] = mapped_column(Integer)
    agent_id: Mapped[str] = mapped_column(String(64))
    attempt: Mapped[int] = mapped_column(Integer)
    #: succeeded | failed | timed_out | interrupted | discarded | needs_review
    status: Mapped[str] = mapped_column(String(16))
    input_digest: Mapped[str | None] = mapped_column(String(64))
    output_digest: Mapped[str | None] = mapped_column(String(64))
    output: Mapped[JSONDict | None]
    error: Mapped[str | None] = mapped_column(Text)
    worker_id: Mapped[str | None] = mapped_column(String(128))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    duration_ms: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        Index("ix_agent_executions_request_id_step_index", "request_id", "step_index", "attempt"),
        Index("ix_agent_executions_agent_id_started_at", "agent_id", "started_at"),
    )


class Approval(Base):
    """A planned human gate after a step: pending until a reviewer approves or rejects."""

    __tablename__ = "approvals"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    request_id: Mapped[uuid.UUID] = mapped_column(_request_fk())
    step: Mapped[str] = mapped_column(String(64))
    #: pending | approved | rejected | cancelled
    status: Mapped[str] = mapped_column(String(16), default="pending")
    summary: Mapped[JSONDict | None]
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_by: Mapped[str | None] = mapped_column(String(128))
    decided_at: Mapped[datetime | None]
    note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_approvals_status_requested_at", "status", "requested_at"),
        Index("ix_approvals_request_id", "request_id"),
    )


class Escalation(Base):
    """An unplanned stop that needs a person: errors, timeouts, infeasible cohorts, doubts."""

    __tablename__ = "escalations"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    request_id: Mapped[uuid.UUID] = mapped_column(_request_fk())
    step: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(48))
    detail: Mapped[JSONDict | None]
    #: open | resolved | cancelled
    status: Mapped[str] = mapped_column(String(16), default="open")
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_by: Mapped[str | None] = mapped_column(String(128))
    resolved_at: Mapped[datetime | None]
    #: retry | skip | fail
    resolution: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_escalations_status_opened_at", "status", "opened_at"),
        Index("ix_escalations_request_id", "request_id"),
    )


class FileCleanup(Base):
    """Files a request's steps may have written, owed a removal once it was cancelled or failed.

    Written in the same transaction as the change of state; a worker removes the files once
    nobody holds the request's lease (no agent can still be writing them), records
    ``files_removed`` on the audit trail and sets ``done_at``. Retried with backoff.
    """

    __tablename__ = "file_cleanups"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    request_id: Mapped[uuid.UUID] = mapped_column(_request_fk())
    #: cancelled | failed | discarded (a late result's files)
    reason: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_until: Mapped[datetime | None]
    done_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        # Workers look only at cleanups still owed, oldest first.
        Index(
            "ix_file_cleanups_owed",
            "created_at",
            postgresql_where=text("done_at IS NULL"),
            sqlite_where=text("done_at IS NULL"),
        ),
        Index("ix_file_cleanups_request_id", "request_id"),
    )


class CallbackOutbox(Base):
    """A webhook callback owed for a change of state (the outbox).

    Written in the same transaction as the change of state it announces (terminal, or
    waiting for a person), so it exists exactly when the change committed. Workers claim
    due rows with a lease, POST the signed body, and set ``sent_at`` (2xx) or, after the
    last attempt, ``failed_at``; every attempt is audited (``callback_sent`` /
    ``callback_failed``). Delivery is at least once: receivers dedupe on ``Webhook-Id``.
    """

    __tablename__ = "callback_outbox"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    request_id: Mapped[uuid.UUID] = mapped_column(_request_fk())
    #: The request's kind and the state it entered (the body's ``kind`` and ``state``).
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(24))
    #: The API client whose webhook secret signs the body (the request's ``submitted_by``).
    client: Mapped[str] = mapped_column(String(128))
    url: Mapped[str] = mapped_column(Text)
    #: When the change of state happened (the body's ``at``).
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_until: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]
    #: The last attempt's HTTP status, or why it got none (``timeout``, ``connect_error``…).
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        # Workers look only at callbacks still owed, in due order.
        Index(
            "ix_callback_outbox_due",
            "not_before",
            postgresql_where=text("sent_at IS NULL AND failed_at IS NULL"),
            sqlite_where=text("sent_at IS NULL AND failed_at IS NULL"),
        ),
        Index("ix_callback_outbox_request_id", "request_id"),
    )


# --------------------------------------------------------------------------- audit


class AuditLog(Base):
    """One typed, hash-chained audit event. Append-only: triggers refuse UPDATE and DELETE.

    ``chain_key`` is the request id (text) or ``system``; ``seq`` numbers the chain from 1;
    ``hash`` is SHA-256 over the row's canonical form including ``prev_hash``.
    """

    __tablename__ = "audit_logs"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    chain_key: Mapped[str] = mapped_column(String(36))
    seq: Mapped[int] = mapped_column(Integer)
    request_id: Mapped[uuid.UUID | None] = mapped_column(_request_fk())
    event_type: Mapped[str] = mapped_column(String(48))
    severity: Mapped[str] = mapped_column(String(10))
    actor: Mapped[str] = mapped_column(String(128))
    agent_id: Mapped[str | None] = mapped_column(String(64))
    occurred_at: Mapped[datetime]
    #: ``json`` on PostgreSQL too (not ``jsonb``): the canonical text the hash covers is
    #: kept as written, so verification and exports hash and copy it without re-encoding.
    event_data: Mapped[JSONDict] = mapped_column(JSON(none_as_null=True))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        UniqueConstraint("chain_key", "seq"),
        Index("ix_audit_logs_request_id", "request_id"),
        Index("ix_audit_logs_occurred_at_id", "occurred_at", "id"),
        Index("ix_audit_logs_event_type_occurred_at", "event_type", "occurred_at"),
        Index("ix_audit_logs_agent_id_occurred_at", "agent_id", "occurred_at"),
        Index("ix_audit_logs_actor_occurred_at", "actor", "occurred_at"),
        Index("ix_audit_logs_severity_occurred_at", "severity", "occurred_at"),
    )


class AuditChain(Base):
    """Head of a chain that has no request row to carry it (the ``system`` chain)."""

    __tablename__ = "audit_chains"

    chain_key: Mapped[str] = mapped_column(String(36), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, default=0)
    head_hash: Mapped[str] = mapped_column(String(64), default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditCheckpoint(Base):
    """A digest over every chain head at one moment, to be kept outside the database too.

    Checkpoints are chained: ``seq`` numbers them, ``prev_digest`` links each to the one
    before, and ``heads`` holds only the heads changed since it (version 2; see
    ``app.audit.checkpoint``). Append-only: triggers refuse UPDATE and DELETE.
    """

    __tablename__ = "audit_checkpoints"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    seq: Mapped[int] = mapped_column(Integer)
    #: 1: ``heads`` holds every head and the digest has no chain fields; 2: chained.
    version: Mapped[int] = mapped_column(Integer, default=2)
    prev_digest: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))
    chain_count: Mapped[int] = mapped_column(Integer)
    heads_digest: Mapped[str | None] = mapped_column(String(64))
    digest: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str | None] = mapped_column(String(64))
    heads: Mapped[JSONDict]

    __table_args__ = (UniqueConstraint("seq"),)


class ApiClient(Base):
    """A caller of the HTTP API: a role and the SHA-256 of its key (the key is shown once)."""

    __tablename__ = "api_clients"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    key_prefix: Mapped[str] = mapped_column(String(16), index=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    #: Default ``callback_url`` of the requests this client submits over HTTP.
    callback_url: Mapped[str | None] = mapped_column(Text)
    #: Signs this client's webhook callbacks (HMAC-SHA256); shown once, when made or rotated.
    webhook_secret: Mapped[str | None] = mapped_column(String(64))


class ConsoleSession(Base):
    """A web console sign-in: the SHA-256 of its token and the API client it acts as.

    The token itself lives only in the browser's HttpOnly cookie. A session ends when its
    user signs out (the row is deleted), after ``CONSOLE_IDLE_SECONDS`` without a page
    view, or ``CONSOLE_SESSION_SECONDS`` after sign-in (``expires_at``), whichever is first.
    """

    __tablename__ = "console_sessions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("api_clients.id", ondelete="RESTRICT"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]

    # Sign-in sweeps out sessions past their lifetime in expiry order.
    __table_args__ = (Index("ix_console_sessions_expires_at", "expires_at"),)


# --------------------------------------------------------------------------- research


class ResearchRequest(Base):
    """The research-specific face of a request: who asks, under which IRB approval, for what."""

    __tablename__ = "research_requests"

    request_id: Mapped[uuid.UUID] = mapped_column(_request_fk(), primary_key=True)
    researcher: Mapped[str] = mapped_column(String(128))
    irb_number: Mapped[str | None] = mapped_column(String(64))
    study_title: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_research_requests_irb_number", "irb_number"),)


class RequirementsData(Base):
    """Normalised cohort criteria of a research request, with a completeness score."""

    __tablename__ = "requirements_data"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    request_id: Mapped[uuid.UUID] = mapped_column(_request_fk(), index=True)
    criteria: Mapped[JSONDict]
    completeness_score: Mapped[float] = mapped_column(Float)
    issues: Mapped[list[Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FeasibilityReport(Base):
    """The cohort query that was run, its size and the availability of each data element."""

    __tablename__ = "feasibility_reports"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    request_id: Mapped[uuid.UUID] = mapped_column(_request_fk(), index=True)
    sql_text: Mapped[str] = mapped_column(Text)
    cohort_size: Mapped[int] = mapped_column(Integer)
    min_cohort_size: Mapped[int] = mapped_column(Integer)
    feasible: Mapped[bool] = mapped_column(Boolean)
    element_availability: Mapped[JSONDict]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DataDelivery(Base):
    """Files delivered for a research request, with their SHA-256 manifest."""

    __tablename__ = "data_deliveries"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    request_id: Mapped[uuid.UUID] = mapped_column(_request_fk(), index=True)
    folder: Mapped[str] = mapped_column(Text)
    files: Mapped[list[Any]]
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    row_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: When retention deleted the delivered files (the manifest digest stays).
    purged_at: Mapped[datetime | None]

    __table_args__ = (
        # Retention looks only at deliveries whose files are still on disk.
        Index(
            "ix_data_deliveries_retained",
            "request_id",
            postgresql_where=text("purged_at IS NULL"),
            sqlite_where=text("purged_at IS NULL"),
        ),
    )


# --------------------------------------------------------------------------- transcription


class Recording(Base):
    """A dictated recording and what became of it (transcript, verification).

    Its ``id`` is its transcription request's id (one id to carry from upload to reading).
    ``transcript`` is the current text, a copy of the newest ``transcript_versions`` row
    (``transcript_version``); every version, the recogniser's first among them, is kept
    there, so a correction is one guarded UPDATE here plus one INSERT there.
    """

    __tablename__ = "recordings"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    request_id: Mapped[uuid.UUID] = mapped_column(_request_fk(), unique=True)
    patient_id: Mapped[str] = mapped_column(String(64), index=True)
    clinician_id: Mapped[str] = mapped_column(String(64), index=True)
    audio_file_path: Mapped[str] = mapped_column(Text)
    audio_file_size: Mapped[int] = mapped_column(Integer)
    audio_sha256: Mapped[str | None] = mapped_column(String(64))
    duration_seconds: Mapped[float | None] = mapped_column(Float)
    #: uploaded | validated | transcribed | verified | failed
    status: Mapped[str] = mapped_column(String(16), default="uploaded")
    error_message: Mapped[str | None] = mapped_column(Text)
    retry_count: Mapped[int] = mapped_column(Integer, default=0)
    transcript: Mapped[str | None] = mapped_column(Text)
    #: The current transcript's version (0: no transcript yet; 1: the recogniser's).
    transcript_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    verification_results: Mapped[JSONDict | None]
    uploaded_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None]
    #: When retention deleted the audio file (its ``audio_sha256`` stays).
    audio_purged_at: Mapped[datetime | None]

    __table_args__ = (
        # The recordings list's keyset order, unfiltered and by status.
        Index("ix_recordings_uploaded_at_id", "uploaded_at", "id"),
        Index("ix_recordings_status_uploaded_at", "status", "uploaded_at"),
        # Retention looks only at recordings whose audio is still on disk.
        Index(
            "ix_recordings_audio_retained",
            "request_id",
            postgresql_where=text("audio_purged_at IS NULL"),
            sqlite_where=text("audio_purged_at IS NULL"),
        ),
    )


class TranscriptVersion(Base):
    """One version of a recording's transcript: the recogniser's (1), then each correction.

    Rows are only ever added; retention may later clear ``text`` (the digest stays).
    """

    __tablename__ = "transcript_versions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    recording_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("recordings.id", ondelete="RESTRICT")
    )
    version: Mapped[int] = mapped_column(Integer)
    #: The text; null once retention purged the request's payload bodies.
    text: Mapped[str | None] = mapped_column(Text)
    #: SHA-256 of the text (UTF-8).
    digest: Mapped[str] = mapped_column(String(64))
    #: ``asr`` (the recogniser) or ``clinician`` (a correction).
    source: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("recording_id", "version"),)


# --------------------------------------------------------------------------- warehouse


class Patient(WarehouseBase):
    """A synthetic patient, with the direct identifiers de-identification must remove."""

    __tablename__ = "patients"

    patient_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    mrn: Mapped[str] = mapped_column(String(16), unique=True)
    first_name: Mapped[str] = mapped_column(String(64))
    last_name: Mapped[str] = mapped_column(String(64))
    birth_date: Mapped[date] = mapped_column(Date)
    sex: Mapped[str] = mapped_column(String(1))
    address: Mapped[str] = mapped_column(String(128))
    city: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(2))
    zip_code: Mapped[str] = mapped_column(String(10))
    phone: Mapped[str] = mapped_column(String(20))
    email: Mapped[str] = mapped_column(String(128))


class Condition(WarehouseBase):
    """A diagnosis (ICD-10-CM) recorded for a patient."""

    __tablename__ = "conditions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.patient_id"))
    icd10_code: Mapped[str] = mapped_column(String(8))
    description: Mapped[str] = mapped_column(String(128))
    onset_date: Mapped[date] = mapped_column(Date)

    __table_args__ = (
        Index("ix_conditions_icd10_code_onset_date", "icd10_code", "onset_date"),
        Index("ix_conditions_patient_id", "patient_id"),
    )


class Encounter(WarehouseBase):
    """A visit of a patient to a facility."""

    __tablename__ = "encounters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.patient_id"))
    encounter_date: Mapped[date] = mapped_column(Date)
    encounter_type: Mapped[str] = mapped_column(String(32))
    facility: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_encounters_patient_id_encounter_date", "patient_id", "encounter_date"),
    )


class Observation(WarehouseBase):
    """A measurement (LOINC-coded) for a patient."""

    __tablename__ = "observations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.patient_id"))
    loinc_code: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)
    unit: Mapped[str] = mapped_column(String(16))
    observed_on: Mapped[date] = mapped_column(Date)

    __table_args__ = (Index("ix_observations_patient_id_loinc_code", "patient_id", "loinc_code"),)


#: Every table the migrations manage (orchestrator and the default, co-located warehouse).
ALL_METADATA = (Base.metadata, WarehouseBase.metadata)
