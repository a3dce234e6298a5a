"""Verifying an export file without a database (``ledgerflow audit verify --file``).

The file is read twice at most: once to scan every chain (rows may come in any order; each
chain must start at seq 1 and have no gaps), and again only if a chain is broken, to
diagnose it. Given a checkpoint, every chain in the file must still contain its
checkpointed head; without one, rows cut from the end of a chain cannot be seen offline.
"""

from __future__ import annotations

from pathlib import Path

from app.audit.access import check_checkpoint
from app.audit.checkpoint import Checkpoint
from app.audit.export import read_export
from app.audit.verify import Report, verify_rows_offline


def verify_file(
    path: Path, checkpoint: Checkpoint | None = None, *, hmac_key: str | None = None
) -> Report:
    """Verify the chains in an export file (``.jsonl``, ``.csv`` or ``.json``)."""
    problems, notes = check_checkpoint(checkpoint, hmac_key)
    report = verify_rows_offline(
        (record.row() for record in read_export(path)),
        dict(checkpoint.heads) if checkpoint else None,
        reread=(record.row() for record in read_export(path)),
    )
    report.problems[:0] = problems
    report.notes[:0] = notes
    return report
