"""The root of every ledgerflow error.

Tree::

    LedgerflowError
    ├── ConfigurationError              (app.exceptions)
    ├── DatabaseError                   (app.database.exceptions)
    │   ├── DatabaseUnavailable, DatabaseBusy, DatabaseConflict      (transient)
    │   ├── DatabaseMissing, DatabaseLoginRefused, DatabasePermissionDenied,
    │   │   DatabaseReadOnly, SchemaNotReady                          (permanent)
    │   └── IntegrityViolation
    ├── OrchestratorError               (app.orchestrator.exceptions)
    └── AuditError                      (app.audit.exceptions)

Each class's docstring is its default message; each carries a stable ``code`` that the
API maps to an HTTP status and the CLI to an exit code.
"""

from __future__ import annotations


class LedgerflowError(Exception):
    """ledgerflow failed."""

    code: str = "ledgerflow_error"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or (self.__doc__ or self.code).strip().splitlines()[0]
        super().__init__(self.message)


class ConfigurationError(LedgerflowError):
    """A setting is missing or invalid."""

    code = "configuration_error"
