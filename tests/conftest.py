"""Fixtures: one real database per test, on each backend in ``LEDGERFLOW_TEST_BACKENDS``."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
import structlog
from sqlalchemy.engine import URL

from app.database import Database, set_database
from tests.databases import BACKENDS, PostgresFactory, SqliteFactory, postgres_unreachable_reason

T = TypeVar("T")

#: Makes a fresh database on the test's backend: ``await make(migrated=True)``.
DatabaseUrlFactory = Callable[..., Awaitable[URL]]


def pytest_report_header() -> str:
    return f"ledgerflow test backends: {', '.join(BACKENDS)}"


@pytest.fixture(scope="session")
def sqlite_factory(tmp_path_factory: pytest.TempPathFactory) -> SqliteFactory:
    return SqliteFactory(tmp_path_factory.mktemp("sqlite-template"))


def _run_in_thread(coro: Coroutine[Any, Any, T]) -> T:
    # Session fixtures may be first requested from inside a test's running event loop.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


@pytest.fixture(scope="session")
def postgres_factory() -> Iterator[PostgresFactory]:
    # Sync on purpose: each test runs in its own event loop, and the factory opens a fresh
    # admin connection per call, so the session-wide object is loop-independent.
    reason = _run_in_thread(postgres_unreachable_reason())
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{reason} — CI is set, so PostgreSQL tests must run", pytrace=False)
        pytest.skip(f"SKIPPING POSTGRESQL TESTS: {reason}")
    factory = PostgresFactory()
    yield factory
    _run_in_thread(factory.close())


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The backend under test; every database fixture follows it."""
    return str(request.param)


@pytest.fixture
async def database_url_factory(
    backend: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> AsyncIterator[DatabaseUrlFactory]:
    """A callable making fresh database URLs on this test's backend, dropped afterwards."""
    created: list[URL] = []
    if backend == "postgresql":
        pg: PostgresFactory = request.getfixturevalue("postgres_factory")

        async def make(migrated: bool = True) -> URL:
            url = await pg.create(migrated)
            created.append(url)
            return url

        yield make
        for url in created:
            await pg.drop(url)
    else:
        lite: SqliteFactory = request.getfixturevalue("sqlite_factory")

        async def make(migrated: bool = True) -> URL:
            return await lite.create(tmp_path, migrated)

        yield make


@pytest.fixture
async def database_url(database_url_factory: DatabaseUrlFactory) -> URL:
    """The URL of a fresh database at the head migration."""
    return await database_url_factory()


@pytest.fixture
async def database(database_url: URL) -> AsyncIterator[Database]:
    """A fresh migrated database, also installed as the process-wide one."""
    db = Database.from_url(database_url)
    set_database(db)
    yield db
    set_database(None)
    await db.dispose()


@pytest.fixture
async def sqlite_database(sqlite_factory: SqliteFactory, tmp_path: Path) -> AsyncIterator[Database]:
    """A fresh migrated SQLite database, for SQLite-specific behaviour."""
    db = Database.from_url(await sqlite_factory.create(tmp_path))
    yield db
    await db.dispose()


@pytest.fixture
def subprocess_env(database_url: URL) -> Iterator[dict[str, str]]:
    """Environment for a child process that should use this test's database."""
    env = dict(os.environ)
    env["DATABASE_URL"] = database_url.render_as_string(hide_password=False)
    env["LOG_FORMAT"] = "json"
    yield env


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put the root logger and structlog's configuration back after the test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    config = structlog.get_config()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**config)
