"""scripts/init_database.py as ops run it: a subprocess with a real database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from app.database import Database, get_db_session
from app.database import schema as db_schema
from app.database.models import Request
from tests.conftest import DatabaseUrlFactory

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "init_database.py"


def _init(url: URL | str, *args: str) -> subprocess.CompletedProcess[str]:
    raw = url.render_as_string(hide_password=False) if isinstance(url, URL) else url
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--database-url", raw, *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "200"},
    )


async def test_fresh_database_gets_every_table_and_second_run_is_a_no_op(
    database_url_factory: DatabaseUrlFactory,
) -> None:
    url = await database_url_factory(migrated=False)
    first = _init(url)
    assert first.returncode == 0, first.stderr
    for table in ("requests", "audit_logs", "recordings", "patients", "api_clients"):
        assert table in first.stdout
    assert f"revision: {db_schema.head_revision()} (at head)" in first.stdout

    second = _init(url)
    assert second.returncode == 0, second.stderr
    assert f"revision: {db_schema.head_revision()} (at head)" in second.stdout
    assert "Running upgrade" not in second.stdout + second.stderr


async def test_drop_without_yes_refuses_and_keeps_the_tables(database_url: URL) -> None:
    result = _init(database_url, "--drop")
    assert result.returncode != 0
    assert "--yes" in result.stderr
    assert "Traceback" not in result.stderr
    assert _init(database_url).returncode == 0


async def test_drop_refuses_a_database_with_requests_unless_forced(database_url: URL) -> None:
    database = Database.from_url(database_url)
    async with database.session() as session:
        session.add(
            Request(
                kind="research", state="pending", submitted_by="s", payload_digest="0", payload={}
            )
        )
    await database.dispose()

    refused = _init(database_url, "--drop", "--yes")
    assert refused.returncode != 0
    assert "holds 1 requests" in refused.stderr and "--force" in refused.stderr

    forced = _init(database_url, "--drop", "--yes", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "requests: 0" in forced.stdout


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("postgresql://postgres@127.0.0.1:1/ledgerflow", "cannot connect to 127.0.0.1:1"),
        ("postgresql://no_such_role@127.0.0.1:5432/test", "refused the login"),
        ("mysql://root@127.0.0.1/test", "unsupported driver 'mysql'"),
    ],
)
def test_bad_database_gives_one_clean_line_and_nonzero_exit(url: str, fragment: str) -> None:
    result = _init(url)
    assert result.returncode != 0
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


async def test_get_db_session_is_importable_from_the_package() -> None:
    # The README points people at app.database.get_db_session; keep that path stable.
    assert callable(get_db_session)
