"""Hot backups taken while the service writes, verified, pruned, and restored."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from app.audit.verify import verify_session
from app.config import Settings
from app.database import Database, DatabaseError
from app.database.models import Request
from app.ops.backup import create_backup, list_backups, restore_backup
from app.ops.exceptions import BackupFailed, RestoreRefused, ToolMissing
from app.ops.pgtools import find_tool
from app.orchestrator.engine import Orchestrator
from app.orchestrator.worker import Worker
from tests.conftest import DatabaseUrlFactory
from tests.support.agents import engine_agents, engine_workflows

SETTINGS = Settings(poll_seconds=0.02, lease_seconds=5, heartbeat_seconds=1)
WRITERS = 4


@pytest.fixture
def pg_tools(backend: str) -> None:
    """PostgreSQL backups need pg_dump/pg_restore/psql; skip loudly (fail on CI) without."""
    if backend != "postgresql":
        return
    try:
        for tool in ("pg_dump", "pg_restore", "psql"):
            find_tool(tool)
    except ToolMissing as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc.message} — CI is set, so backup tests must run", pytrace=False)
        pytest.skip(f"SKIPPING POSTGRESQL BACKUP TESTS: {exc.message}")


@pytest.fixture
async def fresh(database_url_factory: DatabaseUrlFactory) -> AsyncIterator[Database]:
    """An empty database (no tables) on the test's backend."""
    db = Database.from_url(await database_url_factory(migrated=False))
    yield db
    await db.dispose()


async def _ids(database: Database, state: str | None = None) -> set[uuid.UUID]:
    async with database.read_session() as session:
        query = select(Request.id)
        if state is not None:
            query = query.where(Request.state == state)
        return set((await session.execute(query)).scalars())


async def _chains_ok(database: Database) -> int:
    async with database.read_session() as session:
        report = await verify_session(session)
    assert report.ok, report.problems
    return report.rows


async def test_backup_while_four_writers_run_restores_everything_committed_before_it(
    database: Database, fresh: Database, tmp_path: Path, pg_tools: None
) -> None:
    orchestrator = Orchestrator(database, engine_workflows(timeout=5.0))
    worker = Worker(orchestrator, engine_agents(), settings=SETTINGS, concurrency=8)
    worker_task = asyncio.create_task(worker.run())
    committed: set[uuid.UUID] = set()
    stop = asyncio.Event()

    async def writer(n: int) -> None:
        i = 0
        while not stop.is_set():
            view = await orchestrator.submit("test", {"numbers": [n, i]}, f"writer-{n}")
            committed.add(view.id)
            i += 1
            await asyncio.sleep(0.005)

    writers = [asyncio.create_task(writer(n)) for n in range(WRITERS)]
    try:
        while len(await _ids(database, "completed")) < 20:
            await asyncio.sleep(0.05)
        submitted_before = set(committed)
        completed_before = await _ids(database, "completed")
        result = await create_backup(database, directory=tmp_path / "backups", keep=3)
        # The writers kept going while the backup ran.
        while len(committed) < len(submitted_before) + WRITERS:
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await asyncio.gather(*writers)
        worker.stop()
        await worker_task

    assert result.verification.integrity == "ok"
    assert result.verification.requests >= len(submitted_before)
    assert result.path.exists() and result.path.suffix in (".db", ".dump")
    assert not list(result.path.parent.glob(".*partial"))
    if database.dialect == "sqlite":
        with sqlite3.connect(result.path) as conn:  # a self-contained file, not WAL
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"

    restored = await restore_backup(fresh, result.path)
    assert restored.verification.integrity == "ok"
    assert not restored.replaced
    present = await _ids(fresh)
    assert submitted_before <= present, submitted_before - present
    assert completed_before <= await _ids(fresh, "completed")
    assert await _chains_ok(fresh) > 0
    if fresh.dialect == "sqlite":
        path = str(fresh.url.database)
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    # The append-only triggers came back with the data.
    with pytest.raises(DatabaseError, match="append-only"):
        async with fresh.session() as session:
            await session.execute(text("DELETE FROM audit_logs"))


async def test_restore_refuses_a_non_empty_database_without_force(
    database: Database, fresh: Database, tmp_path: Path, pg_tools: None
) -> None:
    orchestrator = Orchestrator(database, engine_workflows())
    first = await orchestrator.submit("single", {"numbers": [1]}, "svc")
    backup = (await create_backup(database, directory=tmp_path)).path
    second = await orchestrator.submit("single", {"numbers": [2]}, "svc")

    with pytest.raises(RestoreRefused, match=r"not empty .* --force"):
        await restore_backup(database, backup)
    assert await _ids(database) == {first.id, second.id}  # unchanged

    replaced = await restore_backup(database, backup, force=True)
    assert replaced.replaced
    assert await _ids(database) == {first.id}
    await _chains_ok(database)

    await restore_backup(fresh, backup)
    assert await _ids(fresh) == {first.id}


async def test_old_backups_are_pruned_to_the_newest_keep(
    database: Database, tmp_path: Path, pg_tools: None
) -> None:
    made = [(await create_backup(database, directory=tmp_path, keep=2)).path for _ in range(3)]
    kept = list_backups(tmp_path, database)
    assert kept == [made[2], made[1]]
    assert not made[0].exists()
    unrelated = tmp_path / "notes.txt"
    unrelated.write_text("mine")
    await create_backup(database, directory=tmp_path, keep=1)
    assert unrelated.exists() and len(list_backups(tmp_path, database)) == 1


async def test_restore_refuses_a_file_that_is_not_a_backup(fresh: Database, tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"definitely not a database")
    with pytest.raises(RestoreRefused, match="neither a SQLite backup nor a pg_dump"):
        await restore_backup(fresh, junk)
    with pytest.raises(RestoreRefused, match="does not exist"):
        await restore_backup(fresh, tmp_path / "missing.db")


async def test_a_corrupt_sqlite_backup_is_refused_before_anything_changes(
    sqlite_database: Database, tmp_path: Path
) -> None:
    backup = (await create_backup(sqlite_database, directory=tmp_path)).path
    data = bytearray(backup.read_bytes())
    data[8192:12288] = b"\xff" * 4096  # smash a page
    broken = tmp_path / "broken.db"
    broken.write_bytes(bytes(data))
    target = Database.from_url(f"sqlite+aiosqlite:///{tmp_path / 'target.db'}")
    try:
        with pytest.raises(RestoreRefused, match="integrity_check"):
            await restore_backup(target, broken)
    finally:
        await target.dispose()
    assert not (tmp_path / "target.db").exists()


def test_a_missing_postgres_tool_is_named_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ToolMissing, match=r"pg_dump_nope: not found in PG_BIN_DIR .*PATH"):
        find_tool("pg_dump_nope", tmp_path)


async def test_backup_of_a_missing_sqlite_file_fails_clearly(tmp_path: Path) -> None:
    db = Database.from_url(f"sqlite+aiosqlite:///{tmp_path / 'nope.db'}")
    try:
        with pytest.raises(BackupFailed, match="does not exist"):
            await create_backup(db, directory=tmp_path / "b")
    finally:
        await db.dispose()


async def test_cli_backup_then_restore_refusal_exits_2(
    database: Database, subprocess_env: dict[str, str], tmp_path: Path, pg_tools: None
) -> None:
    async with database.read_session() as session:
        assert (await session.execute(select(func.count()).select_from(Request))).scalar_one() == 0
    out = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "scripts/backup_db.py", "--dir", str(tmp_path), "--keep", "1"],
        env=subprocess_env,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        check=False,
    )
    assert out.returncode == 0, out.stderr
    path = Path(out.stdout.strip())
    assert path.exists() and "audit chains verify" in out.stderr
    refused = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "app.cli", "db", "restore", str(path)],
        env=subprocess_env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode == 2
    assert "not empty" in refused.stderr and "--force" in refused.stderr
    assert "Traceback" not in refused.stderr
