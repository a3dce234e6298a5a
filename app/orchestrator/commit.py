"""Group commit: one writer per worker process commits every finished step together.

Agent tasks hand their :class:`Change` to :meth:`GroupCommitter.submit` and wait. The
writer takes everything queued, commits it in one transaction (one fenced UPDATE, one
multi-row INSERT per table) and wakes the tasks with whether their fence held. No result is
acknowledged before its transaction commits, so durability is unchanged; the database sees
one commit per batch instead of one per step.

A :class:`Refill` (the worker) may claim new requests in the same transaction, one for each
request the batch finishes, so a worker's slots are refilled without a claim transaction of
their own and without a pause between a wave of requests ending and the next starting.

When the connection is lost around COMMIT the outcome is unknown: the batch may have
landed. The committer then looks for the batch's last audit row of each written request
(``audit_logs`` is append-only, so a row that is there was committed) and goes on as the
database says — delivered, or retried whole. Only an integrity error splits a batch to find
the one bad change; an outage never does.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import NamedTuple, Protocol

import structlog
from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from app.database import Database, IntegrityViolation
from app.database.models import AuditLog
from app.orchestrator.changes import write_changes
from app.orchestrator.records import Change, Snapshot
from app.orchestrator.retry import TRANSIENT, transient_retry

log = structlog.get_logger(__name__)

_Item = tuple[Change, "asyncio.Future[bool]"]
#: A chain position and the hash a committed batch left there.
_Mark = tuple[str, int, str]


class Refilled(NamedTuple):
    """What one batch's refill claimed, and how many worker slots it had reserved."""

    snapshots: list[Snapshot]
    reserved: int


class Refill(Protocol):
    """Claims new requests inside a batch's transaction and starts them once it commits."""

    async def claim_within(
        self, session: AsyncSession, changes: Sequence[Change], passed: set[uuid.UUID]
    ) -> Refilled:
        """Claim (in ``session``) up to as many requests as ``changes`` finish."""

    def claimed(self, refilled: Refilled, committed: bool) -> None:
        """The transaction ended: free the reserved slots, and start the claimed requests
        if it ``committed``."""


class CommitHooks(Protocol):
    """Called around each batch's COMMIT: fault injection in tests, nothing in production."""

    async def before_commit(self, session: AsyncSession) -> None:
        """Every statement of the batch ran; COMMIT is next."""

    async def after_commit(self) -> None:
        """COMMIT returned."""


class GroupCommitter:
    """Batches request changes from many tasks into few transactions."""

    def __init__(
        self,
        database: Database,
        max_batch: int = 256,
        refill: Refill | None = None,
        hooks: CommitHooks | None = None,
        parallel: int = 1,
    ) -> None:
        self.database = database
        self.max_batch = max_batch
        #: Batches committing at once. With 2 on PostgreSQL, the next batch is built and
        #: sent while the previous one commits; each is still one transaction, fenced.
        self.parallel = 1 if database.dialect == "sqlite" else max(1, parallel)
        self.refill = refill
        self.hooks = hooks
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue()
        self.batches = 0
        self.changes = 0
        #: Batches whose COMMIT outcome was unknown and that were found to have landed.
        self.resolved_landed = 0

    async def submit(self, change: Change) -> bool:
        """Queue ``change``; True once committed, False if its fence did not hold."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((change, future))
        return await future

    async def run(self) -> None:
        """Commit batches until :meth:`close` is called and the queue is empty.

        A batch is whatever is queued when one of the ``parallel`` commit slots is free;
        with one slot, batches commit strictly one after another.
        """
        slots = asyncio.Semaphore(self.parallel)
        committing: set[asyncio.Task[None]] = set()
        try:
            while True:
                await slots.acquire()
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
                task = asyncio.create_task(self._commit_in_slot(batch, slots))
                committing.add(task)
                task.add_done_callback(committing.discard)
                if closing:
                    return
        finally:
            if committing:
                await asyncio.gather(*committing)

    async def _commit_in_slot(self, batch: Sequence[_Item], slots: asyncio.Semaphore) -> None:
        try:
            await self._commit(batch)
        finally:
            slots.release()

    async def close(self) -> None:
        """Let queued changes commit, then stop :meth:`run`."""
        self._queue.put_nowait(None)

    async def _commit(self, batch: Sequence[_Item], *, split: bool = False) -> None:
        changes = [change for change, _ in batch]
        try:
            passed = await self._write(changes, refill=not split)
        except IntegrityViolation as exc:
            if len(batch) > 1:
                # One bad change must not sink the others: commit each on its own.
                log.warning("batch_commit_split", size=len(batch), error=str(exc))
                for item in batch:
                    await self._commit([item], split=True)
                return
            self._fail(batch, exc)
            return
        except Exception as exc:
            # An outage that outlasted the retries (or a bug): nothing of the batch is known
            # to be written; each task hears of it and its lease will expire.
            self._fail(batch, exc)
            return
        self.batches += 1
        self.changes += len(batch)
        for change, future in batch:
            if not future.done():
                future.set_result(change.request_id in passed)

    def _fail(self, batch: Sequence[_Item], exc: Exception) -> None:
        for change, future in batch:
            log.error("step_commit_failed", request_id=str(change.request_id), error=str(exc))
            if not future.done():
                future.set_exception(exc)

    async def _write(self, changes: Sequence[Change], *, refill: bool) -> set[uuid.UUID]:
        refill_with = self.refill if refill else None
        async for attempt in transient_retry():
            with attempt:
                claimed = Refilled([], 0)
                marks: list[_Mark] | None = None
                try:
                    async with self.database.session() as session:
                        passed = await write_changes(session, changes)
                        if refill_with is not None:
                            claimed = await refill_with.claim_within(session, changes, passed)
                        marks = _marks(changes, passed, claimed.snapshots)
                        if self.hooks is not None:
                            await self.hooks.before_commit(session)
                    if self.hooks is not None:
                        await self.hooks.after_commit()
                except TRANSIENT as exc:
                    # Lost around COMMIT: ask the database whether the batch landed.
                    if marks and await self._landed(marks):
                        self.resolved_landed += 1
                        log.warning("commit_outcome_resolved", landed=True, error=str(exc))
                        if refill_with is not None:
                            refill_with.claimed(claimed, committed=True)
                        return passed
                    if refill_with is not None:
                        refill_with.claimed(claimed, committed=False)
                    raise
                except BaseException:
                    if refill_with is not None:
                        refill_with.claimed(claimed, committed=False)
                    raise
                if refill_with is not None:
                    refill_with.claimed(claimed, committed=True)
                return passed
        raise AssertionError("unreachable: tenacity reraises")

    async def _landed(self, marks: Sequence[_Mark]) -> bool:
        """Whether a batch whose COMMIT outcome is unknown was committed.

        One indexed read (``uq_audit_logs_chain_key_seq``) of the last audit row the batch
        wrote on each chain: audit rows are never updated or deleted, so finding one with
        the batch's hash means the whole transaction landed. Retried while the database is
        still away; if it never answers the error goes up and the leases expire.
        """
        wanted = {(key, seq): digest for key, seq, digest in marks}
        async for attempt in transient_retry(attempts=10):
            with attempt:
                async with self.database.read_session() as session:
                    rows = await session.execute(
                        select(AuditLog.chain_key, AuditLog.seq, AuditLog.hash).where(
                            tuple_(AuditLog.chain_key, AuditLog.seq).in_(list(wanted))
                        )
                    )
                    return any(wanted.get((k, s)) == h for k, s, h in rows)
        raise AssertionError("unreachable: tenacity reraises")


def _marks(
    changes: Sequence[Change], passed: set[uuid.UUID], claimed: Sequence[Snapshot]
) -> list[_Mark]:
    """Where the batch's transaction left each chain it wrote: (chain, seq, hash)."""
    marks = [
        (str(c.request_id), c.after.audit_seq, c.after.audit_head)
        for c in changes
        if c.request_id in passed and c.audit
    ]
    marks.extend((str(s.id), s.audit_seq, s.audit_head) for s in claimed)
    return marks
