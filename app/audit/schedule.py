"""Scheduled checkpoints: ``serve`` takes one every ``CHECKPOINT_EVERY`` seconds.

Each is stored like any checkpoint (chained to the one before, signed with
``AUDIT_HMAC_KEY`` when it is set) and written as a file to ``CHECKPOINT_DIR``, outside the
database: the folder to mirror to WORM storage. A file holds the heads changed since the
previous checkpoint (the first file holds them all), so the folder grows with activity, not
with the size of the ledger; ``ledgerflow audit verify --checkpoint CHECKPOINT_DIR`` (or
``--file EXPORT --checkpoint CHECKPOINT_DIR`` offline) folds the files back together.
Files are written atomically (a temporary file, fsync, rename), named
``checkpoint-<seq>-<UTC time>.json`` so that they sort in order.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import structlog

from app.audit.access import AuditAccess
from app.audit.checkpoint import Checkpoint
from app.database import Database

log = structlog.get_logger(__name__)

#: Who scheduled checkpoints are taken by, in the audit trail.
SCHEDULER = "ledgerflow:serve"


def checkpoint_file_name(checkpoint: Checkpoint) -> str:
    """``checkpoint-00000042-20261124T090000Z.json``."""
    stamp = checkpoint.created_at.strftime("%Y%m%dT%H%M%SZ")
    return f"checkpoint-{checkpoint.seq or 0:08d}-{stamp}.json"


def write_checkpoint_file(folder: Path, checkpoint: Checkpoint, *, full: bool = False) -> Path:
    """Write ``checkpoint`` into ``folder`` atomically and durably; return the path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / checkpoint_file_name(checkpoint)
    temporary = path.with_suffix(".json.tmp")
    with temporary.open("w", encoding="utf-8") as out:
        out.write(checkpoint.to_file(full=full))
        out.flush()
        os.fsync(out.fileno())
    temporary.replace(path)
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    return path


async def take_checkpoint(database: Database, folder: Path, key: str | None) -> Path:
    """Store the next checkpoint and write its file; return the file's path."""
    checkpoint = await AuditAccess(database, SCHEDULER).checkpoint(key)
    path = await asyncio.to_thread(write_checkpoint_file, folder, checkpoint)
    log.info("checkpoint_written", seq=checkpoint.seq, path=str(path), signed=bool(key))
    return path


async def run_schedule(
    database: Database, folder: Path, every: float, key: str | None, stop: asyncio.Event
) -> None:
    """Take a checkpoint every ``every`` seconds until ``stop`` is set.

    A failed checkpoint is logged and tried again at the next tick; the loop never ends on
    an error (the database may be briefly unreachable).
    """
    if key is None:
        log.warning("checkpoints_unsigned", reason="AUDIT_HMAC_KEY is not set")
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=every)
            return
        except TimeoutError:
            pass
        try:
            await take_checkpoint(database, folder, key)
        except Exception as exc:  # logged; the next tick tries again
            log.error("checkpoint_failed", error=str(exc), error_type=type(exc).__name__)


def check_folder(folder: Path) -> None:
    """Create ``folder`` and prove it is writable (``serve`` checks this at start)."""
    folder.mkdir(parents=True, exist_ok=True)
    probe = folder / ".ledgerflow-write-test"
    probe.write_text("ok", encoding="utf-8")
    probe.unlink()
