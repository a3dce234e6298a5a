"""Database errors, translated from driver errors in one place.

Tree::

    DatabaseError
    ├── DatabaseUnavailable   cannot connect / connection lost
    ├── DatabaseReadOnly      the file or server refuses writes
    ├── DatabaseBusy          SQLite stayed locked past busy_timeout
    ├── SchemaNotReady        tables missing or not at the head migration
    └── IntegrityViolation    a constraint refused the write
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL

from app.exceptions import LedgerflowError


class DatabaseError(LedgerflowError):
    """The database failed."""

    code = "database_error"


class DatabaseUnavailable(DatabaseError):
    """The database cannot be reached."""

    code = "database_unavailable"


class DatabaseReadOnly(DatabaseError):
    """The database refuses writes."""

    code = "database_read_only"


class DatabaseBusy(DatabaseError):
    """The database stayed locked by another writer."""

    code = "database_busy"


class SchemaNotReady(DatabaseError):
    """The database schema is missing or not at the head migration; run `ledgerflow db init`."""

    code = "schema_not_ready"


class IntegrityViolation(DatabaseError):
    """A database constraint refused the write."""

    code = "integrity_violation"


_UNREACHABLE = (ConnectionError, socket.gaierror, TimeoutError, OSError)

#: SQLSTATE classes and codes that mean the connection is gone: connection exceptions
#: (08), and the server shutting down or terminating the backend (57P01-57P03).
_LOST_SQLSTATES = ("08", "57P01", "57P02", "57P03")
_LOST_TEXTS = (
    "connection was closed",
    "connection is closed",
    "terminating connection",
    "server closed the connection",
    "another operation is in progress",
    "connection does not exist",
    "not currently accepting connections",
    "the database system is starting up",
    "the database system is shutting down",
)


def connection_lost(exc: BaseException | None) -> bool:
    """True when ``exc`` (a driver error) means the connection is unusable from now on."""
    while exc is not None:
        sqlstate = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_LOST_SQLSTATES):
            return True
        # Not ConnectionRefusedError: that one never had a connection ("cannot connect").
        if isinstance(exc, ConnectionResetError | ConnectionAbortedError | BrokenPipeError):
            return True
        text = str(exc).lower()
        if any(marker in text for marker in _LOST_TEXTS):
            return True
        exc = getattr(exc, "orig", None) or exc.__cause__
    return False


def describe_url(url: URL) -> str:
    """Where ``url`` points, for error messages, without its password."""
    if url.drivername.startswith("sqlite"):
        return str(url.database)
    return f"{url.host or 'localhost'}:{url.port or 5432}/{url.database or ''}"


def translate(exc: BaseException, url: URL) -> DatabaseError:
    """Map a driver or SQLAlchemy exception to one of ours, with a message saying what to do."""
    where = describe_url(url)
    original = getattr(exc, "orig", None) or exc.__cause__ or exc
    text = (
        str(original).strip().splitlines()[0] if str(original).strip() else type(original).__name__
    )
    lowered = text.lower()
    if isinstance(exc, sa_exc.IntegrityError):
        return IntegrityViolation(f"constraint violated: {text}")
    if (isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated) or connection_lost(exc):
        return DatabaseUnavailable(f"DATABASE_URL: lost the connection to {where} ({text})")
    if "readonly" in lowered or "read-only" in lowered or "read only" in lowered:
        return DatabaseReadOnly(f"DATABASE_URL: {where} is read-only ({text})")
    if "database is locked" in lowered:
        return DatabaseBusy(f"DATABASE_URL: {where} stayed locked by another writer ({text})")
    if "password authentication failed" in lowered or (
        "role" in lowered and "not exist" in lowered
    ):
        return DatabaseUnavailable(f"DATABASE_URL: {where} refused the login ({text})")
    if "database" in lowered and "does not exist" in lowered:
        return DatabaseUnavailable(
            f"DATABASE_URL: {where} does not exist ({text}) — create it first"
        )
    if "unable to open database file" in lowered:
        folder = os.path.dirname(str(url.database)) or "."
        return DatabaseUnavailable(
            f"DATABASE_URL: cannot open {where} ({text}) — does {folder} exist and is it writable?"
        )
    if isinstance(original, _UNREACHABLE) or isinstance(
        exc, sa_exc.OperationalError | sa_exc.InterfaceError
    ):
        hint = " — is PostgreSQL running?" if url.drivername.startswith("postgresql") else ""
        return DatabaseUnavailable(f"DATABASE_URL: cannot connect to {where} ({text}){hint}")
    return DatabaseError(f"database error on {where}: {text}")


@contextlib.contextmanager
def translated_errors(url: URL) -> Iterator[None]:
    """Re-raise driver and SQLAlchemy errors inside the block as ``DatabaseError``s."""
    try:
        yield
    except DatabaseError:
        raise
    except (sa_exc.SQLAlchemyError, *_UNREACHABLE) as exc:
        raise translate(exc, url) from exc
