"""Real test databases: a migrated template per run, one fresh copy per test.

PostgreSQL: the template is migrated once, each test gets ``CREATE DATABASE ... TEMPLATE``
(fast, and visible to other processes). SQLite: the template file is migrated once and
copied per test. Which backends run is chosen once, by ``LEDGERFLOW_TEST_BACKENDS``
(default ``sqlite,postgresql``); ``LEDGERFLOW_TEST_PG_URL`` names the server.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import uuid
from pathlib import Path

import asyncpg
from sqlalchemy.engine import URL, make_url

from app.database import Database
from app.database import schema as db_schema

PG_ADMIN_URL = os.environ.get("LEDGERFLOW_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = [
    b.strip()
    for b in os.environ.get("LEDGERFLOW_TEST_BACKENDS", "sqlite,postgresql").split(",")
    if b.strip()
]


def _asyncpg_dsn(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def postgres_unreachable_reason() -> str | None:
    """None when the test server answers, else why not."""
    try:
        conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"PostgreSQL at {PG_ADMIN_URL} unreachable: {exc}"
    await conn.close()
    return None


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def postgres_url(name: str) -> URL:
    """The SQLAlchemy URL of database ``name`` on the test server."""
    return make_url(PG_ADMIN_URL).set(drivername="postgresql+asyncpg", database=name)


class PostgresFactory:
    """Migrates a template database once, then clones it for every test."""

    def __init__(self) -> None:
        self.prefix = f"lf_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.template = f"{self.prefix}_tpl"
        self._ready = False

    async def _prepare(self) -> None:
        if self._ready:
            return
        await _admin(f'CREATE DATABASE "{self.template}"')
        database = Database.from_url(postgres_url(self.template))
        try:
            await db_schema.upgrade(database)
        finally:
            await database.dispose()
        self._ready = True

    async def create(self, migrated: bool = True) -> URL:
        """A new database (a copy of the migrated template, or empty)."""
        name = f"{self.prefix}_{uuid.uuid4().hex[:8]}"
        if migrated:
            await self._prepare()
            await _admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        else:
            await _admin(f'CREATE DATABASE "{name}"')
        return postgres_url(name)

    async def drop(self, url: URL) -> None:
        """Drop a test database, disconnecting anyone still on it."""
        await _admin(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')

    async def close(self) -> None:
        """Drop the template."""
        if self._ready:
            await _admin(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)')


class SqliteFactory:
    """Migrates a template file once, then copies it for every test."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.template = folder / "template.db"
        self._ready = False

    async def _prepare(self) -> None:
        if self._ready:
            return
        database = Database.from_url(f"sqlite+aiosqlite:///{self.template}")
        try:
            await db_schema.upgrade(database)
        finally:
            await database.dispose()
        # Fold the WAL into the main file so a plain copy is a complete database.
        with sqlite3.connect(self.template) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._ready = True

    async def create(self, folder: Path, migrated: bool = True) -> URL:
        """A new database file in ``folder`` (a copy of the migrated template, or none yet)."""
        path = folder / f"ledgerflow-{uuid.uuid4().hex[:8]}.db"
        if migrated:
            await self._prepare()
            await asyncio.to_thread(shutil.copyfile, self.template, path)
        return make_url(f"sqlite+aiosqlite:///{path}")
