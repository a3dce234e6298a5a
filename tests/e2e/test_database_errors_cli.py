"""A permanent database problem, through the real ``ledgerflow`` command: one line, exit 3.

Each case is a real misconfiguration (a PostgreSQL database or role that does not exist, a
database without tables, a SQLite path with no file); each command (`requests list`,
`submit`, `worker`, `serve`) must answer at once with one line naming the problem and the
fix, retry nothing, and leave no file behind. `serve` and `worker` also refuse a database
behind the head migration, and still retry a refused connection before giving up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy.engine import URL, make_url

from app.agents.research import sample_research_payloads
from app.database import Database
from tests.conftest import DatabaseUrlFactory
from tests.databases import postgres_url

pytestmark = pytest.mark.slow

COMMANDS = {
    "requests list": ["requests", "list"],
    "submit": ["submit", "research", "-"],
    "worker": ["worker"],
    "serve": ["serve", "--port", "0"],
}
PAYLOAD = json.dumps(sample_research_payloads()["type2_diabetes_adults"])


def ledgerflow(url: URL | str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the real command with ``DATABASE_URL`` set and JSON logs on standard error."""
    raw = url.render_as_string(hide_password=False) if isinstance(url, URL) else url
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        input=PAYLOAD,
        env={**os.environ, "DATABASE_URL": raw, "LOG_FORMAT": "json", "COLUMNS": "300"},
    )


def assert_one_line(result: subprocess.CompletedProcess[str], expected: str) -> None:
    """Exit 3, nothing on stdout, exactly one line on stderr: ``error: <expected>``."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 3, result.stderr
    assert lines == [f"error: {expected}"], result.stderr
    assert "database_retry" not in result.stderr and result.stdout == ""


@pytest.fixture
def postgresql(backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("a PostgreSQL misconfiguration")


@pytest.mark.parametrize("command", COMMANDS)
async def test_a_missing_database_is_one_line_and_leaves_nothing_behind(
    command: str, backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "postgresql":
        request.getfixturevalue("postgres_factory")
        name = f"lf_missing_{uuid.uuid4().hex[:8]}"
        url = postgres_url(name)
        expected = (
            f'DATABASE_URL: database "{name}" does not exist on 127.0.0.1:5432; '
            f"create it (createdb {name}), then run: ledgerflow db init"
        )
    else:
        path = tmp_path / "data" / "ledgerflow.db"
        url = make_url(f"sqlite+aiosqlite:///{path}")
        expected = f"DATABASE_URL: no database at {path}; run: ledgerflow db init"
    assert_one_line(ledgerflow(url, *COMMANDS[command]), expected)
    assert list(tmp_path.iterdir()) == []  # no file, no folder


@pytest.mark.parametrize("command", COMMANDS)
async def test_a_database_without_tables_says_run_db_init(
    command: str, backend: str, database_url_factory: DatabaseUrlFactory
) -> None:
    url = await database_url_factory(migrated=False)
    if backend == "sqlite":
        Path(str(url.database)).touch()
    where = str(url.database) if backend == "sqlite" else f"127.0.0.1:5432/{url.database}"
    result = ledgerflow(url, *COMMANDS[command])
    if command in ("worker", "serve"):
        expected = f"DATABASE_URL: no tables in {where}; run: ledgerflow db init"
    else:
        detail = (
            "no such table: requests"
            if backend == "sqlite"
            else 'relation "requests" does not exist'
        )
        expected = f"DATABASE_URL: tables missing in {where} ({detail}); run: ledgerflow db init"
    assert_one_line(result, expected)


@pytest.mark.usefixtures("postgresql")
@pytest.mark.parametrize("command", ["requests list", "worker"])
async def test_an_unknown_role_is_one_line_without_the_password(
    command: str, database_url: URL
) -> None:
    role = f"lf_nobody_{uuid.uuid4().hex[:6]}"
    url = database_url.set(username=role, password="s3cret-pw")
    result = ledgerflow(url, *COMMANDS[command])
    assert_one_line(
        result,
        f"DATABASE_URL: 127.0.0.1:5432/{url.database} refused the login "
        f'(role "{role}" does not exist); check the user and password in DATABASE_URL',
    )
    assert "s3cret-pw" not in result.stderr


@pytest.mark.parametrize("command", ["worker", "serve"])
async def test_serve_and_worker_refuse_a_database_behind_the_head(
    command: str, database: Database
) -> None:
    from sqlalchemy import text

    async with database.session() as session:
        await session.execute(text("UPDATE alembic_version SET version_num = '0003'"))
    result = ledgerflow(database.url, *COMMANDS[command])
    assert result.returncode == 3, result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith("; run: ledgerflow db upgrade")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.usefixtures("postgresql")
async def test_a_refused_connection_at_start_is_retried_then_reported() -> None:
    result = ledgerflow("postgresql://postgres@127.0.0.1:1/ledgerflow", "worker")
    assert result.returncode == 3
    *retries, last = result.stderr.strip().splitlines()
    assert [json.loads(line)["event"] for line in retries] == ["database_retry"] * 4
    assert last == (
        "error: DATABASE_URL: cannot connect to 127.0.0.1:1/ledgerflow "
        "([Errno 111] Connect call failed ('127.0.0.1', 1)) — is PostgreSQL running?"
    )
