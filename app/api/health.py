"""Readiness: can a new connection reach the database, and is it at the head migration?

The probe opens a fresh connection every time (no pool), so it answers for the database
as it is now rather than for a pooled connection opened before an outage; it recovers by
itself as soon as the database does. SQLite is opened read-write without ``create``, so a
missing file is reported as missing instead of being silently recreated empty.

``/readyz`` needs no key, so its reasons never name the database's host or file; the
full message goes to the log.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import structlog
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from app.database.exceptions import describe_url, is_driver_error, translate
from app.database.schema import head_revision

log = structlog.get_logger(__name__)

#: What ``/readyz`` says for each database error code (anything else: "database error").
_PUBLIC_REASONS = {
    "database_unavailable": "database unreachable",
    "database_missing": "database unreachable",
    "database_login_refused": "database refused the login",
    "database_permission_denied": "database refused access",
    "schema_not_ready": "database has no schema: run `ledgerflow db init`",
    "database_read_only": "database is read-only",
    "database_busy": "database is locked by another writer",
}


@dataclass(frozen=True)
class Readiness:
    """The probe's answer: ready, or the reason why not."""

    ready: bool
    reason: str | None = None
    revision: str | None = None


def _probe_url(url: URL) -> URL:
    if url.drivername.startswith("sqlite") and url.database not in (None, "", ":memory:"):
        path = Path(str(url.database)).resolve()
        return url.set(database=f"file:{path}", query={"mode": "rw", "uri": "true"})
    return url


class ReadinessProbe:
    """Checks the database behind ``url`` on demand, within ``timeout`` seconds."""

    def __init__(self, url: URL, timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        self._engine: AsyncEngine | None = None
        self._head = head_revision()

    def _get_engine(self) -> AsyncEngine:
        if self._engine is None:
            self._engine = create_async_engine(_probe_url(self.url), poolclass=NullPool)
        return self._engine

    async def check(self) -> Readiness:
        """Connect, read ``alembic_version`` and compare it with the newest migration."""
        try:
            async with asyncio.timeout(self.timeout):
                revision = await self._revision()
        except TimeoutError:
            log.warning("not_ready", database=describe_url(self.url), error="timeout")
            return Readiness(False, f"database did not answer in {self.timeout:g} s")
        except Exception as exc:
            # SQLAlchemy before 2.1 lets some of asyncpg's connect errors out unwrapped
            # (a database refusing connections: ObjectNotInPrerequisiteStateError).
            if not is_driver_error(exc):
                raise
            error = translate(exc, self.url)
            log.warning("not_ready", error=error.message)
            return Readiness(False, _PUBLIC_REASONS.get(error.code, "database error"))
        if revision is None:
            return Readiness(False, "database has no schema: run `ledgerflow db init`")
        if revision != self._head:
            return Readiness(
                False,
                f"database is at migration {revision}, not the head {self._head}: "
                "run `ledgerflow db upgrade`",
                revision,
            )
        return Readiness(True, None, revision)

    async def _revision(self) -> str | None:
        async with self._get_engine().connect() as connection:
            has_table = await connection.run_sync(
                lambda sync: sync.dialect.has_table(sync, "alembic_version")
            )
            if not has_table:
                return None
            value = (
                await connection.execute(text("SELECT version_num FROM alembic_version"))
            ).scalar()
            return str(value) if value is not None else None

    async def close(self) -> None:
        """Dispose of the probe's engine (it holds no connections between checks)."""
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None
