"""Submitting requests: checked one by one, written many to a transaction.

:func:`prepare` validates a submit and builds its change without I/O. A :class:`SubmitWriter`
commits the changes of every submit waiting at that moment in one transaction (group
commit, as the workers do for steps): one count of the pending queue, one multi-row
``INSERT ... ON CONFLICT DO NOTHING RETURNING id`` of the requests, their transition and
audit rows, and one chain-registry entry. Nothing is read back: the caller's view is built
from the row that was inserted.

An idempotency key already used by the same submitter makes the insert skip that row; only
then is the existing request read (after the commit), and returned if its payload is the
same, else ``IdempotencyConflict``. Submits past ``MAX_QUEUED_REQUESTS`` get ``QueueFull``
unless their key names an existing request, which is returned as before.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.chain import digest
from app.config import Settings, get_settings
from app.database import Database, IntegrityViolation
from app.database.models import Request
from app.database.types import utcnow
from app.exceptions import LedgerflowError
from app.ids import uuid7
from app.orchestrator import transitions
from app.orchestrator.changes import write_changes
from app.orchestrator.exceptions import IdempotencyConflict, InvalidRequest, QueueFull
from app.orchestrator.records import Change
from app.orchestrator.retry import WRITE_RETRYABLE, transient_retry
from app.orchestrator.states import State
from app.orchestrator.views import RequestView
from app.orchestrator.workflows import WorkflowRegistry
from app.webhooks.exceptions import CallbackUrlRefused
from app.webhooks.urls import check_callback_url

log = structlog.get_logger(__name__)

__all__ = [
    "MAX_BATCH",
    "Outcome",
    "Prepared",
    "SubmitWriter",
    "prepare",
    "require_text",
    "submitted_view",
]

#: Submits written in one transaction at most (and the most ``submit_many`` takes).
MAX_BATCH = 500
#: How long a count of pending requests stands in for a new one, far from the limit.
RECOUNT_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Prepared:
    """A submit that passed every check that needs no database, with its change built."""

    change: Change
    submitted_by: str
    idempotency_key: str | None
    payload_digest: str


def prepare(
    workflows: WorkflowRegistry,
    kind: str,
    payload: Mapping[str, Any],
    submitted_by: str,
    idempotency_key: str | None = None,
    priority: int = 0,
    callback_url: str | None = None,
    *,
    settings: Settings | None = None,
) -> Prepared:
    """Validate one submit (raising ``InvalidRequest`` naming every bad field) and build its
    change; payload rules that depend on the deployment are checked against ``settings``,
    and so is ``callback_url`` (https, or http to loopback when allowed)."""
    submitted_by = require_text(submitted_by, "submitted_by")
    if idempotency_key is not None:
        idempotency_key = require_text(idempotency_key, "idempotency_key", limit=255)
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise InvalidRequest("must be an integer", field="priority")
    if not -100 <= priority <= 100:
        bound = "at least -100" if priority < -100 else "at most 100"
        raise InvalidRequest(f"must be {bound}", field="priority")
    if not isinstance(payload, Mapping):
        raise InvalidRequest("must be an object", field="payload")
    if callback_url is not None:
        callback_url = _callback_url(callback_url, settings or get_settings())
    workflow = workflows.get(kind)
    clean = workflow.validate_payload(payload, settings)
    payload_digest = digest(clean)
    change = transitions.submitted(
        request_id=uuid7(),
        workflow=workflow,
        payload=clean,
        payload_digest=payload_digest,
        submitted_by=submitted_by,
        idempotency_key=idempotency_key,
        priority=priority,
        now=utcnow(),
        callback_url=callback_url,
    )
    return Prepared(change, submitted_by, idempotency_key, payload_digest)


def _callback_url(url: str, settings: Settings) -> str:
    try:
        return check_callback_url(url, allow_http_loopback=settings.webhook_allow_http_loopback)
    except CallbackUrlRefused as exc:
        raise InvalidRequest(exc.message, field="callback_url") from None


def require_text(value: object, field: str, limit: int = 128) -> str:
    """``value`` without surrounding blanks, if it is a non-blank string of at most ``limit``
    characters; else ``InvalidRequest`` naming ``field``."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest("must be a non-empty string", field=field)
    if len(value) > limit:
        raise InvalidRequest(f"must be at most {limit} characters", field=field)
    return value.strip()


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


#: What a submit ends with: its request, or the error that refused it.
Outcome = RequestView | LedgerflowError
_Waiting = tuple[Prepared, "asyncio.Future[Outcome]"]


class SubmitWriter:
    """Group commit for submits: the submits waiting when a transaction starts share it.

    ``queue_limit`` gives ``MAX_QUEUED_REQUESTS`` (0: no limit) when a batch is written.
    One drain task per event loop writes batches while submits wait; a caller that is
    cancelled does not stop the transaction its submit is part of.
    """

    def __init__(self, database: Database, queue_limit: Callable[[], int]) -> None:
        self.database = database
        self.queue_limit = queue_limit
        self._waiting: list[_Waiting] = []
        self._drain: asyncio.Task[None] | None = None
        #: Pending requests at the last count plus those inserted here since, and when.
        self._pending_seen = 0
        self._counted_at = -math.inf
        #: Transactions written, and submits in them (for benchmarks and tests).
        self.batches = 0
        self.submits = 0

    async def write(self, items: Sequence[Prepared]) -> list[Outcome]:
        """Commit ``items`` (with whatever else is waiting); one outcome per item, in order."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Outcome]] = [loop.create_future() for _ in items]
        self._waiting.extend(zip(items, futures, strict=True))
        if self._drain is None or self._drain.done() or self._drain.get_loop() is not loop:
            self._drain = loop.create_task(self._write_waiting(), name="submit-writer")
        return list(await asyncio.shield(asyncio.gather(*futures)))

    async def _write_waiting(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
            try:
                outcomes = await self._commit([item for item, _ in batch])
            except Exception as exc:  # every waiting caller hears of it, none hangs
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if not future.done():
                    future.set_result(outcome)

    async def _commit(self, items: list[Prepared]) -> list[Outcome]:
        try:
            async for attempt in transient_retry(on=WRITE_RETRYABLE):
                with attempt:
                    admitted, passed = await self._insert(items)
        except IntegrityViolation as exc:
            if len(items) == 1:
                return [exc]
            # One bad submit must not sink the others: write each on its own.
            log.warning("submit_batch_split", size=len(items), error=str(exc))
            return [outcome for item in items for outcome in await self._commit([item])]
        self.batches += 1
        self.submits += len(passed)
        outcomes: list[Outcome] = []
        for index, item in enumerate(items):
            if item.change.request_id in passed:
                outcomes.append(submitted_view(item.change))
            else:
                outcomes.append(await self._not_inserted(item, queued=index < admitted))
        return outcomes

    async def _insert(self, items: list[Prepared]) -> tuple[int, set[uuid.UUID]]:
        """Write as many of ``items`` as the queue has room for; (admitted, inserted ids)."""
        async with self.database.session() as session:
            room = await self._room(session, len(items))
            admitted = len(items) if room is None else min(room, len(items))
            passed = await write_changes(session, [i.change for i in items[:admitted]])
        self._pending_seen += len(passed)
        return admitted, passed

    async def _room(self, session: AsyncSession, wanted: int) -> int | None:
        """Pending requests that may still be added (None: no limit).

        Counting is an index range on ``ix_requests_state_created_at`` of up to ``limit``
        rows, inside the insert's transaction, so it is exact on SQLite (one writer) and on
        PostgreSQL concurrent batches may overshoot by their number. Far from the limit it
        is skipped: within :data:`RECOUNT_SECONDS` of a count, while that count plus this
        process's inserts since (an overestimate, as workers only take requests away) plus
        ``wanted`` stays under 90 % of the limit, the room is taken from that figure.
        """
        limit = self.queue_limit()
        if limit <= 0:
            return None
        now = time.monotonic()
        fresh = now - self._counted_at < RECOUNT_SECONDS
        if not (fresh and self._pending_seen + wanted <= 0.9 * limit):
            pending = select(Request.id).where(Request.state == State.PENDING).limit(limit)
            count = (
                await session.execute(select(func.count()).select_from(pending.subquery()))
            ).scalar_one()
            self._pending_seen, self._counted_at = int(count), now
        return max(0, limit - self._pending_seen)

    async def _not_inserted(self, item: Prepared, *, queued: bool) -> Outcome:
        """The outcome of a submit whose row was not written: a replay, a conflict or no room."""
        if item.idempotency_key is not None:
            try:
                existing = await self._existing(item)
            except IdempotencyConflict as exc:
                return exc
            if existing is not None:
                return existing
        if not queued:
            return self._queue_full()
        return IntegrityViolation(f"request {item.change.request_id} was not inserted")

    async def _existing(self, item: Prepared) -> RequestView | None:
        async with self.database.read_session() as session:
            row = (
                await session.execute(
                    select(Request).where(
                        Request.submitted_by == item.submitted_by,
                        Request.idempotency_key == item.idempotency_key,
                    )
                )
            ).scalar_one_or_none()
            if row is None:
                return None
            if row.payload_digest != item.payload_digest:
                raise IdempotencyConflict(
                    f"idempotency key {item.idempotency_key!r} was used by {item.submitted_by} "
                    f"for request {row.id} with a different payload"
                )
            return RequestView.model_validate(row)

    def _queue_full(self) -> QueueFull:
        limit = self.queue_limit()
        retry_after = get_settings().queue_full_retry_after_seconds
        return QueueFull(
            f"{limit} requests are already waiting (MAX_QUEUED_REQUESTS={limit}); "
            f"retry after {retry_after} s",
            retry_after=retry_after,
            limit=limit,
        )
