"""Every new SQLite connection gets WAL, synchronous=NORMAL, busy_timeout and foreign keys."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from app.database import Database
from app.database.engine import sqlite_path
from app.database.wal import WalCheckpointer


async def test_every_new_sqlite_connection_has_our_pragmas(sqlite_database: Database) -> None:
    # Two sessions at once force two distinct pooled connections.
    async with sqlite_database.read_session() as first, sqlite_database.read_session() as second:
        for session in (first, second):
            pragmas = {
                name: (await session.execute(text(f"PRAGMA {name}"))).scalar_one()
                for name in (
                    "journal_mode",
                    "synchronous",
                    "busy_timeout",
                    "foreign_keys",
                    "wal_autocheckpoint",
                )
            }
            # synchronous: 1 is NORMAL
            assert pragmas == {
                "journal_mode": "wal",
                "synchronous": 1,
                "busy_timeout": 5000,
                "foreign_keys": 1,
                "wal_autocheckpoint": 20_000,  # checkpoints run off the commit path
            }


async def test_the_wal_is_checkpointed_in_the_background(sqlite_database: Database) -> None:
    path = sqlite_path(sqlite_database.url)
    assert path is not None
    async with sqlite_database.session() as session:
        await session.execute(text("CREATE TABLE filler (x BLOB)"))
        for _ in range(20):
            await session.execute(text("INSERT INTO filler VALUES (randomblob(100000))"))
    wal = path.with_name(path.name + "-wal")
    assert wal.stat().st_size > 1_000_000  # no commit checkpointed it (20,000-page net)
    checkpointer = WalCheckpointer(path, every_seconds=0.05)
    running = asyncio.create_task(checkpointer.run())
    while checkpointer.checkpoints < 2:
        await asyncio.sleep(0.05)
    checkpointer.stop()
    await running
    async with sqlite_database.read_session() as session:
        busy, pages, copied = (await session.execute(text("PRAGMA wal_checkpoint(PASSIVE)"))).one()
    assert busy == 0 and pages == copied  # everything in the WAL is already in the database
