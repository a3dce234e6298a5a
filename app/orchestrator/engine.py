"""The orchestrator's Python API: submit, cancel, decide approvals, resolve escalations
(and read, through :class:`~app.orchestrator.reads.Reader`).

Every function is one transaction through ``Database.session()`` and writes through
:mod:`app.orchestrator.changes`, so each change of state commits its request row, its
``state_transitions`` row and its audit rows together, or nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.chain import digest
from app.config import Settings, get_settings
from app.database import Database, IntegrityViolation
from app.database.models import Request
from app.database.types import utcnow
from app.orchestrator import transitions
from app.orchestrator.changes import (
    gate_request,
    lock_gate,
    lock_snapshot,
    one_change,
    write_changes,
)
from app.orchestrator.exceptions import (
    IdempotencyConflict,
    InvalidRequest,
    QueueFull,
)
from app.orchestrator.reads import Reader
from app.orchestrator.records import Change, Gate, Snapshot
from app.orchestrator.retry import retrying_write
from app.orchestrator.states import State
from app.orchestrator.views import (
    RequestView,
)
from app.orchestrator.workflows import WorkflowRegistry

_MAX_TEXT = 2000
ViewT = TypeVar("ViewT", bound=BaseModel)


def _require_text(value: str | None, field: str, *, limit: int = 128) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest("must be a non-empty string", field=field)
    if len(value) > limit:
        raise InvalidRequest(f"must be at most {limit} characters", field=field)
    return value.strip()


def _optional_text(value: str | None, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > _MAX_TEXT:
        raise InvalidRequest(f"must be a string of at most {_MAX_TEXT} characters", field=field)
    return value


def submitted_view(change: Change) -> RequestView:
    """The view of a request just inserted, built from its row (no read-back)."""
    row = change.insert
    if row is None:
        raise ValueError("not a submit")
    return RequestView(
        id=row["id"],
        kind=row["kind"],
        state=row["state"],
        current_step=row["current_step"],
        step_index=row["step_index"],
        attempt=row["attempt"],
        priority=row["priority"],
        submitted_by=row["submitted_by"],
        idempotency_key=row["idempotency_key"],
        payload=row["payload"],
        result=None,
        error=None,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        completed_at=None,
    )


class Orchestrator(Reader):
    """Submits and steers requests; workers (``app.orchestrator.worker``) run them.

    Its reads (``get``, ``list``, ``history``, ``approvals``, ...) come from
    :class:`~app.orchestrator.reads.Reader`.
    """

    def __init__(
        self,
        database: Database,
        workflows: WorkflowRegistry,
        *,
        max_queued_requests: int | None = None,
        settings: Settings | None = None,
    ) -> None:
        super().__init__(database)
        self.workflows = workflows
        #: Pending requests past which ``submit`` raises ``QueueFull`` (None: the
        #: ``MAX_QUEUED_REQUESTS`` setting; 0: no limit).
        self.max_queued_requests = max_queued_requests
        #: What submitted payloads are checked against (``AUDIO_DIR``...); None: the
        #: process's settings.
        self.settings = settings

    # -- submit ---------------------------------------------------------------------------

    @retrying_write
    async def submit(
        self,
        kind: str,
        payload: Mapping[str, Any],
        submitted_by: str,
        idempotency_key: str | None = None,
        priority: int = 0,
    ) -> RequestView:
        """Create a request, or return the one already made with the same idempotency key.

        The same key with a different payload raises ``IdempotencyConflict`` and writes
        nothing. With ``MAX_QUEUED_REQUESTS`` requests already pending, a new request raises
        ``QueueFull`` (checked inside the insert's transaction, so nothing is written); a
        resubmission of an existing idempotency key still returns its request. An invalid
        payload raises ``InvalidRequest`` naming every bad field, also those checked against
        the settings (a transcription's ``audio_file_path`` outside ``AUDIO_DIR``).
        """
        submitted_by = _require_text(submitted_by, "submitted_by")
        if idempotency_key is not None:
            idempotency_key = _require_text(idempotency_key, "idempotency_key", limit=255)
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise InvalidRequest("must be an integer", field="priority")
        if not -100 <= priority <= 100:
            bound = "at least -100" if priority < -100 else "at most 100"
            raise InvalidRequest(f"must be {bound}", field="priority")
        if not isinstance(payload, Mapping):
            raise InvalidRequest("must be an object", field="payload")
        workflow = self.workflows.get(kind)
        clean = workflow.validate_payload(payload, self.settings)
        payload_digest = digest(clean)
        if idempotency_key is not None:
            existing = await self._find_idempotent(submitted_by, idempotency_key, payload_digest)
            if existing is not None:
                return existing
        change = transitions.submitted(
            request_id=uuid.uuid4(),
            workflow=workflow,
            payload=clean,
            payload_digest=payload_digest,
            submitted_by=submitted_by,
            idempotency_key=idempotency_key,
            priority=priority,
            now=utcnow(),
        )
        try:
            async with self.database.session() as session:
                await self._check_queue(session)
                await write_changes(session, [change])
        except IntegrityViolation:
            # A concurrent submit with the same key won the unique constraint.
            if idempotency_key is None:
                raise
            existing = await self._find_idempotent(submitted_by, idempotency_key, payload_digest)
            if existing is None:
                raise
            return existing
        return submitted_view(change)

    async def _check_queue(self, session: AsyncSession) -> None:
        """Raise ``QueueFull`` when the pending requests reach the limit.

        Counts at most ``limit`` pending rows (an index range on
        ``ix_requests_state_created_at``) inside the submit transaction: exact on SQLite (one
        writer); on PostgreSQL concurrent submits may overshoot by their number.
        """
        settings = get_settings()
        limit = (
            self.max_queued_requests
            if self.max_queued_requests is not None
            else settings.max_queued_requests
        )
        if limit <= 0:
            return
        pending = select(Request.id).where(Request.state == State.PENDING).limit(limit)
        count = (
            await session.execute(select(func.count()).select_from(pending.subquery()))
        ).scalar_one()
        if count >= limit:
            retry_after = settings.queue_full_retry_after_seconds
            raise QueueFull(
                f"{count} requests are already waiting (MAX_QUEUED_REQUESTS={limit}); "
                f"retry after {retry_after} s",
                retry_after=retry_after,
                limit=limit,
            )

    async def _find_idempotent(
        self, submitted_by: str, key: str, payload_digest: str
    ) -> RequestView | None:
        async with self.database.read_session() as session:
            row = (
                await session.execute(
                    select(Request).where(
                        Request.submitted_by == submitted_by, Request.idempotency_key == key
                    )
                )
            ).scalar_one_or_none()
            if row is None:
                return None
            if row.payload_digest != payload_digest:
                raise IdempotencyConflict(
                    f"idempotency key {key!r} was used by {submitted_by} "
                    f"for request {row.id} with a different payload"
                )
            return RequestView.model_validate(row)

    # -- steer ----------------------------------------------------------------------------

    @retrying_write
    async def cancel(
        self, request_id: uuid.UUID, actor: str, reason: str | None = None
    ) -> RequestView:
        """Cancel a request that has not finished; a running step's late result is discarded
        and the request's files are removed once no agent can still be writing them."""
        actor = _require_text(actor, "actor")
        reason = _optional_text(reason, "reason")
        async with self.database.session() as session:
            snap = await lock_snapshot(session, request_id)
            change = transitions.cancelled(snap, actor, reason, utcnow())
            one_change(await write_changes(session, [change]), change)
        return await self.get(request_id)

    @retrying_write
    async def decide_approval(
        self,
        approval_id: uuid.UUID,
        actor: str,
        decision: Literal["approve", "reject"],
        note: str | None = None,
    ) -> RequestView:
        """Approve (the request goes on) or reject (it fails, with the reviewer's note)."""
        actor = _require_text(actor, "actor")
        note = _optional_text(note, "note")
        if decision not in ("approve", "reject"):
            raise InvalidRequest("must be 'approve' or 'reject'", field="decision")
        async with self.database.session() as session:
            snap, gate = await self._lock_gated(session, "approvals", approval_id)
            workflow = self.workflows.get(snap.kind)
            decide = transitions.approved if decision == "approve" else transitions.rejected
            change = decide(snap, workflow, gate, actor, note, utcnow())
            one_change(await write_changes(session, [change]), change)
        return await self.get(snap.id)

    @retrying_write
    async def resolve_escalation(
        self,
        escalation_id: uuid.UUID,
        actor: str,
        resolution: Literal["retry", "skip", "fail"],
        note: str | None = None,
    ) -> RequestView:
        """Decide an escalated request: retry the step, skip it, or fail the request."""
        actor = _require_text(actor, "actor")
        note = _optional_text(note, "note")
        if resolution not in ("retry", "skip", "fail"):
            raise InvalidRequest("must be 'retry', 'skip' or 'fail'", field="resolution")
        async with self.database.session() as session:
            snap, gate = await self._lock_gated(session, "escalations", escalation_id)
            workflow = self.workflows.get(snap.kind)
            change = transitions.resolved(snap, workflow, gate, resolution, actor, note, utcnow())
            one_change(await write_changes(session, [change]), change)
        return await self.get(snap.id)

    async def _lock_gated(
        self,
        session: AsyncSession,
        table: Literal["approvals", "escalations"],
        gate_id: uuid.UUID,
    ) -> tuple[Snapshot, Gate]:
        # The lock order of app.orchestrator.changes: the request first, then its gate.
        request_id = await gate_request(session, table, gate_id)
        snap = await lock_snapshot(session, request_id)
        return snap, await lock_gate(session, table, gate_id)
