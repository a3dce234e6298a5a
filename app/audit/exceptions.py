"""Audit errors.

Tree::

    AuditError
    ├── InvalidFilter        a query filter, cursor or format is invalid (names the option)
    ├── CorruptRow           a stored row's event_data does not parse into its event model
    ├── CheckpointNotFound   no checkpoint has that digest, or the file cannot be read
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


class BadExportFile(AuditError):
    """The file is not an audit export ledgerflow can read."""

    code = "bad_export_file"
