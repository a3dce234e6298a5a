"""Cancelled or failed work leaves nothing behind: staged research files are removed, durably,
once no agent can still be writing them, and the removal is audited (counts and digests)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from app.agents.base import CleanupContext, RemovedFile
from app.agents.research import sample_research_payloads, seed_warehouse
from app.agents.research.storage import staging_folder
from app.audit import parse_event
from app.audit.events import FilesRemoved
from app.bootstrap import Services, build_services
from app.config import Settings
from app.database import Database
from app.database.models import AuditLog, FileCleanup
from app.ops.retention import purge
from app.orchestrator.worker import Worker
from tests.support.checks import assert_ledger_consistent
from tests.support.research_agents import PausingExtraction, PausingQa

REVIEWER = "dr.reviewer"


@pytest.fixture
async def services(database: Database, tmp_path: Path) -> AsyncIterator[Services]:
    await seed_warehouse(database, 300, seed=42)
    settings = Settings(
        _env_file=None,
        delivery_dir=tmp_path / "deliveries",
        audio_dir=tmp_path / "audio",
        poll_seconds=0.05,
        lease_seconds=30,
        heartbeat_seconds=0.2,
        cleanup_poll_seconds=0.1,
    )
    built = build_services(settings, database)
    yield built
    await assert_ledger_consistent(database)


async def wait_for(
    check: Callable[[], Awaitable[bool] | bool], what: str, timeout: float = 60
) -> None:
    begun = time.monotonic()
    while time.monotonic() - begun < timeout:
        outcome = check()
        if outcome if isinstance(outcome, bool) else await outcome:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def submit_and_approve(services: Services) -> uuid.UUID:
    orchestrator = services.orchestrator
    payload = sample_research_payloads()["type2_diabetes_adults"]
    request = await orchestrator.submit("research", payload, "svc-research")

    async def gated() -> bool:
        return any(a.request_id == request.id for a in await orchestrator.approvals())

    await wait_for(gated, "the requirements approval")
    (approval,) = [a for a in await orchestrator.approvals() if a.request_id == request.id]
    await orchestrator.decide_approval(approval.id, REVIEWER, "approve")
    return request.id


def staged(settings: Settings, request_id: uuid.UUID) -> list[Path]:
    folder = staging_folder(settings, request_id)
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


async def removals(database: Database, request_id: uuid.UUID) -> list[FilesRemoved]:
    async with database.read_session() as session:
        rows = (
            await session.execute(
                select(AuditLog.event_type, AuditLog.event_data).where(
                    AuditLog.request_id == request_id, AuditLog.event_type == "files_removed"
                )
            )
        ).all()
    events = [parse_event(t, d) for t, d in rows]
    return [e for e in events if isinstance(e, FilesRemoved)]


@pytest.mark.parametrize("paused", ["extraction", "qa"])
async def test_cancel_mid_step_removes_the_staged_files_once_the_agent_returns(
    services: Services, tmp_path: Path, paused: str
) -> None:
    folder = tmp_path / "block"
    folder.mkdir()
    agent = PausingExtraction(folder) if paused == "extraction" else PausingQa(folder)
    services.agents.register(agent)
    worker = Worker(
        services.orchestrator,
        services.agents,
        settings=services.settings,
        concurrency=2,
        warehouse=services.warehouse,
    )
    running = asyncio.create_task(worker.run())
    try:
        request_id = await submit_and_approve(services)
        await wait_for(lambda: any(folder.glob(f"{paused}-started-*")), f"{paused} to pause")
        files = staged(services.settings, request_id)
        assert files, "the extraction staged its files"
        await services.orchestrator.cancel(request_id, "svc-research", "no longer needed")
        # The agent still runs and holds the lease: nothing is removed under it.
        assert await worker.cleanups.run_once() == 0
        assert staged(services.settings, request_id) == files
        (folder / "go").touch()
        await wait_for(lambda: not staged(services.settings, request_id), "the staged files to go")
        await wait_for(lambda: worker.cleanups.done == 1, "the cleanup to be recorded")
    finally:
        (folder / "go").touch()
        worker.stop()
        await asyncio.wait_for(running, 60)
    assert (await services.orchestrator.get(request_id)).state == "cancelled"
    assert not staging_folder(services.settings, request_id).parent.exists()
    (event,) = await removals(services.database, request_id)
    assert event.reason == "cancelled" and event.steps == ["extraction"]
    assert event.files_removed == len(files) and len(event.sha256) == len(files)
    async with services.database.read_session() as session:
        owed = (await session.execute(select(FileCleanup.done_at))).scalars().all()
    assert len(owed) == 1 and owed[0] is not None


class FlakyCleanupExtraction(PausingExtraction):
    """Its first cleanup fails (a disk error), later ones do the real work."""

    failures = 0

    async def cleanup(self, context: CleanupContext) -> list[RemovedFile]:
        if self.failures == 0:
            self.failures += 1
            raise OSError(5, "Input/output error (injected)")
        return await super().cleanup(context)


async def test_a_failing_cleanup_is_retried_and_stays_owed_until_it_succeeds(
    services: Services, tmp_path: Path
) -> None:
    folder = tmp_path / "block"
    folder.mkdir()
    services.agents.register(FlakyCleanupExtraction(folder))
    worker = Worker(
        services.orchestrator,
        services.agents,
        settings=services.settings,
        concurrency=2,
        warehouse=services.warehouse,
    )
    running = asyncio.create_task(worker.run())
    try:
        request_id = await submit_and_approve(services)
        await wait_for(lambda: any(folder.glob("extraction-started-*")), "extraction to pause")
        await services.orchestrator.cancel(request_id, "svc-research", None)
        (folder / "go").touch()

        async def failed_once() -> bool:
            async with services.database.read_session() as session:
                row = (await session.execute(select(FileCleanup))).scalar_one()
                return row.attempts == 1 and row.error is not None and row.done_at is None

        await wait_for(failed_once, "a failed cleanup attempt")
        assert staged(services.settings, request_id), "nothing removed while it failed"
        await wait_for(lambda: not staged(services.settings, request_id), "the staged files to go")
        await wait_for(lambda: worker.cleanups.done == 1, "the cleanup to be recorded")
    finally:
        (folder / "go").touch()
        worker.stop()
        await asyncio.wait_for(running, 60)
    async with services.database.read_session() as session:
        row = (await session.execute(select(FileCleanup))).scalar_one()
    assert row.done_at is not None and row.attempts == 1


async def test_retention_removes_staging_a_crash_left_for_a_finished_request(
    services: Services,
) -> None:
    settings = services.settings
    orchestrator = services.orchestrator
    payload = sample_research_payloads()["type2_diabetes_adults"]
    request = await orchestrator.submit("research", payload, "svc-research")
    await orchestrator.cancel(request.id, "svc-research", None)
    # Staging written by a worker that died after the cancel's cleanup ran.
    staging = staging_folder(settings, request.id)
    staging.mkdir(parents=True)
    (staging / "demographics.csv").write_text("person_id\nx\n")
    (staging / ".conditions.csv.tmp").write_text("half")
    orphan = staging_folder(settings, uuid.uuid4())
    orphan.mkdir(parents=True)
    (orphan / "observations.csv").write_text("a\n")
    live = await orchestrator.submit("research", payload, "svc-research")
    staging_folder(settings, live.id).mkdir(parents=True)
    (staging_folder(settings, live.id) / "demographics.csv").write_text("kept\n")
    old = time.time() - 3 * 3600
    for path in [*settings.deliveries_path.rglob("*")]:
        os.utime(path, (old, old))

    fresh = await purge(
        services.database, settings.model_copy(update={"retention_staging_hours": 4}), actor="ops"
    )
    assert fresh.purged["staging"] == []  # younger than 4 h: kept
    report = await purge(
        services.database,
        settings.model_copy(update={"retention_staging_hours": 2}),
        actor="ops",
        categories=["staging"],
    )
    assert sorted(report.purged["staging"], key=str) == sorted(
        [request.id, uuid.UUID(orphan.parent.name)], key=str
    )
    assert not staging.exists() and not orphan.exists()
    assert (staging_folder(settings, live.id) / "demographics.csv").exists()  # still pending
    (event,) = await removals(services.database, request.id)
    assert event.reason == "stale" and event.files_removed == 2
