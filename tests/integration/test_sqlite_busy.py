"""SQLite locked by another process past busy_timeout: the Orchestrator retries, not fails."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time

import pytest

from app.database import Database
from app.orchestrator.engine import Orchestrator
from tests.support.agents import engine_workflows

pytestmark = pytest.mark.slow

#: Longer than the 5 s busy_timeout, so the first attempt surely gives up.
HOLD_SECONDS = 6.5


def hold_write_lock(path: str, held: threading.Event, seconds: float) -> None:
    """Another process's writer: BEGIN IMMEDIATE, sit on the lock, then roll back."""
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        held.set()
        time.sleep(seconds)
        other.execute("ROLLBACK")
    finally:
        other.close()


async def test_submit_waits_out_a_foreign_write_lock(sqlite_database: Database) -> None:
    orch = Orchestrator(sqlite_database, engine_workflows())
    path = str(sqlite_database.url.database)
    held = threading.Event()
    locker = threading.Thread(target=hold_write_lock, args=(path, held, HOLD_SECONDS))
    locker.start()
    try:
        assert await asyncio.to_thread(held.wait, 5)
        began = time.monotonic()
        view = await orch.submit("single", {"numbers": [1]}, "svc-a")
        waited = time.monotonic() - began
    finally:
        await asyncio.to_thread(locker.join)
    assert view.state == "pending"
    assert waited >= HOLD_SECONDS - 1, "the lock was not actually in the way"
    assert (await orch.get(view.id)).state == "pending"
