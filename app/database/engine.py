"""Engine factory and the session context managers every transaction goes through.

``get_db_session()`` is the one way to write: commit on clean exit, rollback and re-raise
on any exception, always close. ``get_read_session()`` is for long reads (exports, trail
queries): on SQLite it starts a deferred transaction so it does not hold the write lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import urllib.parse
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, ExceptionContext
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.config import Settings, get_settings, parse_database_url
from app.database.exceptions import connection_lost, translated_errors
from app.database.types import canonical_json_text
from app.exceptions import ConfigurationError

_SQLITE_BEGIN = "ledgerflow_sqlite_begin"


def _sqlite_pragmas(wal_autocheckpoint: int) -> Callable[[Any, Any], None]:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Every new SQLite connection needs these; pragmas are per connection, not per
        # file. WAL lets readers run beside the single writer; NORMAL is durable across
        # process crashes in WAL mode; busy_timeout waits for the writer instead of failing
        # at once; foreign keys are off by default in SQLite; checkpoints happen mostly in
        # the background (app/database/wal.py), not inside a writer's COMMIT.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA wal_autocheckpoint={int(wal_autocheckpoint)}")
        cursor.close()
        # Let SQLAlchemy, not the driver, decide when transactions begin (_on_sqlite_begin).
        dbapi_connection.isolation_level = None

    return on_connect


def _on_sqlite_begin(conn: Any) -> None:
    # A deferred SQLite transaction that reads and then writes can fail with SQLITE_BUSY
    # without waiting when another writer committed in between. Writers therefore take the
    # write lock up front (BEGIN IMMEDIATE, which honours busy_timeout); read sessions ask
    # for DEFERRED so that long exports do not block writers.
    mode = conn.get_execution_options().get(_SQLITE_BEGIN, "IMMEDIATE")
    conn.exec_driver_sql(f"BEGIN {mode}")


def _on_sqlite_do_connect(
    _dialect: Any, _record: Any, cargs: list[Any], cparams: dict[str, Any]
) -> None:
    # Open the file read-write but never create it: a command pointed at a path with no
    # database must say so, not leave an empty file behind. Only create_sqlite_file (run by
    # `db init`, `db upgrade` and `db restore`) makes a new database file.
    if not cargs or not isinstance(cargs[0], str) or cparams.get("uri"):
        return
    filename = cargs[0]
    if filename not in ("", ":memory:") and not Path(filename).exists():
        # Refused here rather than by SQLite: aiosqlite's thread for a connection that
        # failed to open outlives asyncio.run and prints "Event loop is closed".
        raise _cannot_open()
    cargs[0] = _read_write_uri(filename)
    cparams["uri"] = True


def _cannot_open() -> sqlite3.OperationalError:
    error = sqlite3.OperationalError("unable to open database file")
    error.sqlite_errorcode = sqlite3.SQLITE_CANTOPEN
    error.sqlite_errorname = "SQLITE_CANTOPEN"
    return error


def _read_write_uri(filename: str) -> str:
    if filename in ("", ":memory:") or filename.startswith("file:"):
        return filename
    return f"file:{urllib.parse.quote(str(Path(filename).absolute()))}?mode=rw"


def sqlite_path(url: URL) -> Path | None:
    """The file a SQLite URL names (None for PostgreSQL and in-memory databases)."""
    if not url.drivername.startswith("sqlite") or url.database in (None, "", ":memory:"):
        return None
    return Path(str(url.database))


def create_sqlite_file(url: URL) -> bool:
    """Create the SQLite database file ``url`` names, and its folder, if they are missing.

    The one place a database file comes into being (``db init``, ``db upgrade``,
    ``db restore``); every other connection opens the file read-write without creating it.
    True when a file was created; always False for PostgreSQL.
    """
    path = sqlite_path(url)
    if path is None or path.exists():
        return False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        sqlite3.connect(path).close()
    except (OSError, sqlite3.Error) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise ConfigurationError(f"DATABASE_URL: cannot create {path} ({reason})") from exc
    return True


def create_engine(url: URL | str | None = None, settings: Settings | None = None) -> AsyncEngine:
    """Create an async engine for ``url`` (default: ``DATABASE_URL``) with our per-dialect setup.

    SQLite: the file is opened read-write and never created (see :func:`create_sqlite_file`);
    every connection gets WAL, synchronous=NORMAL, busy_timeout=5000, foreign_keys=ON and
    ``wal_autocheckpoint`` from settings.
    PostgreSQL: asyncpg with a pre-pinged pool sized from settings.
    """
    settings = settings or get_settings()
    if url is None:
        url = settings.database
    elif isinstance(url, str):
        url = parse_database_url(url)
    if url.drivername.startswith("sqlite"):
        engine = create_async_engine(
            url, echo=settings.db_echo, json_serializer=canonical_json_text
        )
        event.listen(engine.sync_engine, "do_connect", _on_sqlite_do_connect)
        event.listen(
            engine.sync_engine, "connect", _sqlite_pragmas(settings.sqlite_wal_autocheckpoint)
        )
        event.listen(engine.sync_engine, "begin", _on_sqlite_begin)
        return engine
    engine = create_async_engine(
        url,
        echo=settings.db_echo,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=True,
        json_serializer=canonical_json_text,
    )
    event.listen(engine.sync_engine, "handle_error", _on_postgres_error)
    return engine


def _on_postgres_error(context: ExceptionContext) -> None:
    # SQLAlchemy's asyncpg dialect does not count every lost connection as a disconnect
    # (a backend killed mid-query can leave asyncpg with "another operation is in
    # progress"); such a connection must leave the pool, or the next user inherits it.
    if connection_lost(context.original_exception):
        context.is_disconnect = True


class Database:
    """An engine with its session factories: the handle the orchestrator, audit and API share."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.url: URL = engine.url
        self.dialect: str = engine.dialect.name
        self._write_sessions = async_sessionmaker(engine, expire_on_commit=False)
        reader = engine.execution_options(**{_SQLITE_BEGIN: "DEFERRED"})
        self._read_sessions = async_sessionmaker(reader, expire_on_commit=False)
        # SQLite has one writer at a time. Queueing this process's writers here is cheaper
        # than letting them meet in SQLite's busy handler, which sleeps between polls.
        self._writer_lock: asyncio.Lock | None = (
            asyncio.Lock() if self.dialect == "sqlite" else None
        )

    @classmethod
    def from_url(cls, url: URL | str | None = None, settings: Settings | None = None) -> Database:
        """Build a ``Database`` for ``url`` (default: ``DATABASE_URL``)."""
        return cls(create_engine(url, settings))

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A write transaction: commit on clean exit, rollback and re-raise on error, close."""
        async with self._writer_lock or contextlib.nullcontext():
            async with self._write_session() as session:
                yield session

    @contextlib.asynccontextmanager
    async def _write_session(self) -> AsyncIterator[AsyncSession]:
        with translated_errors(self.url):
            async with self._write_sessions() as session:
                try:
                    yield session
                except BaseException:
                    await session.rollback()
                    raise
                else:
                    await session.commit()

    @contextlib.asynccontextmanager
    async def read_session(self) -> AsyncIterator[AsyncSession]:
        """A read transaction that never holds SQLite's write lock; ended (not committed) on exit.

        Closing releases the connection, which rolls its transaction back; objects read stay
        usable (closing detaches them without expiring them, unlike a rollback).
        """
        with translated_errors(self.url):
            async with self._read_sessions() as session:
                yield session

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()


_default: Database | None = None


def get_database() -> Database:
    """The process-wide ``Database`` built from settings on first use."""
    global _default
    if _default is None:
        _default = Database.from_url()
    return _default


def set_database(database: Database | None) -> None:
    """Replace the process-wide ``Database`` (wiring and tests use this; nothing else should)."""
    global _default
    _default = database


@contextlib.asynccontextmanager
async def get_db_session() -> AsyncIterator[AsyncSession]:
    """One transaction on the process-wide database: commit on success, rollback on error."""
    async with get_database().session() as session:
        yield session


async def session_dependency() -> AsyncIterator[AsyncSession]:
    """FastAPI dependency built on ``get_db_session`` (use as ``SessionDep``)."""
    async with get_db_session() as session:
        yield session
