"""Real worker processes, real signals: SIGKILL mid-step, SIGSTOP past the lease, scale-out."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import URL

from app.database import Database
from app.database.models import AuditLog
from app.orchestrator.engine import Orchestrator
from tests.support.agents import engine_workflows
from tests.support.checks import (
    assert_ledger_consistent,
    event_types,
    executions,
    succeeded_per_step,
)

ROOT = Path(__file__).resolve().parents[2]
LEASE = 1.5


class Workers:
    """Starts worker processes on one database and makes sure none outlives the test."""

    def __init__(self, url: URL) -> None:
        self.env = {
            **os.environ,
            "DATABASE_URL": url.render_as_string(hide_password=False),
            "LEASE_SECONDS": str(LEASE),
            "HEARTBEAT_SECONDS": "0.3",
            "POLL_SECONDS": "0.05",
            "WORKER_CONCURRENCY": "8",
            "SHUTDOWN_GRACE_SECONDS": "5",
            "PYTHONPATH": str(ROOT),
        }
        self.procs: list[subprocess.Popen[str]] = []

    def start(self) -> tuple[subprocess.Popen[str], str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.worker_main"],
            env=self.env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.procs.append(proc)
        assert proc.stdout is not None
        worker_id = proc.stdout.readline().strip()
        assert worker_id, "worker did not start"
        return proc, worker_id

    def stop_all(self) -> list[int | None]:
        codes = []
        for proc in self.procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
                proc.send_signal(signal.SIGTERM)
            try:
                codes.append(proc.wait(timeout=20))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes.append(None)
        return codes


@pytest.fixture
def workers(database_url: URL) -> Iterator[Workers]:
    pool = Workers(database_url)
    try:
        yield pool
    finally:
        for proc in pool.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


@pytest.fixture
async def orchestrator(database: Database) -> Orchestrator:
    return Orchestrator(database, engine_workflows())


async def wait_for(predicate: Any, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def started(folder: Path, attempt: int) -> list[Path]:
    return list(folder.glob(f"started-{attempt}-*"))


async def test_killed_worker_step_is_recovered_once(
    orchestrator: Orchestrator, workers: Workers, tmp_path: Path
) -> None:
    request = await orchestrator.submit(
        "test", {"numbers": [1], "block": {"second": str(tmp_path)}}, "svc"
    )
    first, first_id = workers.start()

    async def blocked() -> bool:
        return bool(started(tmp_path, 1))

    await wait_for(blocked, what="the first worker to reach step 'second'")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    (tmp_path / "go").touch()

    workers.start()

    async def completed() -> bool:
        return (await orchestrator.get(request.id)).state == "completed"

    await wait_for(completed, what="the request to complete on the second worker")
    assert workers.stop_all()[1] == 0  # the survivor exits cleanly on SIGTERM

    assert await executions(orchestrator.database, request.id) == [
        ("first", 1, "succeeded"),
        ("second", 1, "interrupted"),
        ("second", 2, "succeeded"),
        ("third", 1, "succeeded"),
    ]
    async with orchestrator.database.read_session() as session:
        recovered = (
            await session.execute(
                select(AuditLog).where(
                    AuditLog.request_id == request.id, AuditLog.event_type == "step_recovered"
                )
            )
        ).scalar_one()
    assert recovered.event_data == {
        "step": "second",
        "attempt": 2,
        "previous_attempt": 1,
        "previous_worker": first_id,
    }
    assert set((await succeeded_per_step(orchestrator.database)).values()) == {1}
    assert (await event_types(orchestrator.database, request.id)).count("agent_succeeded") == 3
    await assert_ledger_consistent(orchestrator.database)


async def test_paused_worker_past_its_lease_cannot_commit_its_late_result(
    orchestrator: Orchestrator, workers: Workers, tmp_path: Path
) -> None:
    request = await orchestrator.submit(
        "test", {"numbers": [1], "block": {"second": str(tmp_path)}}, "svc"
    )
    zombie, zombie_id = workers.start()

    async def zombie_blocked() -> bool:
        return bool(started(tmp_path, 1))

    await wait_for(zombie_blocked, what="the first worker to reach step 'second'")
    os.kill(zombie.pid, signal.SIGSTOP)
    await asyncio.sleep(LEASE + 0.5)

    _, rescuer_id = workers.start()

    async def rescuer_blocked() -> bool:
        return bool(started(tmp_path, 2))

    await wait_for(rescuer_blocked, what="the second worker to take the step over")
    (tmp_path / "go").touch()

    async def completed() -> bool:
        return (await orchestrator.get(request.id)).state == "completed"

    await wait_for(completed, what="the second worker to complete the request")
    os.kill(zombie.pid, signal.SIGCONT)

    async def discarded() -> bool:
        async with orchestrator.database.read_session() as session:
            row = (
                await session.execute(
                    select(AuditLog).where(
                        AuditLog.request_id == request.id,
                        AuditLog.event_type == "stale_result_discarded",
                    )
                )
            ).scalar_one_or_none()
        return row is not None

    await wait_for(discarded, what="the zombie's late result to be recorded as discarded")
    assert workers.stop_all() == [0, 0]

    done = await orchestrator.get(request.id)
    assert done.result is not None
    rescuer_pid = int(rescuer_id.split(":")[1])
    assert done.result["second"]["pid"] == rescuer_pid
    assert done.result["third"]["pid"] == rescuer_pid
    async with orchestrator.database.read_session() as session:
        stale = (
            await session.execute(
                select(AuditLog).where(
                    AuditLog.request_id == request.id,
                    AuditLog.event_type == "stale_result_discarded",
                )
            )
        ).scalar_one()
    assert stale.actor == zombie_id and stale.chain_key == "system"
    assert stale.event_data["reason"] == "lease lost"
    steps = await executions(orchestrator.database, request.id)
    assert ("second", 1, "interrupted") in steps
    assert ("second", 1, "discarded") in steps
    assert ("second", 2, "succeeded") in steps
    assert set((await succeeded_per_step(orchestrator.database)).values()) == {1}
    await assert_ledger_consistent(orchestrator.database)


@pytest.mark.slow
async def test_three_workers_share_postgresql_without_running_a_step_twice(
    backend: str, orchestrator: Orchestrator, workers: Workers
) -> None:
    if backend != "postgresql":
        pytest.skip("scale-out across processes is a PostgreSQL feature")
    for _ in range(3):
        workers.start()
    ids: set[uuid.UUID] = set()
    for _ in range(300):
        payload = {"numbers": [1, 2], "sleep": {"first": 0.01}}
        ids.add((await orchestrator.submit("test", payload, "svc")).id)

    async def all_done() -> bool:
        page = await orchestrator.list(state="completed", limit=500)
        return len(page.items) == 300

    await wait_for(all_done, timeout=120, what="300 requests to complete")
    assert workers.stop_all() == [0, 0, 0]
    counts = await succeeded_per_step(orchestrator.database)
    assert len(counts) == 900 and set(counts.values()) == {1}
    async with orchestrator.database.read_session() as session:
        owners = (
            await session.execute(
                select(AuditLog.actor).where(AuditLog.event_type == "agent_succeeded").distinct()
            )
        ).scalars()
        assert len(set(owners)) == 3  # the work really was shared
    await assert_ledger_consistent(orchestrator.database)
