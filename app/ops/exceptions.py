"""Operations errors (backups, restores, maintenance, retention).

Tree::

    OpsError
    ├── ToolMissing        a PostgreSQL client tool (pg_dump, pg_restore, psql) is not installed
    ├── BackupFailed       a backup could not be written or did not verify
    ├── RestoreRefused     the target is not empty (without --force) or the file is unusable
    ├── RestoreFailed      the restore ran and failed (the target is left as it was)
    └── RetentionRefused   a hold, release or purge was refused (names the request)
"""

from __future__ import annotations

from app.exceptions import LedgerflowError


class OpsError(LedgerflowError):
    """An operations command failed."""

    code = "ops_error"


class ToolMissing(OpsError):
    """A PostgreSQL client tool is not installed."""

    code = "tool_missing"


class BackupFailed(OpsError):
    """The backup could not be written or did not verify."""

    code = "backup_failed"


class RestoreRefused(OpsError):
    """The restore was refused; nothing was changed."""

    code = "restore_refused"


class RestoreFailed(OpsError):
    """The restore failed; the target database was left as it was."""

    code = "restore_failed"


class RetentionRefused(OpsError):
    """The retention command was refused; nothing was changed."""

    code = "retention_refused"
