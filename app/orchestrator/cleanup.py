"""Owed file cleanups: removing what the agents of a cancelled or failed request wrote.

A cleanup is owed durably: a ``file_cleanups`` row commits in the same transaction as the
request's cancel or failure (:func:`app.orchestrator.transitions.cancelled`, ``failed``).
Each worker runs a :class:`CleanupRunner` that takes owed rows whose request has no live
lease — a worker still running the step keeps its lease until its agent returns, so no
file is removed under a live agent — and calls every step's ``Agent.cleanup``. Then, in one
transaction, the row is marked done and the removal recorded as ``files_removed`` (counts
and SHA-256 only) on the system chain with the request's id. A failing cleanup is retried
with backoff; a worker that dies mid-cleanup leaves its claim to expire, and another worker
runs it again (removing files is idempotent).

Before a step interrupted by a crash runs again, the worker that recovered it calls
:func:`clean_before_rerun` itself, under its own lease.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.base import Agent, CleanupContext, CleanupReason, RemovedFile
from app.agents.registry import AgentRegistry
from app.audit.events import FilesRemoved, RemovalReason
from app.audit.system import SystemEntry, append_system
from app.config import Settings
from app.database import Database
from app.database.models import FileCleanup, Request
from app.database.types import utcnow
from app.orchestrator.retry import transient_retry
from app.orchestrator.workflows import WorkflowRegistry

log = structlog.get_logger(__name__)

_MAX_BACKOFF = 300.0
_ERROR_TEXT = 500


@dataclass(frozen=True)
class OwedCleanup:
    """A claimed ``file_cleanups`` row."""

    id: uuid.UUID
    request_id: uuid.UUID
    kind: str
    reason: CleanupReason
    attempts: int


async def record_removed(
    session: AsyncSession,
    request_id: uuid.UUID | None,
    reason: RemovalReason,
    removed: dict[str, list[RemovedFile]],
    actor: str,
    now: datetime,
) -> None:
    """Append ``files_removed`` for what each step's agent removed (nothing if nothing was)."""
    files = sorted((f for found in removed.values() for f in found), key=lambda f: f.name)
    if not files:
        return
    event = FilesRemoved(
        reason=reason,
        steps=[step for step, found in removed.items() if found],
        files_removed=len(files),
        bytes_removed=sum(f.bytes for f in files),
        sha256=[f.sha256 for f in files],
    )
    await append_system(session, [SystemEntry(event, actor=actor, request_id=request_id)], now)


async def run_cleanups(
    steps: Sequence[tuple[str, Agent[Any, Any]]],
    context_for: CleanupContextFactory,
) -> dict[str, list[RemovedFile]]:
    """Call each step's agent's cleanup in workflow order; what each removed, by step."""
    removed: dict[str, list[RemovedFile]] = {}
    for step, agent in steps:
        removed[step] = await agent.cleanup(context_for(step))
    return removed


class CleanupContextFactory:
    """Builds the cleanup context of one step of one request."""

    def __init__(
        self, request_id: uuid.UUID, kind: str, reason: CleanupReason, settings: Settings
    ) -> None:
        self.request_id, self.kind, self.reason, self.settings = request_id, kind, reason, settings

    def __call__(self, step: str) -> CleanupContext:
        return CleanupContext(
            request_id=self.request_id,
            kind=self.kind,
            step=step,
            reason=self.reason,
            settings=self.settings,
            log=log.bind(request_id=str(self.request_id), step=step),
        )


async def clean_before_rerun(
    database: Database,
    agent: Agent[Any, Any],
    *,
    request_id: uuid.UUID,
    kind: str,
    step: str,
    settings: Settings,
    actor: str,
) -> list[RemovedFile]:
    """Remove what an interrupted attempt of ``step`` left that a re-run would not overwrite,
    and record it. Called by the worker that recovered the step, before its new attempt."""
    contexts = CleanupContextFactory(request_id, kind, "recovered", settings)
    removed = await agent.cleanup(contexts(step))
    if removed:
        async with database.session() as session:
            await record_removed(session, request_id, "recovered", {step: removed}, actor, utcnow())
    return removed


class CleanupRunner:
    """Takes owed cleanups whose request nobody is running and carries them out."""

    def __init__(
        self,
        database: Database,
        workflows: WorkflowRegistry,
        agents: AgentRegistry,
        settings: Settings,
        worker_id: str,
        *,
        batch: int = 8,
    ) -> None:
        self.database = database
        self.workflows = workflows
        self.agents = agents
        self.settings = settings
        self.worker_id = worker_id
        self.batch = batch
        self.done = 0

    async def run(self, stopping: asyncio.Event) -> None:
        """Carry out owed cleanups until ``stopping`` is set; never raises."""
        while not stopping.is_set():
            try:
                busy = await self.run_once()
            except Exception as exc:
                # Logged, never swallowed silently; the rows stay owed and are tried again.
                log.error("cleanup_failed", error=str(exc), error_type=type(exc).__name__)
                busy = 0
            if busy < self.batch:
                try:
                    await asyncio.wait_for(stopping.wait(), self.settings.cleanup_poll_seconds)
                except TimeoutError:
                    continue

    async def run_once(self) -> int:
        """One pass: claim up to ``batch`` runnable cleanups and carry them out."""
        now = utcnow()
        if not await self._anything_owed(now):
            return 0
        claimed = await self._claim(now)
        for owed in claimed:
            await self._carry_out(owed)
        return len(claimed)

    async def _anything_owed(self, now: datetime) -> bool:
        # A read first: an idle worker must not take SQLite's write lock every poll.
        async for attempt in transient_retry():
            with attempt:
                async with self.database.read_session() as session:
                    row = await session.execute(
                        select(FileCleanup.id)
                        .where(FileCleanup.done_at.is_(None), FileCleanup.not_before <= now)
                        .limit(1)
                    )
                    return row.first() is not None
        raise AssertionError("unreachable: tenacity reraises")

    async def _claim(self, now: datetime) -> list[OwedCleanup]:
        """Claim runnable rows: still owed, not claimed by a live worker, and their request
        has no live lease (``ix_file_cleanups_owed``, then the request by primary key)."""
        unleased = exists().where(
            Request.id == FileCleanup.request_id,
            (Request.lease_owner.is_(None)) | (Request.lease_expires_at < now),
        )
        candidates = (
            select(FileCleanup.id)
            .where(
                FileCleanup.done_at.is_(None),
                FileCleanup.not_before <= now,
                (FileCleanup.claimed_until.is_(None)) | (FileCleanup.claimed_until < now),
            )
            .order_by(FileCleanup.created_at)
            .limit(self.batch)
        )
        until = now + timedelta(seconds=self.settings.lease_seconds)
        async with self.database.session() as session:
            ids = list(
                (await session.execute(candidates.with_for_update(skip_locked=True))).scalars()
            )
            if not ids:
                return []
            rows = await session.execute(
                update(FileCleanup)
                .where(FileCleanup.id.in_(ids), unleased)
                .values(claimed_by=self.worker_id, claimed_until=until)
                .returning(
                    FileCleanup.id, FileCleanup.request_id, FileCleanup.reason, FileCleanup.attempts
                )
            )
            claimed = rows.all()
            kinds = dict(
                (
                    await session.execute(
                        select(Request.id, Request.kind).where(
                            Request.id.in_([row.request_id for row in claimed])
                        )
                    )
                ).all()
            )
        return [
            OwedCleanup(row.id, row.request_id, kinds[row.request_id], row.reason, row.attempts)
            for row in claimed
        ]

    async def _carry_out(self, owed: OwedCleanup) -> None:
        workflow = self.workflows.get(owed.kind)
        steps = [(step.name, self.agents.get(step.agent_id)) for step in workflow.steps]
        contexts = CleanupContextFactory(owed.request_id, owed.kind, owed.reason, self.settings)
        try:
            removed = await run_cleanups(steps, contexts)
        except Exception as exc:
            await self._retry_later(owed, exc)
            return
        now = utcnow()
        async with self.database.session() as session:
            await session.execute(
                update(FileCleanup)
                .where(FileCleanup.id == owed.id, FileCleanup.claimed_by == self.worker_id)
                .values(done_at=now, claimed_by=None, claimed_until=None, error=None)
            )
            await record_removed(
                session, owed.request_id, owed.reason, removed, self.worker_id, now
            )
        self.done += 1
        count = sum(len(found) for found in removed.values())
        log.info("files_removed", request_id=str(owed.request_id), reason=owed.reason, files=count)

    async def _retry_later(self, owed: OwedCleanup, error: Exception) -> None:
        delay = min(_MAX_BACKOFF, 2.0 ** (owed.attempts + 1))
        log.error(
            "cleanup_failed",
            request_id=str(owed.request_id),
            error=str(error),
            error_type=type(error).__name__,
            retry_in=delay,
        )
        async with self.database.session() as session:
            await session.execute(
                update(FileCleanup)
                .where(FileCleanup.id == owed.id, FileCleanup.claimed_by == self.worker_id)
                .values(
                    attempts=owed.attempts + 1,
                    not_before=utcnow() + timedelta(seconds=delay),
                    claimed_by=None,
                    claimed_until=None,
                    error=f"{type(error).__name__}: {error}"[:_ERROR_TEXT],
                )
            )
