"""Audit errors.

Tree::

    AuditError
    ├── InvalidFilter        a query filter, cursor or format is invalid (names the option)
    ├── CorruptRow           a stored row's event_data does not parse into its event model
    ├── CheckpointNotFound   no stored checkpoint has that digest
    ├── BadCheckpoint        a checkpoint file or folder cannot be read or is not one
    └── BadExportFile        an export file to verify is not one ledgerflow wrote
"""

from __future__ import annotations

from app.exceptions import LedgerflowError


class AuditError(LedgerflowError):
    """The audit trail refused the operation."""

    code = "audit_error"


class InvalidFilter(AuditError):
    """A filter is invalid."""

    code = "invalid_filter"

    def __init__(self, detail: str, *, field: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail


class CorruptRow(AuditError):
    """A stored audit row does not parse into its event model; run `ledgerflow audit verify`."""

    code = "corrupt_row"


class CheckpointNotFound(AuditError):
    """No such checkpoint."""

    code = "checkpoint_not_found"


class BadCheckpoint(AuditError):
    """The checkpoint file is not one ledgerflow wrote (not JSON, a field of the wrong form)."""

    code = "bad_checkpoint"


class BadExportFile(AuditError):
    """The file is not an audit export ledgerflow can read."""

    code = "bad_export_file"
