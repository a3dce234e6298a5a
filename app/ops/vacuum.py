"""Routine maintenance: give space back and refresh the planner's statistics.

**SQLite**: ``PRAGMA wal_checkpoint(TRUNCATE)`` folds the WAL into the database and empties
it, ``VACUUM`` rewrites the file without free pages, ``ANALYZE`` and ``PRAGMA optimize``
refresh statistics. ``VACUUM`` takes the write lock for its duration (writers wait up to
their busy timeout), so run it when the service is quiet. **PostgreSQL**: ``VACUUM
(ANALYZE)`` on an autocommit connection (VACUUM cannot run inside a transaction); it marks
dead rows reusable and refreshes statistics without locking out readers or writers, and
seldom shrinks the files. Sizes are the database file plus its WAL on SQLite and
``pg_database_size`` on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import structlog
from sqlalchemy import text

from app.database import Database, DatabaseBusy
from app.database.exceptions import translated_errors
from app.ops.exceptions import OpsError

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class VacuumReport:
    """Sizes before and after, and the statements that ran."""

    backend: str
    before_bytes: int
    after_bytes: int
    steps: tuple[str, ...]
    seconds: float
    notes: tuple[str, ...] = ()

    @property
    def saved_bytes(self) -> int:
        """Bytes given back (negative when the database grew meanwhile)."""
        return self.before_bytes - self.after_bytes


_SQLITE_STEPS: tuple[str, ...] = (
    "PRAGMA wal_checkpoint(TRUNCATE)",
    "VACUUM",
    "ANALYZE",
    "PRAGMA optimize",
)
_POSTGRES_STEPS: tuple[str, ...] = ("VACUUM (ANALYZE)",)


def sqlite_size(path: Path) -> int:
    """Bytes of the database file and its WAL."""
    return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists())


def _sqlite_vacuum(path: Path) -> tuple[str, ...]:
    notes: list[str] = []
    try:
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout=30000")
            for step in _SQLITE_STEPS:
                row = conn.execute(step).fetchone()
                if step.startswith("PRAGMA wal_checkpoint") and row and row[0]:
                    notes.append("the WAL checkpoint was blocked by a reader; WAL not emptied")
        finally:
            conn.close()
    except sqlite3.Error as exc:
        if "locked" in str(exc).lower() or "busy" in str(exc).lower():
            raise DatabaseBusy(
                f"vacuum of {path}: the database stayed locked by another writer ({exc}) "
                "— run it when the service is quiet"
            ) from exc
        raise OpsError(f"vacuum of {path} failed: {exc}") from exc
    return tuple(notes)


async def _postgres_size(database: Database) -> int:
    async with database.engine.connect() as connection:
        size = await connection.scalar(text("SELECT pg_database_size(current_database())"))
    return int(size or 0)


async def vacuum_database(database: Database) -> VacuumReport:
    """Run the backend's maintenance statements and report the size before and after."""
    started = time.perf_counter()
    if database.dialect == "sqlite":
        name = database.url.database
        if not name or name == ":memory:" or not Path(name).is_file():
            raise OpsError(f"DATABASE_URL: {name} is not a SQLite database file")
        path = Path(name).resolve()
        before = sqlite_size(path)
        await database.dispose()  # our idle pooled connections must not pin the WAL
        notes = await asyncio.to_thread(_sqlite_vacuum, path)
        after = sqlite_size(path)
        steps = _SQLITE_STEPS
    else:
        with translated_errors(database.url):
            before = await _postgres_size(database)
            autocommit = database.engine.execution_options(isolation_level="AUTOCOMMIT")
            async with autocommit.connect() as connection:
                for step in _POSTGRES_STEPS:
                    await connection.execute(text(step))
            after = await _postgres_size(database)
        notes = ()
        steps = _POSTGRES_STEPS
    report = VacuumReport(
        database.dialect, before, after, steps, time.perf_counter() - started, notes
    )
    log.info(
        "database_vacuumed",
        backend=report.backend,
        before_bytes=before,
        after_bytes=after,
        seconds=round(report.seconds, 3),
    )
    return report
