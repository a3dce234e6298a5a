"""The orchestrator's Python API: submit, cancel, decide approvals, resolve escalations
(and read, through :class:`~app.orchestrator.reads.Reader`).

Every function is one transaction through ``Database.session()`` and writes through
:mod:`app.orchestrator.changes`, so each change of state commits its request row, its
``state_transitions`` row and its audit rows together, or nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Required, TypedDict, TypeVar

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings, get_settings
from app.database import Database
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
    InvalidRequest,
)
from app.orchestrator.reads import Reader
from app.orchestrator.records import Gate, Snapshot
from app.orchestrator.retry import retrying_write
from app.orchestrator.submit import (
    MAX_BATCH,
    Outcome,
    Prepared,
    SubmitWriter,
    prepare,
    require_text,
)
from app.orchestrator.views import (
    RequestView,
)
from app.orchestrator.workflows import WorkflowRegistry
from app.validation import FieldProblem

_MAX_TEXT = 2000
ViewT = TypeVar("ViewT", bound=BaseModel)


def _optional_text(value: str | None, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > _MAX_TEXT:
        raise InvalidRequest(f"must be a string of at most {_MAX_TEXT} characters", field=field)
    return value


class SubmitSpec(TypedDict, total=False):
    """One submit of :meth:`Orchestrator.submit_many`: :meth:`Orchestrator.submit`'s arguments."""

    kind: Required[str]
    payload: Required[Mapping[str, Any]]
    submitted_by: Required[str]
    idempotency_key: str | None
    priority: int
    callback_url: str | None


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
        self._submits = SubmitWriter(database, self._queue_limit)

    def _queue_limit(self) -> int:
        if self.max_queued_requests is not None:
            return self.max_queued_requests
        return get_settings().max_queued_requests

    # -- submit ---------------------------------------------------------------------------

    async def submit(
        self,
        kind: str,
        payload: Mapping[str, Any],
        submitted_by: str,
        idempotency_key: str | None = None,
        priority: int = 0,
        callback_url: str | None = None,
    ) -> RequestView:
        """Create a request, or return the one already made with the same idempotency key.

        The same key with a different payload raises ``IdempotencyConflict`` and writes
        nothing. With ``MAX_QUEUED_REQUESTS`` requests already pending, a new request raises
        ``QueueFull`` (checked inside the insert's transaction, so nothing is written); a
        resubmission of an existing idempotency key still returns its request. An invalid
        payload raises ``InvalidRequest`` naming every bad field, also those checked against
        the settings (a transcription's ``audio_file_path`` outside ``AUDIO_DIR``).
        Concurrent submits share one transaction (:class:`~app.orchestrator.submit.SubmitWriter`).
        With ``callback_url`` (https; see :mod:`app.webhooks`), a callback signed with the
        webhook secret of the API client named ``submitted_by`` is owed at each terminal or
        waiting-for-a-person state; a replayed idempotency key keeps the first submit's URL.
        """
        prepared = prepare(
            self.workflows,
            kind,
            payload,
            submitted_by,
            idempotency_key,
            priority,
            callback_url,
            settings=self.settings,
        )
        [outcome] = await self._submits.write([prepared])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def submit_many(self, submits: Sequence[SubmitSpec]) -> list[Outcome]:
        """Submit up to 500 requests at once: all are checked before any is written.

        Each of ``submits`` is the keyword arguments of :meth:`submit` (``kind``,
        ``payload``, ``submitted_by``, optional ``idempotency_key`` and ``priority``). If
        any is invalid, ``InvalidRequests`` names every invalid field (``3.payload...``)
        and nothing is written. Otherwise each gets its outcome, in order: its request (new,
        or the existing one for a known idempotency key), or the error that refused it
        (``IdempotencyConflict``, ``QueueFull``).
        """
        if not 1 <= len(submits) <= MAX_BATCH:
            raise InvalidRequest(f"must hold 1 to {MAX_BATCH} requests", field="requests")
        prepared: list[Prepared] = []
        problems: list[FieldProblem] = []
        for index, spec in enumerate(submits):
            try:
                prepared.append(prepare(self.workflows, **spec, settings=self.settings))
            except InvalidRequest as exc:
                found = exc.problems or (FieldProblem("", str(exc)),)
                problems.extend(
                    FieldProblem(f"{index}.{p.field}".rstrip("."), p.message) for p in found
                )
        if problems:
            raise InvalidRequest(problems=problems)
        return await self._submits.write(prepared)

    # -- steer ----------------------------------------------------------------------------

    @retrying_write
    async def cancel(
        self, request_id: uuid.UUID, actor: str, reason: str | None = None
    ) -> RequestView:
        """Cancel a request that has not finished; a running step's late result is discarded
        and the request's files are removed once no agent can still be writing them."""
        actor = require_text(actor, "actor")
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
        actor = require_text(actor, "actor")
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
        actor = require_text(actor, "actor")
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
