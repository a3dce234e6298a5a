"""SQLite WAL checkpoints off the commit path.

By default SQLite checkpoints inside the COMMIT that pushes the WAL past 1,000 pages, so
one writer in every few dozen pays for copying the whole WAL back into the database while
holding the write lock. Ledgerflow raises ``wal_autocheckpoint`` (``SQLITE_WAL_AUTOCHECKPOINT``
pages, a safety net) and lets a :class:`WalCheckpointer` run ``PRAGMA wal_checkpoint(PASSIVE)``
every ``SQLITE_CHECKPOINT_SECONDS`` on its own connection in a thread: a passive checkpoint
copies what it can without waiting for, or blocking, readers and the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import urllib.parse
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

__all__ = ["WalCheckpointer"]


class WalCheckpointer:
    """Checkpoints one SQLite database's WAL on a timer until :meth:`stop`."""

    def __init__(self, path: Path, every_seconds: float) -> None:
        self.path = path
        self.every_seconds = every_seconds
        self.checkpoints = 0
        self._stop = asyncio.Event()

    async def run(self) -> None:
        """Checkpoint every ``every_seconds``; a failed checkpoint is logged and retried later."""
        connection = await asyncio.to_thread(self._connect)
        try:
            while not self._stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.every_seconds)
                try:
                    await asyncio.to_thread(self._checkpoint, connection)
                except sqlite3.Error as exc:
                    # Busy or locked: the next round (or SQLite's autocheckpoint) catches up.
                    log.warning("wal_checkpoint_failed", error=str(exc))
        finally:
            await asyncio.to_thread(connection.close)

    def stop(self) -> None:
        """End :meth:`run` after one last checkpoint."""
        self._stop.set()

    def _connect(self) -> sqlite3.Connection:
        uri = f"file:{urllib.parse.quote(str(self.path.absolute()))}?mode=rw"
        connection = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=1.0)
        connection.isolation_level = None
        return connection

    def _checkpoint(self, connection: sqlite3.Connection) -> None:
        busy, wal_pages, copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.checkpoints += 1
        if busy:
            log.debug("wal_checkpoint_busy", wal_pages=wal_pages, copied=copied)
