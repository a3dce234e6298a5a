"""The worker: claim runnable requests, hold their leases, run their steps, commit results.

One process runs ``concurrency`` requests at a time as asyncio tasks. A request, once
claimed, is driven through consecutive steps under the same lease; each step's result and
the start of the next step commit together through the :class:`GroupCommitter`. Leases are
renewed by one heartbeat statement per interval. Any number of worker processes may share
one PostgreSQL database (claims use ``FOR UPDATE SKIP LOCKED``; results are fenced by the
request's ``version``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
import uuid
from collections.abc import Sequence
from typing import Any

import structlog
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.base import (
    AgentContext,
    AgentError,
    ClinicalDataSource,
    NeedsHumanReview,
    PermanentError,
    StepResult,
)
from app.agents.registry import AgentRegistry
from app.audit.events import StaleResultDiscarded
from app.audit.system import SystemEntry, append_system
from app.config import Settings, get_settings
from app.database import Database, IntegrityViolation
from app.database.engine import sqlite_path
from app.database.models import AgentExecution, Request
from app.database.types import utcnow
from app.database.wal import WalCheckpointer
from app.orchestrator import transitions
from app.orchestrator.changes import write_changes
from app.orchestrator.cleanup import CleanupRunner, clean_before_rerun
from app.orchestrator.commit import CommitHooks, GroupCommitter, Refilled
from app.orchestrator.engine import Orchestrator
from app.orchestrator.queries import extend_leases, release_lease, select_claimable
from app.orchestrator.records import Change, Snapshot
from app.orchestrator.retry import transient_retry
from app.orchestrator.states import State
from app.orchestrator.transitions import Attempt, Failure, Lease, Success
from app.orchestrator.workflows import Workflow
from app.webhooks.sender import CallbackSender

log = structlog.get_logger(__name__)


def new_worker_id() -> str:
    """A worker id unique across machines and restarts: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Worker:
    """Runs requests of the orchestrator's registered kinds."""

    def __init__(
        self,
        orchestrator: Orchestrator,
        agents: AgentRegistry,
        *,
        settings: Settings | None = None,
        concurrency: int | None = None,
        worker_id: str | None = None,
        warehouse: ClinicalDataSource | None = None,
        commit_hooks: CommitHooks | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.orchestrator = orchestrator
        self.database: Database = orchestrator.database
        self.workflows = orchestrator.workflows
        self.agents = agents
        self.workflows.check_agents(agents)
        self.concurrency = concurrency or self.settings.worker_concurrency
        self.worker_id = worker_id or new_worker_id()
        self.lease = Lease(self.worker_id, self.settings.lease_seconds)
        self.warehouse: ClinicalDataSource = warehouse or self.database
        # A batch as large as the worker's concurrency; on PostgreSQL COMMIT_PARALLELISM
        # batches in flight (the next is sent while one commits; see PHASE_NOTES 7g).
        # The committer also refills the slots a batch frees, in the batch's transaction.
        self.committer = GroupCommitter(
            self.database,
            max_batch=max(1, self.concurrency),
            refill=self,
            hooks=commit_hooks,
            parallel=self.settings.commit_parallelism,
        )
        self.cleanups = CleanupRunner(
            self.database, self.workflows, agents, self.settings, self.worker_id
        )
        #: Sends the webhook callbacks the outbox owes (``app.webhooks.sender``).
        self.callbacks = CallbackSender(self.database, self.settings, self.worker_id)
        self._stopping = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._tasks: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._inflight: dict[uuid.UUID, Snapshot] = {}

        self._agent_logs: dict[str, Any] = {}
        #: Slots promised to claims in flight: the claim loop's and the committer's refills.
        self._claiming = False
        self._refilling = 0
        self.steps_done = 0

    # -- lifecycle ------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop claiming; in-flight requests finish their current step, then are released."""
        self._stopping.set()

    async def run(self, *, until_idle: bool = False) -> None:
        """Claim and run requests until :meth:`stop` (or, with ``until_idle``, none are left)."""
        structlog.contextvars.bind_contextvars(worker_id=self.worker_id)
        log.info("worker_started", concurrency=self.concurrency)
        committer = asyncio.create_task(self.committer.run(), name="group-commit")
        heartbeat = asyncio.create_task(self._heartbeat(), name="heartbeat")
        cleaner = asyncio.create_task(self.cleanups.run(self._stopping), name="cleanups")
        callbacks = asyncio.create_task(self.callbacks.run(self._stopping), name="callbacks")
        checkpointer = self._wal_checkpointer()
        checkpoints = checkpointer and asyncio.create_task(checkpointer.run(), name="wal")
        try:
            await self._claim_loop(until_idle)
        finally:
            await self._shutdown()
            await self.committer.close()
            await committer
            self._stopping.set()
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            await cleaner
            await callbacks
            if checkpointer and checkpoints:
                checkpointer.stop()
                await checkpoints
            log.info("worker_stopped", steps=self.steps_done)

    def _wal_checkpointer(self) -> WalCheckpointer | None:
        path = sqlite_path(self.database.url) if self.database.dialect == "sqlite" else None
        every = self.settings.sqlite_checkpoint_seconds
        return WalCheckpointer(path, every) if path is not None and every > 0 else None

    async def _claim_loop(self, until_idle: bool) -> None:
        # Claim in batches: one claim transaction for a quarter of the slots, not one each.
        batch = max(1, self.concurrency // 4)
        while not self._stopping.is_set():
            free = self.concurrency - len(self._tasks) - self._refilling
            worth_it = free >= batch or (free > 0 and len(self._tasks) < batch)
            claimed = []
            if worth_it:
                self._claiming = True
                try:
                    claimed = await self._claim(free)
                finally:
                    self._claiming = False
            self._start(claimed)
            if (claimed and len(claimed) == free) or (free > 0 and not worth_it):
                await self._wait_for_slot(None)
            elif not claimed and until_idle and not self._tasks:
                return
            elif not claimed or len(claimed) < free:
                await self._wait_for_slot(self.settings.poll_seconds)

    def _start(self, snapshots: list[Snapshot]) -> None:
        for snap in snapshots:
            self._inflight[snap.id] = snap
            self._tasks[snap.id] = asyncio.create_task(self._drive(snap), name=str(snap.id))

    async def _wait_for_slot(self, timeout: float | None) -> None:
        self._slot_freed.clear()
        waiters = [asyncio.ensure_future(self._slot_freed.wait())]
        waiters.append(asyncio.ensure_future(self._stopping.wait()))
        _, pending = await asyncio.wait(waiters, timeout=timeout, return_when="FIRST_COMPLETED")
        for waiter in pending:
            waiter.cancel()
        # Let every task that finished in the same commit free its slot before claiming.
        await asyncio.sleep(0)

    async def _shutdown(self) -> None:
        if not self._tasks:
            return
        log.info("worker_draining", inflight=len(self._tasks))
        _, late = await asyncio.wait(
            list(self._tasks.values()), timeout=self.settings.shutdown_grace_seconds
        )
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)
        stuck = list(self._inflight.values())
        if stuck:
            await self._release(stuck)

    async def _release(self, snapshots: list[Snapshot]) -> None:
        now = utcnow()
        changes = [
            transitions.released(snap, self.workflows.get(snap.kind), self.lease, now)
            for snap in snapshots
        ]
        async with self.database.session() as session:
            released = await write_changes(session, changes)
        log.info("leases_released", count=len(released))

    # -- claim and heartbeat --------------------------------------------------------------

    async def _claim(self, limit: int) -> list[Snapshot]:
        try:
            async for attempt in transient_retry():
                with attempt:
                    return await self._claim_once(limit)
        except Exception as exc:
            # Never swallowed: logged, and the loop tries again after its poll interval.
            log.error("claim_failed", error=str(exc), error_type=type(exc).__name__)
        return []

    async def _claim_once(self, limit: int) -> list[Snapshot]:
        async with self.database.session() as session:
            return await self._claim_in(session, limit)

    async def claim_within(
        self, session: AsyncSession, changes: Sequence[Change], passed: set[uuid.UUID]
    ) -> Refilled:
        """Refill, in the committer's transaction, the slots that ``changes`` free.

        Skipped while the claim loop is claiming (it counts free slots itself) or stopping.
        The claimed requests start only once the transaction commits (:meth:`claimed`).
        """
        if self._stopping.is_set() or self._claiming:
            return Refilled([], 0)
        finishing = sum(
            1 for c in changes if c.request_id not in passed or c.after.state != State.RUNNING
        )
        limit = min(finishing, self.concurrency - self._refilling)
        if limit <= 0:
            return Refilled([], 0)
        self._refilling += limit
        try:
            return Refilled(await self._claim_in(session, limit), limit)
        except BaseException:
            self._refilling -= limit
            raise

    def claimed(self, refilled: Refilled, committed: bool) -> None:
        """A committer's transaction ended: free its reserved slots and, if it committed,
        start what it claimed (batches may commit two at a time, each with its own)."""
        self._refilling -= refilled.reserved
        if committed and refilled.snapshots:
            self._start(refilled.snapshots)

    async def _claim_in(self, session: AsyncSession, limit: int) -> list[Snapshot]:
        now = utcnow()
        rows = await select_claimable(session, self.workflows.kinds, now, limit)
        snapshots = [Snapshot.from_row(row) for row in rows]
        changes = [
            transitions.taken(snap, self.workflows.get(snap.kind), self.lease, now)
            for snap in snapshots
        ]
        passed = await write_changes(session, changes)
        claimed = []
        for before, change in zip(snapshots, changes, strict=True):
            if change.request_id not in passed:
                continue
            snap = change.after
            if before.state == State.RUNNING:
                log.warning(
                    "lease_recovered",
                    request_id=str(snap.id),
                    step=snap.current_step,
                    attempt=snap.attempt,
                    previous_worker=before.lease_owner,
                )
            if snap.state == State.RUNNING:
                claimed.append(snap)
        return claimed

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_seconds)
            driving = set(self._inflight)
            if not driving:
                continue
            try:
                async for attempt in transient_retry():
                    with attempt:
                        async with self.database.session() as session:
                            renewed = await extend_leases(
                                session, self.worker_id, driving, self.lease.until(utcnow())
                            )
            except Exception as exc:
                log.error("heartbeat_failed", error=str(exc), error_type=type(exc).__name__)
                continue
            for lost in driving - renewed:
                # Taken over after our lease ran out: our result will be refused (fenced).
                if lost in self._inflight:
                    log.warning("lease_lost", request_id=str(lost))

    # -- running a request ----------------------------------------------------------------

    async def _drive(self, snap: Snapshot) -> None:
        try:
            with structlog.contextvars.bound_contextvars(request_id=str(snap.id)):
                await self._drive_steps(snap)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The request stays leased to us until the lease expires; another worker (or we)
            # will recover it. Logged loudly, never dropped.
            log.error("request_abandoned", error=str(exc), error_type=type(exc).__name__)
            self._forget_inflight(snap.id)
        finally:
            if self._owns(snap.id):
                del self._tasks[snap.id]
            self._slot_freed.set()

    def _owns(self, request_id: uuid.UUID) -> bool:
        # A request this task just left (retry scheduled, gate) may already be claimed
        # again, by the claim loop or a refill, and driven by a new task under the same id.
        # Only the task registered for the id may drop the worker's records of it.
        return self._tasks.get(request_id) is asyncio.current_task()

    def _forget_inflight(self, request_id: uuid.UUID) -> None:
        if self._owns(request_id):
            self._inflight.pop(request_id, None)

    async def _drive_steps(self, snap: Snapshot) -> None:
        workflow = self.workflows.get(snap.kind)
        if snap.interrupted:
            step = workflow.steps[snap.step_index]
            await clean_before_rerun(
                self.database,
                self.agents.get(step.agent_id),
                request_id=snap.id,
                kind=snap.kind,
                step=step.name,
                settings=self.settings,
                actor=self.worker_id,
            )
        while True:
            step = workflow.steps[snap.step_index]
            # This task's own context (bound in _drive): rebinding per step needs no reset.
            structlog.contextvars.bind_contextvars(step=step.name, attempt=snap.attempt)
            change = await self._run_step(snap, workflow)
            try:
                committed = await self.committer.submit(change)
            except IntegrityViolation as exc:
                # The step's own rows (an agent's domain write) broke a constraint: the
                # attempt failed, and is recorded as such, without those rows.
                change = self._refused(snap, workflow, change, exc)
                committed = await self.committer.submit(change)
            if not committed:
                self._forget_inflight(snap.id)
                await self._discard(snap, change)
                return
            self.steps_done += 1
            snap = change.after
            if snap.state != State.RUNNING:
                self._forget_inflight(snap.id)
                return
            self._inflight[snap.id] = snap

    def _refused(
        self, snap: Snapshot, workflow: Workflow, change: Change, error: IntegrityViolation
    ) -> Change:
        log.error("step_rows_refused", error=error.message)
        started_at = change.executions[0]["started_at"] if change.executions else utcnow()
        failure = Failure(error_type=type(error).__name__, message=error.message)
        return transitions.attempt_failed(
            snap, workflow, failure, Attempt(self.lease, started_at, utcnow())
        )

    async def _run_step(self, snap: Snapshot, workflow: Workflow) -> Change:
        step = workflow.steps[snap.step_index]
        agent = self.agents.get(step.agent_id)
        context = AgentContext(
            request_id=snap.id,
            kind=snap.kind,
            step=step.name,
            attempt=snap.attempt,
            idempotency_key=f"{snap.id}:{step.name}",
            log=self._agent_log(step.agent_id),
            warehouse=self.warehouse,
            settings=self.settings,
        )
        started_at = utcnow()
        begun = time.perf_counter()
        try:
            parsed = agent.parse_input(snap.payload, snap.result or {})
            # asyncio.timeout, not wait_for: the agent runs in this task, not in a new one.
            async with asyncio.timeout(step.timeout):
                outcome = await agent.run(context, parsed)
        except (TimeoutError, Exception) as exc:
            failure = classify_failure(exc, step.retry.permanent)
            log.warning(
                "step_failed",
                error_type=failure.error_type,
                timed_out=failure.timed_out,
                permanent=failure.permanent,
                review=failure.review is not None,
                ms=int((time.perf_counter() - begun) * 1000),
            )
            attempt = Attempt(self.lease, started_at, utcnow())
            return transitions.attempt_failed(snap, workflow, failure, attempt)
        result = outcome if isinstance(outcome, StepResult) else StepResult(output=outcome)
        success = Success(
            output=result.output.model_dump(mode="json"),
            writes=result.writes,
            review=result.review,
            review_detail=result.review_detail,
        )
        attempt = Attempt(self.lease, started_at, utcnow())
        return transitions.succeeded(
            snap, workflow, success, attempt, stopping=self._stopping.is_set()
        )

    def _agent_log(self, agent_id: str) -> Any:
        """A logger bound with ``agent_id`` (request, step and attempt come from contextvars)."""
        bound = self._agent_logs.get(agent_id)
        if bound is None:
            bound = self._agent_logs[agent_id] = log.bind(agent_id=agent_id)
        return bound

    async def _discard(self, snap: Snapshot, change: Change) -> None:
        """Record a result that lost its fence, on the system chain (see ``app.audit.system``)."""
        workflow = self.workflows.get(snap.kind)
        step = workflow.steps[snap.step_index]
        ran = change.executions[0] if change.executions else None
        output_digest = ran["output_digest"] if ran else None
        now = utcnow()
        async with self.database.session() as session:
            state = (
                await session.execute(select(Request.state).where(Request.id == snap.id))
            ).scalar_one()
            reason = "request cancelled" if state == State.CANCELLED else "lease lost"
            row = transitions.discarded_execution(
                snap,
                workflow,
                worker_id=self.worker_id,
                started_at=ran["started_at"] if ran else now,
                now=now,
                reason=reason,
            )
            session.add(AgentExecution(**row))
            # We no longer drive it: a cancelled request's files may now be removed.
            await release_lease(session, snap.id, self.worker_id)
            await append_system(
                session,
                [
                    SystemEntry(
                        StaleResultDiscarded(
                            step=step.name,
                            attempt=snap.attempt,
                            worker_id=self.worker_id,
                            output_digest=output_digest,
                            reason=reason,
                        ),
                        actor=self.worker_id,
                        request_id=snap.id,
                        agent_id=step.agent_id,
                    )
                ],
                now,
            )
        log.warning("stale_result_discarded", reason=reason, output_digest=output_digest)


def classify_failure(
    error: BaseException, permanent: tuple[type[BaseException], ...] = ()
) -> Failure:
    """How an agent's exception counts: timed out, permanent, a call for a person, or
    retryable (the default)."""
    review = error.reason if isinstance(error, NeedsHumanReview) else None
    return Failure(
        error_type=type(error).__name__,
        message=str(error),
        timed_out=isinstance(error, TimeoutError),
        permanent=isinstance(error, (PermanentError, ValidationError, *permanent)),
        review=review,
        detail=error.detail if isinstance(error, AgentError) else {},
        writes=error.writes if isinstance(error, AgentError) else (),
    )


async def run_worker(worker: Worker) -> None:
    """Run ``worker`` until SIGTERM or SIGINT, then shut down gracefully."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, worker.stop)
    try:
        await worker.run()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
