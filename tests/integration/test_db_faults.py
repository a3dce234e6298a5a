"""Database faults: connections killed under a working engine (PostgreSQL soak test).

For about 45 seconds a client submits requests while a worker runs them, and every
:data:`KILL_EVERY` seconds every other backend on the test database is terminated with
``pg_terminate_backend``. The client retries a failed submission with the same
idempotency key, as an HTTP client retries a 503. Afterwards every request must reach a
terminal state, no step may have succeeded twice, no lease may be left behind and the
audit chains must verify.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import asyncpg
import pytest
import structlog
from sqlalchemy import select
from sqlalchemy.engine import URL

from app.audit import AuditAccess
from app.config import Settings
from app.database import Database, DatabaseUnavailable
from app.database.models import Request
from app.orchestrator.engine import Orchestrator
from app.orchestrator.worker import Worker
from tests.support.agents import engine_agents, engine_workflows
from tests.support.checks import active_requests, assert_ledger_consistent, succeeded_per_step

pytestmark = pytest.mark.slow

SUBMIT_SECONDS = 45.0
KILL_EVERY = 3.0
DRAIN_SECONDS = 60.0
SETTINGS = Settings(_env_file=None, lease_seconds=3.0, heartbeat_seconds=1.0, poll_seconds=0.1)
log = structlog.get_logger(__name__)


@pytest.fixture
def postgres_url(backend: str, database_url: URL) -> URL:
    """Only PostgreSQL has other backends to terminate."""
    if backend != "postgresql":
        pytest.skip("connection termination is a PostgreSQL fault")
    return database_url


@dataclass
class Killer:
    """Terminates every other connection to one database, every ``interval`` seconds."""

    url: URL
    interval: float
    killed: list[int] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        """Kill until ``stop`` is set."""
        dsn = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.interval)
            except TimeoutError:
                pass
            if stop.is_set():
                return
            admin = await asyncpg.connect(dsn)
            try:
                count = await admin.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            finally:
                await admin.close()
            self.killed.append(int(count))
            log.info("backends_terminated", count=count)


async def submit_with_retries(orch: Orchestrator, number: int) -> uuid.UUID:
    """Submit one request, retrying on an unavailable database with the same key."""
    for attempt in range(50):
        try:
            view = await orch.submit(
                "test", {"numbers": [number]}, "svc-soak", idempotency_key=f"soak-{number}"
            )
            return view.id
        except DatabaseUnavailable:
            await asyncio.sleep(min(0.05 * 2**attempt, 1.0))
    raise AssertionError(f"submission {number} never got through")


@pytest.fixture
async def fault_database(postgres_url: URL) -> AsyncIterator[Database]:
    database = Database.from_url(postgres_url, SETTINGS)
    yield database
    await database.dispose()


async def test_worker_and_submitters_ride_out_killed_connections(
    fault_database: Database, postgres_url: URL
) -> None:
    orch = Orchestrator(fault_database, engine_workflows(timeout=5.0))
    worker_db = Database.from_url(postgres_url, SETTINGS)
    worker = Worker(
        Orchestrator(worker_db, engine_workflows(timeout=5.0)),
        engine_agents(),
        settings=SETTINGS,
        concurrency=8,
    )
    stop_killing = asyncio.Event()
    killer = Killer(postgres_url, KILL_EVERY)
    killing = asyncio.create_task(killer.run(stop_killing))
    working = asyncio.create_task(worker.run())
    submitted: list[uuid.UUID] = []
    try:
        deadline = time.monotonic() + SUBMIT_SECONDS
        number = 0
        while time.monotonic() < deadline:
            submitted.append(await submit_with_retries(orch, number))
            number += 1
            await asyncio.sleep(0.02)
        stop_killing.set()
        await killing
        await wait_until_terminal(fault_database, DRAIN_SECONDS)
    finally:
        stop_killing.set()
        worker.stop()
        await asyncio.wait_for(working, timeout=30)
        await worker_db.dispose()

    assert sum(killer.killed) >= 10, f"the faults did not happen: {killer.killed}"
    assert len(submitted) == len(set(submitted)) > 100
    async with fault_database.read_session() as session:
        rows = (await session.execute(select(Request.state, Request.lease_owner))).all()
    assert len(rows) == len(submitted)
    assert {state for state, _ in rows} == {"completed"}
    assert all(owner is None for _, owner in rows)
    duplicates = {key: n for key, n in (await succeeded_per_step(fault_database)).items() if n > 1}
    assert not duplicates, f"steps that succeeded twice: {list(duplicates)[:5]}"
    await assert_ledger_consistent(fault_database)
    report = await AuditAccess(fault_database, "soak-test").verify()
    assert report.ok, report


async def wait_until_terminal(database: Database, seconds: float) -> None:
    """Poll until no request is pending or running."""
    deadline = time.monotonic() + seconds
    active = -1
    while time.monotonic() < deadline:
        try:
            active = await active_requests(database)
        except DatabaseUnavailable:
            active = -1
        if active == 0:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{active} requests still active after {seconds}s")
