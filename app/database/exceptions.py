"""Database errors, translated from driver errors in one place.

Tree::

    DatabaseError
    ├── DatabaseUnavailable       transient: cannot connect, connection lost, server starting
    │                             or shutting down, too many connections
    ├── DatabaseBusy              transient: SQLite stayed locked past busy_timeout
    ├── DatabaseConflict          transient: deadlock or serialization failure (rolled back)
    ├── DatabaseMissing           permanent: no such PostgreSQL database, no SQLite file
    ├── DatabaseLoginRefused      permanent: unknown role or wrong password
    ├── DatabasePermissionDenied  permanent: the role or the file lacks a privilege
    ├── DatabaseReadOnly          permanent: the file or server refuses writes
    ├── SchemaNotReady            permanent: tables missing or not at the head migration
    └── IntegrityViolation        a constraint refused this one write

A transient error may go away by itself, so callers retry it with backoff
(``app.orchestrator.retry.TRANSIENT``). A permanent one needs a person: it is never
retried, and its message says what to do (``DATABASE_URL: ...; run: ledgerflow db init``),
naming the database by host, port and name or by file, never with its password.
"""

from __future__ import annotations

import contextlib
import socket
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL

from app.exceptions import LedgerflowError


class DatabaseError(LedgerflowError):
    """The database failed."""

    code = "database_error"


class DatabaseUnavailable(DatabaseError):
    """The database cannot be reached (transient)."""

    code = "database_unavailable"


class DatabaseBusy(DatabaseError):
    """The database stayed locked by another writer (transient)."""

    code = "database_busy"


class DatabaseConflict(DatabaseError):
    """A deadlock or serialization failure rolled the transaction back; it may be retried whole.

    PostgreSQL SQLSTATE 40P01 (deadlock_detected) or 40001 (serialization_failure).
    Nothing of the transaction was written, so retrying it is safe (transient).
    """

    code = "database_conflict"


class DatabaseMissing(DatabaseError):
    """The database named by DATABASE_URL does not exist; create it or run `ledgerflow db init`."""

    code = "database_missing"


class DatabaseLoginRefused(DatabaseError):
    """The database refused the login; check the user and password in DATABASE_URL."""

    code = "database_login_refused"


class DatabasePermissionDenied(DatabaseError):
    """The database role or file lacks a privilege ledgerflow needs."""

    code = "database_permission_denied"


class DatabaseReadOnly(DatabaseError):
    """The database refuses writes."""

    code = "database_read_only"


class SchemaNotReady(DatabaseError):
    """The database schema is missing or not at the head migration; run `ledgerflow db init`."""

    code = "schema_not_ready"


class IntegrityViolation(DatabaseError):
    """A database constraint refused the write."""

    code = "integrity_violation"


_UNREACHABLE = (ConnectionError, socket.gaierror, TimeoutError, OSError)
#: Top-level packages whose exceptions are driver errors (asyncpg's escape SQLAlchemy when
#: raised outside a DBAPI call, e.g. by a raw connection a tool opened).
_DRIVER_PACKAGES = frozenset({"asyncpg", "sqlite3", "aiosqlite"})

#: SQLSTATE classes and codes that mean the connection is gone: connection exceptions
#: (08), and the server shutting down or terminating the backend (57P01-57P03).
_LOST_SQLSTATES = ("08", "57P01", "57P02", "57P03")
_LOST_TEXTS = (
    "connection was closed",
    "connection is closed",
    "terminating connection",
    "server closed the connection",
    "another operation is in progress",
    "cannot switch to state",  # asyncpg: "...; another operation (2) is in progress"
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
        exc = _next(exc)
    return False


def _next(exc: BaseException) -> BaseException | None:
    inner = getattr(exc, "orig", None)
    if isinstance(inner, BaseException) and inner is not exc:
        return inner
    return exc.__cause__


def _sqlstate(exc: BaseException) -> str | None:
    """The PostgreSQL SQLSTATE anywhere in ``exc``'s chain (SQLAlchemy, adapter, asyncpg)."""
    current: BaseException | None = exc
    while current is not None:
        code = getattr(current, "sqlstate", None) or getattr(current, "pgcode", None)
        if isinstance(code, str) and code:
            return code
        current = _next(current)
    return None


def _sqlite_code(exc: BaseException) -> str | None:
    """SQLite's primary result code name (``SQLITE_BUSY``, ``SQLITE_CANTOPEN``...), if any."""
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, sqlite3.Error):
            name = getattr(current, "sqlite_errorname", None)
            if isinstance(name, str):
                # Extended codes (SQLITE_READONLY_DBMOVED) keep their primary code's prefix.
                return "_".join(name.split("_")[:2])
        current = _next(current)
    return None


def describe_url(url: URL) -> str:
    """Where ``url`` points, for error messages, without its password."""
    if url.drivername.startswith("sqlite"):
        return str(url.database)
    return f"{url.host or 'localhost'}:{url.port or 5432}/{url.database or ''}"


def _first_line(exc: BaseException) -> str:
    original = _next(exc) or exc
    while (deeper := getattr(original, "orig", None)) is not None and deeper is not original:
        original = deeper
    # SQLAlchemy before 2.1 wraps asyncpg's error in an adapter whose text starts with
    # "<class 'asyncpg...'>: "; the driver's own error (its cause) says it plainly.
    cause = original.__cause__
    if cause is not None and type(cause).__module__.split(".")[0] in _DRIVER_PACKAGES:
        original = cause
    text = str(original).strip()
    return text.splitlines()[0] if text else type(original).__name__


_Rule = Callable[[BaseException, str | None, str | None, str, URL], DatabaseError | None]


def _conflict(
    exc: BaseException, state: str | None, lite: str | None, text: str, url: URL
) -> DatabaseError | None:
    if state in ("40P01", "40001"):
        kind = "deadlock" if state == "40P01" else "serialization failure"
        return DatabaseConflict(
            f"{kind} on {describe_url(url)}, the transaction was rolled back ({text})"
        )
    return None


def _lost(
    exc: BaseException, state: str | None, lite: str | None, text: str, url: URL
) -> DatabaseError | None:
    if state == "57P03" or "starting up" in text.lower():
        return DatabaseUnavailable(
            f"DATABASE_URL: {describe_url(url)} is starting up or shutting down ({text})"
        )
    invalidated = isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated
    if invalidated or connection_lost(exc):
        return DatabaseUnavailable(
            f"DATABASE_URL: lost the connection to {describe_url(url)} ({text})"
        )
    if state == "53300" or "too many clients" in text.lower():
        return DatabaseUnavailable(
            f"DATABASE_URL: {describe_url(url)} has too many connections ({text}); "
            "retrying, or lower DB_POOL_SIZE"
        )
    return None


def _missing(
    exc: BaseException, state: str | None, lite: str | None, text: str, url: URL
) -> DatabaseError | None:
    if state == "3D000":
        host = f"{url.host or 'localhost'}:{url.port or 5432}"
        return DatabaseMissing(
            f'DATABASE_URL: database "{url.database}" does not exist on {host}; '
            f"create it (createdb {url.database}), then run: ledgerflow db init"
        )
    if lite == "SQLITE_CANTOPEN" and url.database and not Path(url.database).exists():
        return DatabaseMissing(
            f"DATABASE_URL: no database at {url.database}; run: ledgerflow db init"
        )
    return None


def _login(
    exc: BaseException, state: str | None, lite: str | None, text: str, url: URL
) -> DatabaseError | None:
    if state is not None and state.startswith("28"):
        return DatabaseLoginRefused(
            f"DATABASE_URL: {describe_url(url)} refused the login ({text}); "
            "check the user and password in DATABASE_URL"
        )
    return None


def _schema(
    exc: BaseException, state: str | None, lite: str | None, text: str, url: URL
) -> DatabaseError | None:
    if state == "42P01" or (lite == "SQLITE_ERROR" and "no such table" in text):
        return SchemaNotReady(
            f"DATABASE_URL: tables missing in {describe_url(url)} ({text}); run: ledgerflow db init"
        )
    # A column this build reads is missing: the database was made by an older ledgerflow.
    if state == "42703" or (lite == "SQLITE_ERROR" and "no such column" in text):
        return SchemaNotReady(
            f"DATABASE_URL: {describe_url(url)} has an older schema than this ledgerflow "
            f"({text}); run: ledgerflow db upgrade"
        )
    return None


def _permission(
    exc: BaseException, state: str | None, lite: str | None, text: str, url: URL
) -> DatabaseError | None:
    if state == "42501":
        return DatabasePermissionDenied(
            f"DATABASE_URL: {describe_url(url)}: {text}; "
            "grant the role in DATABASE_URL access to ledgerflow's tables"
        )
    if lite in ("SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH"):
        folder = Path(str(url.database)).parent
        return DatabasePermissionDenied(
            f"DATABASE_URL: cannot open {describe_url(url)} ({text}); "
            f"make the file and its folder {folder} readable and writable"
        )
    return None


def _read_only(
    exc: BaseException, state: str | None, lite: str | None, text: str, url: URL
) -> DatabaseError | None:
    lowered = text.lower()
    if state == "25006" or lite == "SQLITE_READONLY" or "read-only" in lowered:
        return DatabaseReadOnly(
            f"DATABASE_URL: {describe_url(url)} is read-only ({text}); "
            "point DATABASE_URL at a writable database (the primary, a writable file)"
        )
    return None


def _damaged(
    exc: BaseException, state: str | None, lite: str | None, text: str, url: URL
) -> DatabaseError | None:
    if lite in ("SQLITE_CORRUPT", "SQLITE_NOTADB"):
        return DatabaseError(
            f"DATABASE_URL: {describe_url(url)} is damaged or not a database ({text}); "
            "restore it from a backup: ledgerflow db restore"
        )
    return None


def _busy(
    exc: BaseException, state: str | None, lite: str | None, text: str, url: URL
) -> DatabaseError | None:
    if lite in ("SQLITE_BUSY", "SQLITE_LOCKED") or "database is locked" in text.lower():
        return DatabaseBusy(
            f"DATABASE_URL: {describe_url(url)} stayed locked by another writer ({text})"
        )
    return None


def _unreachable(
    exc: BaseException, state: str | None, lite: str | None, text: str, url: URL
) -> DatabaseError | None:
    original = _next(exc) or exc
    if isinstance(original, _UNREACHABLE) or isinstance(
        exc, sa_exc.OperationalError | sa_exc.InterfaceError
    ):
        hint = " — is PostgreSQL running?" if url.drivername.startswith("postgresql") else ""
        return DatabaseUnavailable(
            f"DATABASE_URL: cannot connect to {describe_url(url)} ({text}){hint}"
        )
    return None


#: The classification, in order: the first rule that recognises the error wins.
_RULES: tuple[_Rule, ...] = (
    _conflict,
    _lost,
    _missing,
    _login,
    _schema,
    _permission,
    _read_only,
    _damaged,
    _busy,
    _unreachable,
)


def translate(exc: BaseException, url: URL) -> DatabaseError:
    """Map a driver or SQLAlchemy exception to one of ours, with a message saying what to do."""
    text = _first_line(exc)
    if isinstance(exc, sa_exc.IntegrityError):
        return IntegrityViolation(f"constraint violated: {text}")
    state, lite = _sqlstate(exc), _sqlite_code(exc)
    for rule in _RULES:
        error = rule(exc, state, lite, text, url)
        if error is not None:
            return error
    return DatabaseError(f"database error on {describe_url(url)}: {text}")


def is_driver_error(exc: BaseException) -> bool:
    """True for SQLAlchemy, driver and socket errors (what :func:`translate` understands)."""
    if isinstance(exc, (sa_exc.SQLAlchemyError, sqlite3.Error, *_UNREACHABLE)):
        return True
    return type(exc).__module__.split(".")[0] in _DRIVER_PACKAGES


@contextlib.contextmanager
def translated_errors(url: URL) -> Iterator[None]:
    """Re-raise driver and SQLAlchemy errors inside the block as ``DatabaseError``s."""
    try:
        yield
    except DatabaseError:
        raise
    except Exception as exc:
        if not is_driver_error(exc):
            raise
        raise translate(exc, url) from exc
