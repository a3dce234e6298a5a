"""Database errors classified once: permanent ones fail at once, transient ones are retried.

Every error here is provoked for real: a database that does not exist, a role that does
not, an empty database, a role without grants, a read-only database, a SQLite path with
no file, a closed port, and on PostgreSQL a deadlock between two transactions that lock
rows in opposite order and a serialization failure. The engine's tries are counted with
its own events, so "not retried" means exactly one try.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError

from app.database import (
    Database,
    DatabaseConflict,
    DatabaseError,
    DatabaseLoginRefused,
    DatabaseMissing,
    DatabasePermissionDenied,
    DatabaseReadOnly,
    DatabaseUnavailable,
    SchemaNotReady,
)
from app.database import schema as schema_module
from app.database.schema import downgrade, require_head
from app.orchestrator.engine import Orchestrator
from app.orchestrator.retry import retrying_write
from tests.conftest import DatabaseUrlFactory
from tests.databases import PG_ADMIN_URL, postgres_url
from tests.support.agents import engine_workflows


def count_attempts(database: Database) -> list[int]:
    """A one-element counter of the engine's tries: connection attempts on PostgreSQL; on
    SQLite failed calls (a missing file is refused before any connection is tried)."""
    attempts = [0]

    def counted(*_: Any) -> None:
        attempts[0] += 1

    kind = "handle_error" if database.dialect == "sqlite" else "do_connect"
    event.listen(database.engine.sync_engine, kind, counted)
    return attempts


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def postgresql(backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("a PostgreSQL error")


@pytest.fixture
def sqlite(backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("a SQLite error")


async def fails_at_once(url: URL, error: type[DatabaseError]) -> DatabaseError:
    """Read through the Orchestrator (retried on transient errors); expect one attempt."""
    database = Database.from_url(url)
    attempts = count_attempts(database)
    try:
        with pytest.raises(error) as caught:
            await Orchestrator(database, engine_workflows()).list()
    finally:
        await database.dispose()
    assert attempts[0] == 1, f"a permanent error was retried ({attempts[0]} connection attempts)"
    return caught.value


# ------------------------------------------------------------------ permanent: PostgreSQL


@pytest.mark.usefixtures("postgresql", "postgres_factory")
async def test_a_missing_postgres_database_is_named_with_what_to_do() -> None:
    name = f"lf_missing_{uuid.uuid4().hex[:8]}"
    error = await fails_at_once(postgres_url(name), DatabaseMissing)
    assert error.message == (
        f'DATABASE_URL: database "{name}" does not exist on 127.0.0.1:5432; '
        f"create it (createdb {name}), then run: ledgerflow db init"
    )


@pytest.mark.usefixtures("postgresql")
async def test_an_unknown_role_is_refused_at_once_without_showing_the_password(
    database_url: URL,
) -> None:
    url = database_url.set(username=f"lf_nobody_{uuid.uuid4().hex[:6]}", password="s3cret-pw")
    error = await fails_at_once(url, DatabaseLoginRefused)
    assert "refused the login" in error.message
    assert "check the user and password in DATABASE_URL" in error.message
    assert "s3cret-pw" not in error.message


@pytest.mark.usefixtures("postgresql")
async def test_a_role_without_grants_is_permission_denied(database_url: URL) -> None:
    role = f"lf_noaccess_{uuid.uuid4().hex[:6]}"
    await _admin(f"CREATE ROLE {role} LOGIN")
    try:
        error = await fails_at_once(database_url.set(username=role), DatabasePermissionDenied)
        assert "permission denied for table requests" in error.message
        assert "grant the role" in error.message
    finally:
        await _admin(f"DROP OWNED BY {role}; DROP ROLE {role}")


@pytest.mark.usefixtures("postgresql")
async def test_a_read_only_postgres_database_refuses_a_submit_at_once(database_url: URL) -> None:
    await _admin(f'ALTER DATABASE "{database_url.database}" SET default_transaction_read_only = on')
    database = Database.from_url(database_url)
    attempts = count_attempts(database)
    try:
        with pytest.raises(DatabaseReadOnly, match="read-only"):
            await Orchestrator(database, engine_workflows()).submit(
                "single", {"numbers": [1]}, "svc-a"
            )
        assert attempts[0] == 1
    finally:
        await database.dispose()


# --------------------------------------------------------------------- permanent: both


async def test_a_database_without_tables_says_run_db_init(
    database_url_factory: DatabaseUrlFactory, backend: str
) -> None:
    url = await database_url_factory(migrated=False)
    if backend == "sqlite":
        Path(str(url.database)).touch()  # an empty file: a valid SQLite database, no tables
    error = await fails_at_once(url, SchemaNotReady)
    assert error.message.startswith("DATABASE_URL: tables missing in ")
    assert error.message.endswith("; run: ledgerflow db init")
    database = Database.from_url(url)
    try:
        with pytest.raises(SchemaNotReady) as start:
            await require_head(database)
    finally:
        await database.dispose()
    assert start.value.message.startswith("DATABASE_URL: no tables in ")


async def test_a_database_made_by_an_older_ledgerflow_says_run_db_upgrade(
    database: Database, database_url: URL
) -> None:
    # One migration back: the columns the newest one added are missing. A command that
    # reads without checking the migration first must fail at once, saying what to do.
    migrations = Path(schema_module.__file__).parent / "migrations" / "versions"
    revisions = sorted(p.stem[:4] for p in migrations.glob("0*.py"))
    await downgrade(database, revisions[-2])
    error = await fails_at_once(database_url, SchemaNotReady)
    assert "older schema than this ledgerflow" in error.message
    assert error.message.endswith("; run: ledgerflow db upgrade")


async def test_a_database_behind_the_head_is_refused_at_start(database: Database) -> None:
    async with database.session() as session:
        await session.execute(text("UPDATE alembic_version SET version_num = '0003'"))
    with pytest.raises(SchemaNotReady, match=r"at migration 0003, not the head .*db upgrade"):
        await require_head(database)
    async with database.session() as session:
        await session.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(SchemaNotReady, match=r"does not know .*upgrade ledgerflow"):
        await require_head(database)


# ------------------------------------------------------------------- permanent: SQLite


@pytest.mark.usefixtures("sqlite")
async def test_a_missing_sqlite_file_is_named_and_not_created(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "ledgerflow.db"
    error = await fails_at_once(make_url(f"sqlite+aiosqlite:///{path}"), DatabaseMissing)
    assert error.message == f"DATABASE_URL: no database at {path}; run: ledgerflow db init"
    assert not path.parent.exists(), "a command that only reads created the database's folder"


# --------------------------------------------------------------------------- transient


@pytest.mark.usefixtures("postgresql")
async def test_a_refused_connection_is_retried_before_it_is_reported() -> None:
    database = Database.from_url("postgresql+asyncpg://postgres@127.0.0.1:1/nowhere")
    attempts = count_attempts(database)
    try:
        with pytest.raises(DatabaseUnavailable, match="is PostgreSQL running"):
            await Orchestrator(database, engine_workflows()).list()
    finally:
        await database.dispose()
    assert attempts[0] == 5


# ------------------------------------------------------------- conflicts (PostgreSQL)


@pytest.fixture
async def rows(database: Database, backend: str) -> AsyncIterator[Database]:
    """Two rows in a scratch table of the test database, to lock in opposite orders."""
    if backend != "postgresql":
        pytest.skip("deadlocks and serialization failures are PostgreSQL's")
    async with database.session() as session:
        await session.execute(text("CREATE TABLE probe (id int PRIMARY KEY, n int NOT NULL)"))
        await session.execute(text("INSERT INTO probe VALUES (1, 0), (2, 0)"))
    yield database


async def _bump(session: Any, row: int) -> None:
    await session.execute(text("UPDATE probe SET n = n + 1 WHERE id = :id"), {"id": row})


async def _waiting_for_a_lock(database: Database) -> None:
    """Return once another transaction of this database waits for a row lock."""
    for _ in range(200):
        async with database.read_session() as session:
            waiting = (
                await session.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND wait_event_type = 'Lock'"
                    )
                )
            ).scalar_one()
        if waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the other transaction never waited for the lock")


async def deadlock(
    database: Database, victim: Callable[[Callable[[], Awaitable[None]]], Awaitable[None]]
) -> None:
    """Two transactions lock rows 1 and 2 in opposite orders; ``victim`` runs the one that
    PostgreSQL aborts (its ``deadlock_timeout`` is the shorter, and it waits last)."""
    victim_has_1 = asyncio.Event()
    other_has_2 = asyncio.Event()
    first_try = [True]

    async def other() -> None:
        async with database.session() as session:
            await session.execute(text("SET LOCAL deadlock_timeout = '10s'"))
            await _bump(session, 2)
            other_has_2.set()
            await victim_has_1.wait()
            await _bump(session, 1)

    async def victim_transaction() -> None:
        async with database.session() as session:
            if first_try[0]:
                first_try[0] = False
                await session.execute(text("SET LOCAL deadlock_timeout = '50ms'"))
                await _bump(session, 1)
                victim_has_1.set()
                await other_has_2.wait()
                await _waiting_for_a_lock(database)
            else:
                await _bump(session, 1)
            await _bump(session, 2)

    # Both transactions end before this returns (the survivor commits), then the victim's
    # error, if any, is raised.
    outcomes = await asyncio.gather(other(), victim(victim_transaction), return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


async def probe_counts(database: Database) -> dict[int, int]:
    async with database.read_session() as session:
        rows = (await session.execute(text("SELECT id, n FROM probe"))).all()
        return {int(row[0]): int(row[1]) for row in rows}


async def test_an_unretried_deadlock_surfaces_as_database_conflict(rows: Database) -> None:
    async def once(transaction: Callable[[], Awaitable[None]]) -> None:
        await transaction()

    with pytest.raises(DatabaseConflict) as caught:
        await deadlock(rows, once)
    assert caught.value.message.startswith("deadlock on ")
    assert "rolled back" in caught.value.message
    assert isinstance(caught.value.__cause__, DBAPIError)  # translated, not a raw driver error
    assert await probe_counts(rows) == {1: 1, 2: 1}  # only the survivor's writes


async def test_a_retrying_write_survives_a_deadlock(rows: Database) -> None:
    tries = [0]

    async def retried(transaction: Callable[[], Awaitable[None]]) -> None:
        @retrying_write
        async def write() -> None:
            tries[0] += 1
            await transaction()

        await write()

    await deadlock(rows, retried)
    assert tries[0] == 2
    assert await probe_counts(rows) == {1: 2, 2: 2}  # both transactions, each exactly once


async def test_a_serialization_failure_is_database_conflict_and_retried_whole(
    rows: Database,
) -> None:
    tries = [0]

    @retrying_write
    async def repeatable_read_bump() -> None:
        tries[0] += 1
        async with rows.session() as session:
            await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            await session.execute(text("SELECT n FROM probe WHERE id = 1"))  # the snapshot
            if tries[0] == 1:
                async with rows.session() as concurrent:
                    await _bump(concurrent, 1)
            await _bump(session, 1)

    await repeatable_read_bump()
    assert tries[0] == 2
    assert await probe_counts(rows) == {1: 2, 2: 0}

    with pytest.raises(DatabaseConflict, match=r"^serialization failure on "):
        async with rows.session() as session:
            await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            await session.execute(text("SELECT n FROM probe WHERE id = 1"))
            async with rows.session() as concurrent:
                await _bump(concurrent, 1)
            await _bump(session, 1)
    assert await probe_counts(rows) == {1: 3, 2: 0}
