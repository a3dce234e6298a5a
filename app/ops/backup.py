"""Hot backups, verified, and restores into an empty database.

**SQLite** backups use the online backup API (``sqlite3.Connection.backup``), never a file
copy: the copy runs in one step inside one read transaction, so in WAL mode the service
keeps writing meanwhile and the backup holds exactly what was committed when it started.
The copy is switched to ``journal_mode=DELETE`` (one self-contained file), checked with
``PRAGMA integrity_check`` and its audit chains are verified read-only.

**PostgreSQL** backups use ``pg_dump -Fc`` (one consistent snapshot). The dump is verified
by restoring it into a scratch database on the same server (dropped afterwards) and
verifying the audit chains there — the only way to know the dump restores.

Each backup is written under a temporary ``.partial`` name, verified, then renamed to
``<database>-<UTC timestamp>.db`` (SQLite) or ``.dump`` (PostgreSQL) in ``BACKUP_DIR``;
the newest ``BACKUP_KEEP`` verified backups of that database are kept and older ones
deleted (0 keeps all). A backup that fails verification is deleted and nothing is pruned.

Restores refuse a target that holds any table unless ``force``; they are atomic (SQLite:
one backup-API write transaction; PostgreSQL: the whole script in one transaction through
``psql``, committed only when ``pg_restore`` finished cleanly), so a failed restore leaves
the target as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sqlite3
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import structlog
from sqlalchemy import inspect, text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from app.audit.verify import Report, verify_session
from app.config import Settings, get_settings
from app.database import Database
from app.database.exceptions import describe_url, is_driver_error, translated_errors
from app.database.types import utcnow
from app.ops.exceptions import BackupFailed, RestoreFailed, RestoreRefused
from app.ops.pgtools import find_tool, first_error_line, libpq_env, run_tool

log = structlog.get_logger(__name__)

_SQLITE_MAGIC = b"SQLite format 3\x00"
_PGDUMP_MAGIC = b"PGDMP"
_STAMP = "%Y%m%dT%H%M%S"
_NAME = re.compile(r"^(?P<stem>.+)-(?P<stamp>\d{8}T\d{6}\.\d{3}Z)\.(?P<ext>db|dump)$")
_RELAY_CHUNK = 1 << 16


@dataclass(frozen=True)
class Verification:
    """What was checked in a backup or a restored database."""

    integrity: str
    requests: int
    audit_rows: int
    audit_chains: int
    revision: str | None

    def summary(self) -> str:
        """One line for people."""
        return (
            f"integrity {self.integrity}; {self.requests} requests; audit chains verify "
            f"({self.audit_rows} rows in {self.audit_chains} chains); revision "
            f"{self.revision or 'none'}"
        )


@dataclass(frozen=True)
class BackupResult:
    """A written, verified backup and the old backups pruned after it."""

    path: Path
    size_bytes: int
    backend: str
    started_at: datetime
    finished_at: datetime
    verification: Verification
    pruned: tuple[Path, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class RestoreResult:
    """A restored database and what was verified in it."""

    target: str
    source: Path
    replaced: bool
    verification: Verification


# --------------------------------------------------------------------------- naming


def backup_name(database: Database, moment: datetime) -> str:
    """``<database>-YYYYMMDDTHHMMSS.mmmZ.<db|dump>`` for a backup taken at ``moment`` (UTC)."""
    stem = _stem(database.url)
    stamp = f"{moment.strftime(_STAMP)}.{moment.microsecond // 1000:03d}Z"
    return f"{stem}-{stamp}.{'db' if database.dialect == 'sqlite' else 'dump'}"


def _stem(url: URL) -> str:
    raw = Path(str(url.database)).stem if url.drivername.startswith("sqlite") else url.database
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", raw or "ledgerflow")


def list_backups(directory: Path, database: Database) -> list[Path]:
    """This database's backups in ``directory``, newest first (by the name's timestamp)."""
    stem = _stem(database.url)
    ext = "db" if database.dialect == "sqlite" else "dump"
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = _NAME.match(path.name)
        if match and match["stem"] == stem and match["ext"] == ext and path.is_file():
            found.append((match["stamp"], path))
    return [path for _, path in sorted(found, reverse=True)]


def prune_backups(directory: Path, database: Database, keep: int) -> tuple[Path, ...]:
    """Delete all but the newest ``keep`` backups of this database (``keep`` 0: none)."""
    if keep <= 0:
        return ()
    old = list_backups(directory, database)[keep:]
    for path in old:
        path.unlink(missing_ok=True)
    return tuple(old)


# --------------------------------------------------------------------------- backup


async def create_backup(
    database: Database,
    settings: Settings | None = None,
    *,
    directory: Path | None = None,
    keep: int | None = None,
) -> BackupResult:
    """Write a verified backup of ``database`` to ``directory`` (default ``BACKUP_DIR``)."""
    settings = settings or get_settings()
    directory = (directory or settings.backups_path).resolve()
    keep = settings.backup_keep if keep is None else keep
    if keep < 0:
        raise BackupFailed("--keep: must be zero or more")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupFailed(
            f"BACKUP_DIR: cannot create {directory} ({exc.strerror or exc})"
        ) from exc
    started = utcnow()
    final = directory / backup_name(database, started)
    if final.exists():
        raise BackupFailed(f"{final} already exists; try again in a moment")
    partial = directory / f".{final.name}.partial"
    try:
        if database.dialect == "sqlite":
            await asyncio.to_thread(_sqlite_copy, _sqlite_path(database), partial)
            verification = await _verify_sqlite_file(partial)
        else:
            verification = await _pg_dump_verified(database, settings, partial)
        _fsync(partial)
        os.replace(partial, final)
        _fsync(directory)
    finally:
        partial.unlink(missing_ok=True)
    pruned = prune_backups(directory, database, keep)
    result = BackupResult(
        path=final,
        size_bytes=final.stat().st_size,
        backend=database.dialect,
        started_at=started,
        finished_at=utcnow(),
        verification=verification,
        pruned=pruned,
    )
    log.info(
        "backup_written",
        path=str(final),
        size_bytes=result.size_bytes,
        requests=verification.requests,
        audit_rows=verification.audit_rows,
        pruned=len(pruned),
    )
    return result


def _sqlite_path(database: Database) -> Path:
    name = database.url.database
    if not name or name == ":memory:":
        raise BackupFailed("DATABASE_URL: an in-memory SQLite database cannot be backed up")
    path = Path(name).resolve()
    if not path.is_file():
        raise BackupFailed(f"DATABASE_URL: {path} does not exist")
    return path


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sqlite_copy(source: Path, target: Path) -> None:
    """Online backup of ``source`` into a new file ``target`` in one step (one snapshot)."""
    target.unlink(missing_ok=True)
    try:
        src = sqlite3.connect(source, timeout=30)
        try:
            dst = sqlite3.connect(target)
            try:
                # pages=-1: copy everything in one step inside one read transaction. Copying
                # in several steps would restart whenever the service writes in between.
                src.backup(dst, pages=-1)
                # A backup is one self-contained file, not a WAL database with side files.
                dst.execute("PRAGMA journal_mode=DELETE")
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.Error as exc:
        raise BackupFailed(f"SQLite backup of {source} failed: {exc}") from exc


def _ro_sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///file:{urllib.parse.quote(str(path))}?mode=ro&uri=true"


def _sqlite_integrity(path: Path) -> str:
    try:
        conn = sqlite3.connect(f"file:{urllib.parse.quote(str(path))}?mode=ro", uri=True)
        try:
            rows = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return f"cannot open ({exc})"
    return "ok" if rows == ["ok"] else "; ".join(str(r) for r in rows[:5])


async def _verify_sqlite_file(path: Path) -> Verification:
    integrity = await asyncio.to_thread(_sqlite_integrity, path)
    if integrity != "ok":
        raise BackupFailed(f"{path.name}: integrity_check: {integrity}")
    engine = create_async_engine(_ro_sqlite_url(path))
    try:
        return await _verify_engine(engine, integrity)
    finally:
        await engine.dispose()


def _counts(connection: Connection) -> tuple[int, str | None]:
    tables = set(inspect(connection).get_table_names())
    if "requests" not in tables or "audit_logs" not in tables:
        raise BackupFailed("the backup holds no ledgerflow tables (requests, audit_logs)")
    requests = int(connection.execute(text("SELECT count(*) FROM requests")).scalar_one())
    revision = None
    if "alembic_version" in tables:
        revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return requests, revision


async def _verify_engine(engine: AsyncEngine, integrity: str) -> Verification:
    """Count requests and verify every audit chain in one snapshot of ``engine``'s database."""
    with translated_errors(engine.url):
        async with async_sessionmaker(engine)() as session:
            if engine.dialect.name == "postgresql":
                await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            connection = await session.connection()
            requests, revision = await connection.run_sync(_counts)
            report: Report = await verify_session(session)
    if not report.ok:
        first = report.problems[0]
        raise BackupFailed(
            f"audit chains do not verify: {len(report.problems)} problem(s), first: {first}"
        )
    return Verification(integrity, requests, report.rows, report.chains, revision)


async def _pg_dump_verified(database: Database, settings: Settings, target: Path) -> Verification:
    pg_dump = find_tool("pg_dump", settings.pg_bin_dir)
    pg_restore = find_tool("pg_restore", settings.pg_bin_dir)
    env = libpq_env(database.url)
    try:
        await run_tool(pg_dump, ["-Fc", "--no-password", "-f", str(target)], env)
    except RuntimeError as exc:
        raise BackupFailed(f"pg_dump of {describe_url(database.url)} failed: {exc}") from exc
    try:
        await run_tool(pg_restore, ["--list", str(target)], env)
    except RuntimeError as exc:
        raise BackupFailed(f"{target.name}: pg_restore cannot read it: {exc}") from exc
    async with _scratch_database(database) as scratch:
        scratch_db = Database.from_url(scratch, settings)
        try:
            await _pg_restore_into(scratch_db, target, settings, replace=False)
            return await _verify_engine(scratch_db.engine, "ok")
        finally:
            await scratch_db.dispose()


@contextlib.asynccontextmanager
async def _scratch_database(database: Database) -> AsyncIterator[URL]:
    """A new, empty database on ``database``'s server, dropped on exit."""
    name = f"{_stem(database.url)[:30]}_verify_{uuid.uuid4().hex[:10]}"
    admin = database.engine.execution_options(isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        if not is_driver_error(exc):
            raise
        raise BackupFailed(
            f"verifying the dump needs a scratch database on {describe_url(database.url)} "
            f"and CREATE DATABASE failed ({str(exc).splitlines()[0]}) — grant CREATEDB"
        ) from exc
    try:
        yield database.url.set(database=name)
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# --------------------------------------------------------------------------- restore


def backup_kind(path: Path) -> str:
    """``sqlite`` or ``postgresql`` from the file's first bytes; anything else is refused."""
    try:
        with path.open("rb") as handle:
            head = handle.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        raise RestoreRefused(f"BACKUP: cannot read {path} ({exc.strerror or exc})") from exc
    if head.startswith(_SQLITE_MAGIC):
        return "sqlite"
    if head.startswith(_PGDUMP_MAGIC):
        return "postgresql"
    raise RestoreRefused(f"BACKUP: {path} is neither a SQLite backup nor a pg_dump -Fc archive")


def _occupancy(connection: Connection) -> tuple[int, int]:
    tables = inspect(connection).get_table_names()
    requests = 0
    if "requests" in tables:
        requests = int(connection.execute(text("SELECT count(*) FROM requests")).scalar_one())
    return len(tables), requests


async def _occupied(database: Database) -> tuple[int, int]:
    """How many tables (and requests) the target holds."""
    if database.dialect == "sqlite":
        path = Path(str(database.url.database))
        if not path.exists() or path.stat().st_size == 0:
            return 0, 0
    with translated_errors(database.url):
        async with database.engine.connect() as connection:
            return await connection.run_sync(_occupancy)


async def restore_backup(
    database: Database,
    backup: Path,
    settings: Settings | None = None,
    *,
    force: bool = False,
) -> RestoreResult:
    """Restore ``backup`` into ``database``; refuse a non-empty target unless ``force``."""
    settings = settings or get_settings()
    backup = backup.resolve()
    if not backup.is_file():
        raise RestoreRefused(f"BACKUP: {backup} does not exist or is not a file")
    kind = backup_kind(backup)
    if kind != database.dialect:
        raise RestoreRefused(
            f"BACKUP: {backup.name} is a {kind} backup but the target is {database.dialect}"
        )
    where = describe_url(database.url)
    tables, requests = await _occupied(database)
    if tables and not force:
        raise RestoreRefused(
            f"{where} is not empty ({tables} tables, {requests} requests); restore only into "
            "an empty database, or add --force to replace everything in it"
        )
    if kind == "sqlite":
        integrity = await asyncio.to_thread(_sqlite_integrity, backup)
        if integrity != "ok":
            raise RestoreRefused(f"BACKUP: {backup.name}: integrity_check: {integrity}")
        target = Path(str(database.url.database)).resolve()
        await database.dispose()
        await asyncio.to_thread(_sqlite_restore, backup, target)
        verification = await _verify_sqlite_file(target)
    else:
        await _pg_restore_into(database, backup, settings, replace=bool(tables))
        await database.dispose()
        verification = await _verify_engine(database.engine, "ok")
    log.info("backup_restored", source=str(backup), target=where, requests=verification.requests)
    return RestoreResult(where, backup, bool(tables), verification)


def _sqlite_restore(backup: Path, target: Path) -> None:
    """Copy ``backup`` over ``target`` with the backup API: one write transaction on target."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        src = sqlite3.connect(f"file:{urllib.parse.quote(str(backup))}?mode=ro", uri=True)
        try:
            dst = sqlite3.connect(target, timeout=30)
            try:
                src.backup(dst, pages=-1)
                dst.execute("PRAGMA journal_mode=WAL")
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.Error as exc:
        raise RestoreFailed(f"restoring {backup.name} into {target} failed: {exc}") from exc


async def _pg_restore_into(
    database: Database, archive: Path, settings: Settings, *, replace: bool
) -> None:
    """Run ``pg_restore``'s script through ``psql`` in one transaction.

    The script is relayed through this process so that ``COMMIT`` is only sent once
    ``pg_restore`` has exited cleanly; any error in either tool rolls everything back.
    """
    pg_restore = find_tool("pg_restore", settings.pg_bin_dir)
    psql = find_tool("psql", settings.pg_bin_dir)
    env = libpq_env(database.url)
    producer = await asyncio.create_subprocess_exec(
        str(pg_restore),
        "--no-owner",
        "--no-privileges",
        "-f",
        "-",
        str(archive),
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    consumer = await asyncio.create_subprocess_exec(
        str(psql),
        "-X",
        "-q",
        "--no-password",
        "-v",
        "ON_ERROR_STOP=1",
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert producer.stdout is not None and producer.stderr is not None
    assert consumer.stdin is not None and consumer.stderr is not None
    producer_err = asyncio.ensure_future(producer.stderr.read())
    consumer_err = asyncio.ensure_future(consumer.stderr.read())
    stdin = consumer.stdin
    psql_stopped = False
    try:
        stdin.write(b"BEGIN;\n")
        if replace:
            stdin.write(b"DROP SCHEMA public CASCADE;\nCREATE SCHEMA public;\n")
        while chunk := await producer.stdout.read(_RELAY_CHUNK):
            stdin.write(chunk)
            await stdin.drain()
        produced = await producer.wait()
        stdin.write(b"\nCOMMIT;\n" if produced == 0 else b"\nROLLBACK;\n")
        await stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        # psql stopped at an error (ON_ERROR_STOP) and its transaction rolled back; stop
        # pg_restore too, which would otherwise block on a full pipe.
        psql_stopped = True
        if producer.returncode is None:
            producer.kill()
        produced = await producer.wait()
    finally:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            stdin.close()
    consumed = await consumer.wait()
    if consumed != 0 or psql_stopped:
        raise RestoreFailed(
            f"psql could not restore {archive.name} into {describe_url(database.url)}: "
            f"{first_error_line(await consumer_err, f'exit {consumed}')}; nothing was changed"
        )
    if produced != 0:
        raise RestoreFailed(
            f"pg_restore of {archive.name} failed: "
            f"{first_error_line(await producer_err, f'exit {produced}')}; nothing was changed"
        )
