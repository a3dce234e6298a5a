"""The edges of the durability promise: dropped leases, unknown COMMIT outcomes, bad rows."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.database import Database, DatabaseBusy, DatabaseUnavailable
from app.database.models import AuditLog, Request
from app.database.types import utcnow
from app.orchestrator import transitions
from app.orchestrator.changes import write_changes
from app.orchestrator.engine import Orchestrator
from app.orchestrator.queries import select_claimable
from app.orchestrator.records import Snapshot
from app.orchestrator.worker import Worker
from tests.databases import PG_ADMIN_URL
from tests.support.agents import engine_agents, engine_workflows
from tests.support.checks import assert_ledger_consistent, event_types, succeeded_per_step
from tests.support.pgproxy import MARKER, PgProxy

LEASE = 1.0
SETTINGS = Settings(poll_seconds=0.02, lease_seconds=LEASE, heartbeat_seconds=0.2)


@pytest.fixture
async def orchestrator(database: Database) -> AsyncIterator[Orchestrator]:
    orch = Orchestrator(database, engine_workflows(timeout=30))
    yield orch
    await assert_ledger_consistent(database)


async def state_of(database: Database, request_id: Any) -> str:
    async with database.read_session() as session:
        return str(
            (await session.execute(select(Request.state).where(Request.id == request_id))).scalar()
        )


async def wait_for(predicate: Callable[[], Awaitable[bool]], timeout: float, what: str) -> float:
    begun = time.monotonic()
    while time.monotonic() - begun < timeout:
        if await predicate():
            return time.monotonic() - begun
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


async def run_in_background(worker: Worker) -> asyncio.Task[None]:
    task = asyncio.create_task(worker.run())
    await asyncio.sleep(0)
    return task


async def stop(worker: Worker, task: asyncio.Task[None]) -> None:
    worker.stop()
    await asyncio.wait_for(task, timeout=30)


# -- item 1: a dropped request is never kept leased --------------------------------------------


async def test_step_whose_rows_break_a_constraint_ends_escalated_not_running(
    orchestrator: Orchestrator,
) -> None:
    database = orchestrator.database
    busy = [
        await orchestrator.submit("single", {"numbers": [1], "sleep": {"only": 4}}, "svc")
        for _ in range(3)
    ]
    broken = await orchestrator.submit("single", {"numbers": [1], "bad_write": ["only"]}, "svc")
    worker = Worker(orchestrator, engine_agents(), settings=SETTINGS, concurrency=4)
    task = await run_in_background(worker)
    try:

        async def settled() -> bool:
            return await state_of(database, broken.id) in ("failed", "escalated")

        # Well before the busy requests finish: nothing keeps the broken one leased.
        await wait_for(settled, timeout=3 * LEASE, what="the broken request to settle")
        assert all([await state_of(database, b.id) == "running" for b in busy])
    finally:
        await stop(worker, task)
    async with database.read_session() as session:
        errors = (
            await session.execute(
                select(AuditLog.event_data).where(
                    AuditLog.request_id == broken.id, AuditLog.event_type == "agent_failed"
                )
            )
        ).scalars()
        assert any(e["error_type"] == "IntegrityViolation" for e in errors)
    async with database.read_session() as session:
        recording_rows = (await session.execute(text("SELECT count(*) FROM recordings"))).scalar()
    assert recording_rows == 0  # the bad rows were never written


async def claim_as(database: Database, orchestrator: Orchestrator, worker_id: str) -> Snapshot:
    """Claim one request exactly as a worker does, then drop the result (a lost reply)."""
    lease = transitions.Lease(worker_id, LEASE)
    async with database.session() as session:
        rows = await select_claimable(session, orchestrator.workflows.kinds, utcnow(), 1)
        change = transitions.taken(
            Snapshot.from_row(rows[0]), orchestrator.workflows.get(rows[0].kind), lease, utcnow()
        )
        assert await write_changes(session, [change])
    return change.after


async def test_claim_whose_reply_was_lost_is_recovered_while_the_worker_is_busy(
    orchestrator: Orchestrator,
) -> None:
    database = orchestrator.database
    lost = await orchestrator.submit("single", {"numbers": [5]}, "svc")
    worker = Worker(orchestrator, engine_agents(), settings=SETTINGS, concurrency=4)
    await claim_as(database, orchestrator, worker.worker_id)
    for _ in range(2):
        await orchestrator.submit("single", {"numbers": [1], "sleep": {"only": 5}}, "svc")
    task = await run_in_background(worker)
    try:

        async def done() -> bool:
            return await state_of(database, lost.id) == "completed"

        await wait_for(done, timeout=4 * LEASE, what="the lost claim to be recovered")
    finally:
        await stop(worker, task)
    assert "step_recovered" in await event_types(database, lost.id)


# -- item 2: a commit whose outcome is unknown is resolved, not guessed ------------------------


class OnceHooks:
    """Fault injection around the group commit's COMMIT, a given number of times."""

    def __init__(
        self,
        before: Callable[[AsyncSession], Awaitable[None]] | None = None,
        after: Callable[[], Awaitable[None]] | None = None,
        times: int = 1,
    ) -> None:
        self.before, self.after, self.left = before, after, times
        self.fired = 0

    def _due(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        self.fired += 1
        return True

    async def before_commit(self, session: AsyncSession) -> None:
        if self.before is not None and self._due():
            await self.before(session)

    async def after_commit(self) -> None:
        if self.after is not None and self._due():
            await self.after()


async def run_three_step_requests(
    orchestrator: Orchestrator, worker: Worker, count: int = 6
) -> list[Any]:
    ids = [(await orchestrator.submit("test", {"numbers": [i]}, "svc")).id for i in range(count)]
    await asyncio.wait_for(worker.run(until_idle=True), timeout=120)
    return ids


async def assert_each_step_once_and_nothing_discarded(database: Database, ids: list[Any]) -> None:
    for request_id in ids:
        assert await state_of(database, request_id) == "completed"
    counts = await succeeded_per_step(database)
    assert set(counts.values()) == {1}, counts
    async with database.read_session() as session:
        discarded = (
            await session.execute(
                select(AuditLog.id).where(AuditLog.event_type == "stale_result_discarded")
            )
        ).all()
    assert discarded == []


async def lost_reply() -> None:
    raise DatabaseUnavailable("DATABASE_URL: lost the connection (injected after COMMIT)")


async def test_lost_reply_after_commit_is_found_landed(orchestrator: Orchestrator) -> None:
    hooks = OnceHooks(after=lost_reply, times=3)
    worker = Worker(
        orchestrator, engine_agents(), settings=SETTINGS, concurrency=4, commit_hooks=hooks
    )
    ids = await run_three_step_requests(orchestrator, worker)
    assert hooks.fired == 3 and worker.committer.resolved_landed == 3
    await assert_each_step_once_and_nothing_discarded(orchestrator.database, ids)


async def test_failure_before_commit_retries_the_batch_whole(
    orchestrator: Orchestrator, backend: str, database_url: URL
) -> None:
    async def terminate_own_backend(session: AsyncSession) -> None:
        if backend == "postgresql":
            # A real fault: the server kills this very connection before COMMIT.
            await session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
        else:
            raise DatabaseBusy("DATABASE_URL: stayed locked (injected before COMMIT)")

    hooks = OnceHooks(before=terminate_own_backend, times=3)
    worker = Worker(
        orchestrator, engine_agents(), settings=SETTINGS, concurrency=4, commit_hooks=hooks
    )
    ids = await run_three_step_requests(orchestrator, worker)
    assert hooks.fired == 3 and worker.committer.resolved_landed == 0
    await assert_each_step_once_and_nothing_discarded(orchestrator.database, ids)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_connection_cut_before_the_commit_reply_is_found_landed(
    database_url: URL,
) -> None:
    from sqlalchemy.engine import make_url

    admin = make_url(PG_ADMIN_URL)
    proxy = PgProxy(admin.host or "127.0.0.1", admin.port or 5432)
    port = await proxy.start()
    through_proxy = database_url.set(host="127.0.0.1", port=port)
    direct = Database.from_url(database_url)
    proxied = Database.from_url(through_proxy)
    try:
        orchestrator = Orchestrator(direct, engine_workflows(timeout=30))

        async def arm(session: AsyncSession) -> None:
            await session.execute(text(f"SELECT '{MARKER.decode()}'"))

        worker = Worker(
            Orchestrator(proxied, engine_workflows(timeout=30)),
            engine_agents(),
            settings=SETTINGS,
            concurrency=4,
            commit_hooks=OnceHooks(before=arm, times=3),
        )
        ids = await run_three_step_requests(orchestrator, worker)
        assert proxy.cuts == 3 and worker.committer.resolved_landed == 3
        await assert_each_step_once_and_nothing_discarded(direct, ids)
        await assert_ledger_consistent(direct)
    finally:
        await proxied.dispose()
        await direct.dispose()
        await proxy.close()
