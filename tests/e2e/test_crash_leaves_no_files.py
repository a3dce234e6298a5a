"""A worker SIGKILLed during extraction leaves no staging behind once its requests end.

Two research requests pause in a worker's extraction step with their files staged; the
worker is killed. One is then cancelled: once the dead worker's lease runs out, a surviving
worker's cleanup removes its staging. The other is recovered by the survivor, which cleans
the interrupted attempt's files before running extraction again, and completes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import URL

from app.agents.research import sample_research_payloads, seed_warehouse
from app.agents.research.storage import delivery_folder, staging_folder
from app.config import Settings
from app.database import Database
from app.database.models import AuditLog
from app.orchestrator.catalog import default_workflows
from app.orchestrator.engine import Orchestrator
from tests.support.checks import assert_ledger_consistent, executions

ROOT = Path(__file__).resolve().parents[2]
LEASE = 1.5


@pytest.fixture
async def orchestrator(database: Database) -> AsyncIterator[Orchestrator]:
    await seed_warehouse(database, 300, seed=42)
    yield Orchestrator(database, default_workflows())
    await assert_ledger_consistent(database)


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def start_worker(
    procs: list[subprocess.Popen[str]], url: URL, deliveries: Path, block: Path | None
) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "DATABASE_URL": url.render_as_string(hide_password=False),
        "DELIVERY_DIR": str(deliveries),
        "LEASE_SECONDS": str(LEASE),
        "HEARTBEAT_SECONDS": "0.3",
        "POLL_SECONDS": "0.05",
        "CLEANUP_POLL_SECONDS": "0.1",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("BLOCK_DIR", None)
    if block is not None:
        env["BLOCK_DIR"] = str(block)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.research_worker_main"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    procs.append(proc)
    assert proc.stdout is not None and proc.stdout.readline().strip(), "worker did not start"
    return proc


async def wait_for(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 90) -> None:
    begun = time.monotonic()
    while time.monotonic() - begun < timeout:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def staged(settings: Settings, request_id: uuid.UUID) -> list[Path]:
    folder = staging_folder(settings, request_id)
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


async def removal_reasons(database: Database, request_id: uuid.UUID) -> list[str]:
    async with database.read_session() as session:
        rows = await session.execute(
            select(AuditLog.event_data).where(
                AuditLog.request_id == request_id, AuditLog.event_type == "files_removed"
            )
        )
        return [data["reason"] for data in rows.scalars()]


async def test_sigkill_during_extraction_leaves_no_staging_once_requests_end(
    orchestrator: Orchestrator,
    database_url: URL,
    procs: list[subprocess.Popen[str]],
    tmp_path: Path,
) -> None:
    deliveries, block = tmp_path / "deliveries", tmp_path / "block"
    block.mkdir()
    settings = Settings(_env_file=None, delivery_dir=deliveries)
    doomed = start_worker(procs, database_url, deliveries, block)
    payload = sample_research_payloads()["type2_diabetes_adults"]
    recover = (await orchestrator.submit("research", payload, "svc", "recover")).id
    cancel = (await orchestrator.submit("research", payload, "svc", "cancel")).id

    async def both_gated() -> bool:
        return len([a for a in await orchestrator.approvals()]) == 2

    await wait_for(both_gated, "both requirements approvals")
    for approval in await orchestrator.approvals():
        await orchestrator.decide_approval(approval.id, "dr.reviewer", "approve")

    async def both_paused() -> bool:
        return len(list(block.glob("extraction-started-1-*"))) == 2

    await wait_for(both_paused, "both extractions to pause with their files staged")
    assert staged(settings, recover) and staged(settings, cancel)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=10)
    await orchestrator.cancel(cancel, "svc", "not needed after all")
    start_worker(procs, database_url, deliveries, block=None)

    async def settled() -> bool:
        done = (await orchestrator.get(recover)).state == "completed"
        return done and not staged(settings, cancel)

    await wait_for(settled, "recovery of one request and cleanup of the other")
    assert not staged(settings, recover)
    assert (delivery_folder(settings, recover) / "manifest.json").is_file()
    assert not delivery_folder(settings, cancel).exists()
    steps = await executions(orchestrator.database, recover)
    assert ("extraction", 1, "interrupted") in steps and ("extraction", 2, "succeeded") in steps
    assert await removal_reasons(orchestrator.database, recover) == ["recovered"]

    async def cancel_recorded() -> bool:
        return await removal_reasons(orchestrator.database, cancel) == ["cancelled"]

    await wait_for(cancel_recorded, "the cancelled request's removal to be audited")
