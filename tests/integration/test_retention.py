"""Retention purges finished requests' bodies and files past their age; legal holds win."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update
from typer.testing import CliRunner

from app.audit.verify import verify_session
from app.cli.retention import retention_cli
from app.config import Settings
from app.database import Database
from app.database.models import AgentExecution, AuditLog, DataDelivery, Recording, Request
from app.database.types import utcnow
from app.ops.exceptions import RetentionRefused
from app.ops.retention import place_hold, purge, release_hold
from app.orchestrator.engine import Orchestrator
from app.orchestrator.exceptions import InvalidRequest
from app.orchestrator.worker import Worker
from tests.support.agents import engine_agents, engine_workflows
from tests.support.checks import assert_ledger_consistent

_RETENTION_EVENTS = ("data_purged", "legal_hold_placed", "legal_hold_released")
WORKER_SETTINGS = Settings(poll_seconds=0.02, lease_seconds=5, heartbeat_seconds=1)


def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "audio_dir": tmp_path / "audio",
        "delivery_dir": tmp_path / "deliveries",
        "retention_payload_days": 365,
        "retention_audio_days": 90,
        "retention_delivery_days": 180,
        **overrides,
    }
    return Settings(_env_file=None, **values)


async def _finished_request(
    database: Database, orchestrator: Orchestrator, settings: Settings, age_days: int, tag: str
) -> uuid.UUID:
    """A completed request finished ``age_days`` ago, with a recording and a delivery on disk."""
    view = await orchestrator.submit("single", {"numbers": [1, 2]}, "svc")
    worker = Worker(orchestrator, engine_agents(), settings=WORKER_SETTINGS, concurrency=2)
    await asyncio.wait_for(worker.run(until_idle=True), timeout=30)
    audio = settings.audio_path / f"{tag}.wav"
    audio.parent.mkdir(parents=True, exist_ok=True)
    audio.write_bytes(b"RIFF" + bytes(100))
    folder = settings.deliveries_path / str(view.id)
    folder.mkdir(parents=True)
    (folder / "cohort.csv").write_text("a,b\n1,2\n")
    (folder / "manifest.json").write_text("{}")
    async with database.session() as session:
        await session.execute(
            update(Request)
            .where(Request.id == view.id)
            .values(completed_at=utcnow() - timedelta(days=age_days))
        )
        await session.execute(
            insert(Recording).values(
                id=uuid.uuid4(),
                request_id=view.id,
                patient_id=f"P-{tag}",
                clinician_id="C1",
                audio_file_path=f"{tag}.wav",
                audio_file_size=104,
                audio_sha256="a" * 64,
                status="verified",
                transcript=f"dictated text for {tag}",
            )
        )
        await session.execute(
            insert(DataDelivery).values(
                id=uuid.uuid4(),
                request_id=view.id,
                folder=str(folder),
                files=["cohort.csv"],
                manifest_sha256="b" * 64,
                row_count=1,
            )
        )
    return view.id


async def _state(database: Database, request_id: uuid.UUID) -> dict[str, Any]:
    async with database.read_session() as session:
        req = await session.get(Request, request_id)
        assert req is not None
        outputs = (
            await session.execute(
                select(AgentExecution.output).where(AgentExecution.request_id == request_id)
            )
        ).scalars()
        rec = (
            await session.execute(select(Recording).where(Recording.request_id == request_id))
        ).scalar_one()
        return {
            "payload": req.payload,
            "payload_digest": req.payload_digest,
            "result": req.result,
            "purged": req.purged_at is not None,
            "outputs": [o for o in outputs if o is not None],
            "transcript": rec.transcript,
            "audio_purged": rec.audio_purged_at is not None,
        }


async def _purge_events(database: Database) -> list[tuple[uuid.UUID | None, str, str]]:
    async with database.read_session() as session:
        rows = await session.execute(
            select(AuditLog.request_id, AuditLog.event_type, AuditLog.event_data)
            .where(
                AuditLog.event_type.in_(("data_purged", "legal_hold_placed", "legal_hold_released"))
            )
            .order_by(AuditLog.seq)
        )
        return [(r, t, d.get("category", "")) for r, t, d in rows]


async def _audit_count(database: Database) -> int:
    async with database.read_session() as session:
        return int((await session.execute(select(func.count()).select_from(AuditLog))).scalar_one())


async def test_purge_removes_old_bodies_and_files_keeps_held_and_recent_ones(
    database: Database, tmp_path: Path
) -> None:
    settings = _settings(tmp_path)
    orchestrator = Orchestrator(database, engine_workflows())
    old = await _finished_request(database, orchestrator, settings, 400, "old")
    held = await _finished_request(database, orchestrator, settings, 400, "held")
    recent = await _finished_request(database, orchestrator, settings, 100, "recent")
    await place_hold(database, held, "litigation matter 2026-17", "legal:alice")
    before = {rid: await _state(database, rid) for rid in (old, held, recent)}
    assert before[old]["outputs"] and before[old]["result"] and before[old]["transcript"]

    plan = await purge(database, settings, actor="ops:bob", dry_run=True)
    assert plan.purged == {
        "payload": [old],
        "audio": [old, recent],
        "delivery": [old],
        "staging": [],  # no staging was left behind
    }
    assert plan.held == {"payload": [held], "audio": [held], "delivery": [held]}
    assert plan.files_deleted == 2 + 2  # two recordings, one delivery folder of two files
    assert {rid: await _state(database, rid) for rid in before} == before  # nothing changed
    assert (tmp_path / "audio" / "old.wav").exists()
    audit_rows = await _audit_count(database)

    done = await purge(database, settings, actor="ops:bob")
    assert done.purged == plan.purged and done.held == plan.held

    after_old = await _state(database, old)
    assert after_old["payload"] == {} and after_old["result"] is None
    assert after_old["outputs"] == [] and after_old["transcript"] is None
    assert after_old["purged"] and after_old["audio_purged"]
    assert after_old["payload_digest"] == before[old]["payload_digest"]  # the digest stays
    assert not (tmp_path / "audio" / "old.wav").exists()
    assert not (settings.deliveries_path / str(old)).exists()

    assert await _state(database, held) == before[held]  # the hold kept everything
    assert (tmp_path / "audio" / "held.wav").exists()
    assert (settings.deliveries_path / str(held) / "cohort.csv").exists()

    recent_after = await _state(database, recent)
    assert recent_after["payload"] == before[recent]["payload"]  # 100 days: body kept
    assert recent_after["audio_purged"] and not (tmp_path / "audio" / "recent.wav").exists()
    assert (settings.deliveries_path / str(recent)).exists()

    # One audit event per purged (request, category); the audit trail only grew.
    events = [e for e in await _purge_events(database) if e[1] == "data_purged"]
    assert sorted(events, key=str) == sorted(
        [(old, "data_purged", "payload"), (old, "data_purged", "audio"),
         (old, "data_purged", "delivery"), (recent, "data_purged", "audio")],
        key=str,
    )  # fmt: skip
    assert await _audit_count(database) == audit_rows + 4
    await assert_ledger_consistent(database)

    # Running again purges nothing new and writes nothing.
    again = await purge(database, settings, actor="ops:bob")
    assert all(not ids for ids in again.purged.values())
    assert await _audit_count(database) == audit_rows + 4

    # Once released, the held request goes too.
    await release_hold(database, held, "legal:alice", "matter closed")
    last = await purge(database, settings, actor="ops:bob")
    assert last.purged["payload"] == [held] and last.held["payload"] == []
    assert (await _state(database, held))["payload"] == {}
    kinds = [t for r, t, _ in await _purge_events(database) if r == held]
    assert kinds[:2] == ["legal_hold_placed", "legal_hold_released"]
    assert kinds.count("data_purged") == 3
    async with database.read_session() as session:
        report = await verify_session(session)
    assert report.ok, report.problems


async def test_a_zero_age_never_purges_and_audit_rows_are_only_counted(
    database: Database, tmp_path: Path
) -> None:
    settings = _settings(
        tmp_path,
        retention_payload_days=0,
        retention_audio_days=0,
        retention_delivery_days=0,
        retention_staging_hours=0,
    )
    orchestrator = Orchestrator(database, engine_workflows())
    rid = await _finished_request(database, orchestrator, settings, 4000, "ancient")
    rows = await _audit_count(database)
    report = await purge(database, settings, actor="ops")
    assert report.cutoffs == {} and report.purged == {}
    assert (await _state(database, rid))["payload"] != {}
    assert report.audit_retention_years == 6 and report.audit_rows_past_retention == 0
    assert await _audit_count(database) == rows


async def test_holds_and_releases_are_validated_and_change_nothing_when_refused(
    database: Database, tmp_path: Path
) -> None:
    orchestrator = Orchestrator(database, engine_workflows())
    running = await orchestrator.submit("single", {"numbers": [1]}, "svc")
    rows = await _audit_count(database)
    with pytest.raises(RetentionRefused, match="REQUEST_ID: no request"):
        await place_hold(database, uuid.uuid4(), "case 1", "legal")
    with pytest.raises(RetentionRefused, match="--reason"):
        await place_hold(database, running.id, "   ", "legal")
    with pytest.raises(RetentionRefused, match="not on legal hold"):
        await release_hold(database, running.id, "legal")
    assert await _audit_count(database) == rows

    # A hold on an unfinished request does not disturb its version (the worker's fence).
    async def version() -> int:
        async with database.read_session() as session:
            found = await session.get(Request, running.id)
            assert found is not None
            return found.version

    before = await version()
    hold = await place_hold(database, running.id, "case 1", "legal")
    assert hold.reason == "case 1" and await version() == before
    with pytest.raises(RetentionRefused, match="already on legal hold"):
        await place_hold(database, running.id, "case 2", "legal")
    assert await _audit_count(database) == rows + 1
    with pytest.raises(RetentionRefused, match="--category"):
        await purge(database, _settings(tmp_path), actor="ops", categories=["everything"])


def test_retention_cli_hold_release_and_dry_run(database_url: Any, tmp_path: Path) -> None:
    url = database_url.render_as_string(hide_password=False)
    runner = CliRunner()
    bad = runner.invoke(
        retention_cli, ["hold", "not-a-uuid", "--reason", "x", "--database-url", url]
    )
    assert isinstance(bad.exception, InvalidRequest) and "REQUEST_ID" in bad.exception.message

    async def submit() -> uuid.UUID:
        db = Database.from_url(database_url)
        try:
            orchestrator = Orchestrator(db, engine_workflows())
            return (await orchestrator.submit("single", {"numbers": [1]}, "svc")).id
        finally:
            await db.dispose()

    rid = str(asyncio.run(submit()))
    held = runner.invoke(
        retention_cli, ["hold", rid, "--reason", "case 9", "--as", "legal", "--database-url", url]
    )
    assert held.exit_code == 0, held.output
    assert "on legal hold" in held.output
    plan = runner.invoke(retention_cli, ["purge", "--dry-run", "--json", "--database-url", url])
    assert plan.exit_code == 0, plan.output
    assert '"dry_run": true' in plan.output
    released = runner.invoke(retention_cli, ["release", rid, "--database-url", url])
    assert released.exit_code == 0 and "released" in released.output
