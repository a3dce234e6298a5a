"""Operations: hot backups and restores, maintenance, retention and legal holds.

The CLI (``ledgerflow db backup|restore|vacuum``, ``ledgerflow retention ...``) and the
``scripts/`` call these; each takes a :class:`~app.database.Database`.
"""

from app.ops.backup import (
    BackupResult,
    RestoreResult,
    Verification,
    create_backup,
    list_backups,
    prune_backups,
    restore_backup,
)
from app.ops.exceptions import (
    BackupFailed,
    OpsError,
    RestoreFailed,
    RestoreRefused,
    RetentionRefused,
    ToolMissing,
)
from app.ops.retention import Hold, PurgeReport, place_hold, purge, release_hold
from app.ops.vacuum import VacuumReport, vacuum_database

__all__ = [
    "BackupFailed",
    "BackupResult",
    "Hold",
    "OpsError",
    "PurgeReport",
    "RestoreFailed",
    "RestoreRefused",
    "RestoreResult",
    "RetentionRefused",
    "ToolMissing",
    "VacuumReport",
    "Verification",
    "create_backup",
    "list_backups",
    "place_hold",
    "prune_backups",
    "purge",
    "release_hold",
    "restore_backup",
    "vacuum_database",
]
