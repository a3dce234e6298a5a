"""Group commit: one writer per worker process commits every finished step together.

Agent tasks hand their :class:`RequestChange` to :meth:`GroupCommitter.submit` and wait.
The writer takes everything queued, commits it in one transaction (one fenced UPDATE,
one multi-row INSERT per table) and wakes the tasks with whether their fence held. No
result is acknowledged before its transaction commits, so durability is unchanged; the
database sees one commit per batch instead of one per step.

A :class:`Refill` (the worker) may claim new requests in the same transaction, one for each
request the batch finishes, so a worker's slots are refilled without a claim transaction of
their own and without a pause between a wave of requests ending and the next starting.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Protocol

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from app.database import Database
from app.orchestrator.changes import RequestChange, Snapshot, write_changes
from app.orchestrator.retry import transient_retry

log = structlog.get_logger(__name__)

_Item = tuple[RequestChange, "asyncio.Future[bool]"]


class Refill(Protocol):
    """Claims new requests inside a batch's transaction and starts them once it commits."""

    async def claim_within(
        self, session: AsyncSession, changes: Sequence[RequestChange], passed: set[uuid.UUID]
    ) -> list[Snapshot]:
        """Claim (in ``session``) up to as many requests as ``changes`` finish."""

    def claimed(self, snapshots: list[Snapshot] | None) -> None:
        """The transaction ended: start ``snapshots`` (None: it rolled back)."""


class GroupCommitter:
    """Batches request changes from many tasks into few transactions."""

    def __init__(
        self, database: Database, max_batch: int = 256, refill: Refill | None = None
    ) -> None:
        self.database = database
        self.max_batch = max_batch
        self.refill = refill
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue()
        self.batches = 0
        self.changes = 0

    async def submit(self, change: RequestChange) -> bool:
        """Queue ``change``; True once committed, False if its fence did not hold."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((change, future))
        return await future

    async def run(self) -> None:
        """Commit batches until :meth:`close` is called and the queue is empty."""
        while True:
            item = await self._queue.get()
            if item is None:
                return
            batch = [item]
            closing = False
            while len(batch) < self.max_batch and not self._queue.empty():
                more = self._queue.get_nowait()
                if more is None:
                    closing = True
                    break
                batch.append(more)
            await self._commit(batch)
            if closing:
                return

    async def close(self) -> None:
        """Let queued changes commit, then stop :meth:`run`."""
        self._queue.put_nowait(None)

    async def _commit(self, batch: Sequence[_Item], *, split: bool = False) -> None:
        changes = [change for change, _ in batch]
        try:
            passed = await self._write(changes, refill=not split)
        except Exception as exc:
            if len(batch) > 1:
                # One bad change must not sink the others: commit each on its own.
                log.warning(
                    "batch_commit_split",
                    size=len(batch),
                    error=str(exc),
                    error_type=type(exc).__name__,
                )
                for item in batch:
                    await self._commit([item], split=True)
                return
            log.error("step_commit_failed", request_id=str(changes[0].snapshot.id), error=str(exc))
            _, future = batch[0]
            if not future.done():
                future.set_exception(exc)
            return
        self.batches += 1
        self.changes += len(batch)
        for change, future in batch:
            if not future.done():
                future.set_result(change.snapshot.id in passed)

    async def _write(self, changes: Sequence[RequestChange], *, refill: bool) -> set[uuid.UUID]:
        refill_with = self.refill if refill else None
        async for attempt in transient_retry():
            with attempt:
                claimed: list[Snapshot] | None = None
                try:
                    async with self.database.session() as session:
                        passed = await write_changes(session, changes)
                        if refill_with is not None:
                            claimed = await refill_with.claim_within(session, changes, passed)
                except BaseException:
                    if refill_with is not None:
                        refill_with.claimed(None)
                    raise
                if refill_with is not None:
                    refill_with.claimed(claimed)
                return passed
        raise AssertionError("unreachable: tenacity reraises")
