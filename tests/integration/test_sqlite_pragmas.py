"""Every new SQLite connection gets WAL, synchronous=NORMAL, busy_timeout and foreign keys."""

from __future__ import annotations

from sqlalchemy import text

from app.database import Database


async def test_every_new_sqlite_connection_has_our_pragmas(sqlite_database: Database) -> None:
    # Two sessions at once force two distinct pooled connections.
    async with sqlite_database.read_session() as first, sqlite_database.read_session() as second:
        for session in (first, second):
            pragmas = {
                name: (await session.execute(text(f"PRAGMA {name}"))).scalar_one()
                for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")
            }
            # synchronous: 1 is NORMAL
            assert pragmas == {
                "journal_mode": "wal",
                "synchronous": 1,
                "busy_timeout": 5000,
                "foreign_keys": 1,
            }
