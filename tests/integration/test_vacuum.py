"""``vacuum_database`` / ``ledgerflow db vacuum`` on both backends."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import date
from pathlib import Path

from sqlalchemy import delete, func, insert, select, text

from app.database import Database
from app.database.models import Patient
from app.ops.vacuum import sqlite_size, vacuum_database


async def _fill_and_empty(database: Database) -> None:
    """Write then delete enough warehouse rows to leave free pages / dead tuples behind."""
    async with database.session() as session:
        await session.execute(
            insert(Patient),
            [
                {
                    "patient_id": f"P{i:06d}",
                    "mrn": f"M{i:06d}",
                    "first_name": "x" * 40,
                    "last_name": "y" * 40,
                    "birth_date": date(1970, 1, 1),
                    "sex": "F",
                    "address": "z" * 100,
                    "city": "c",
                    "state": "MA",
                    "zip_code": "02139",
                    "phone": "555",
                    "email": "e@example.org",
                }
                for i in range(3000)
            ],
        )
    async with database.session() as session:
        await session.execute(delete(Patient))


async def test_vacuum_runs_every_step_and_reports_sizes(database: Database) -> None:
    await _fill_and_empty(database)
    report = await vacuum_database(database)
    assert report.backend == database.dialect
    assert report.before_bytes > 0 and report.after_bytes > 0
    if database.dialect == "sqlite":
        assert report.steps == (
            "PRAGMA wal_checkpoint(TRUNCATE)",
            "VACUUM",
            "ANALYZE",
            "PRAGMA optimize",
        )
        path = Path(str(database.url.database))
        assert report.after_bytes < report.before_bytes  # free pages given back
        assert report.after_bytes == sqlite_size(path)
        wal = path.with_name(path.name + "-wal")
        assert not wal.exists() or wal.stat().st_size == 0
        async with database.read_session() as session:  # ANALYZE wrote statistics
            stats = await session.execute(text("SELECT count(*) FROM sqlite_stat1"))
            assert stats.scalar_one() > 0
    else:
        assert report.steps == ("VACUUM (ANALYZE)",)
        # Statistics are flushed asynchronously: give them a moment.
        for _ in range(50):
            async with database.read_session() as session:
                analyzed = await session.execute(
                    text(
                        "SELECT last_vacuum IS NOT NULL AND last_analyze IS NOT NULL "
                        "FROM pg_stat_user_tables WHERE relname = 'patients'"
                    )
                )
                if analyzed.scalar_one() is True:
                    break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("patients was not vacuumed and analysed")
    async with database.read_session() as session:  # still a working database
        assert (await session.execute(select(func.count()).select_from(Patient))).scalar() == 0


async def test_cli_vacuum_prints_size_before_and_after(
    database: Database, subprocess_env: dict[str, str]
) -> None:
    out = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "scripts/vacuum_db.py"],
        env=subprocess_env,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "size" in out.stdout and "->" in out.stdout and "bytes" in out.stdout
