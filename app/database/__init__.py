"""Persistence: engine and sessions, models, migrations, driver-error translation."""

from app.database.engine import (
    Database,
    create_engine,
    get_database,
    get_db_session,
    session_dependency,
    set_database,
)
from app.database.exceptions import (
    DatabaseBusy,
    DatabaseConflict,
    DatabaseError,
    DatabaseLoginRefused,
    DatabaseMissing,
    DatabasePermissionDenied,
    DatabaseReadOnly,
    DatabaseUnavailable,
    IntegrityViolation,
    SchemaNotReady,
)

__all__ = [
    "Database",
    "DatabaseBusy",
    "DatabaseConflict",
    "DatabaseError",
    "DatabaseLoginRefused",
    "DatabaseMissing",
    "DatabasePermissionDenied",
    "DatabaseReadOnly",
    "DatabaseUnavailable",
    "IntegrityViolation",
    "SchemaNotReady",
    "create_engine",
    "get_database",
    "get_db_session",
    "session_dependency",
    "set_database",
]
