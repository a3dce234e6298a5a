"""Bad input to ``audit verify`` and ``audit checkpoint``: one line naming it, exit 2, nothing
written (not even an access record)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.audit import AuditAccess, AuditFilter
from app.database import Database
from app.database.models import AuditCheckpoint, AuditLog
from tests.support.audit_rows import run_engine_requests


async def _counts(database: Database) -> tuple[int, int]:
    async with database.read_session() as session:
        logs = (await session.execute(select(func.count()).select_from(AuditLog))).scalar_one()
        cps = (
            await session.execute(select(func.count()).select_from(AuditCheckpoint))
        ).scalar_one()
    return int(logs), int(cps)


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "audit", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
async def files(database: Database, tmp_path: Path) -> dict[str, Path]:
    await run_engine_requests(database, 2)
    access = AuditAccess(database, "dr-audit")
    good = await access.checkpoint()
    fhir = tmp_path / "fhir.ndjson"
    with fhir.open("w", encoding="utf-8") as out:
        await access.export(AuditFilter(), out, "fhir-ndjson")
    short = json.loads(good.to_file())
    short["digest"] = short["digest"][:40]
    made = {
        "not_json": tmp_path / "not-json.json",
        "short_digest": tmp_path / "short.json",
        "fhir": fhir,
        "text": tmp_path / "notes.txt",
        "good": tmp_path / "cp.json",
    }
    made["not_json"].write_text("this is not JSON {")
    made["short_digest"].write_text(json.dumps(short))
    made["text"].write_text("hello\n")
    made["good"].write_text(good.to_file())
    return made


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("verify", "--checkpoint", "{not_json}"), "is not JSON"),
        (("verify", "--checkpoint", "{short_digest}"), "digest: String should match pattern"),
        (("verify", "--checkpoint", "{missing}"), "cannot read"),
        (("verify", "--file", "{fhir}", "--checkpoint", "{good}"), "not an audit row"),
        (("verify", "--file", "{text}"), "not an audit export"),
        (("verify", "--partial"), "--partial: only with --file"),
        (("verify", "--checkpoint", "{good}", "--file", "{missing}"), "is not a file"),
        (("checkpoint", "-o", "{nowhere}"), "--output: no folder"),
    ],
)
async def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    database: Database,
    files: dict[str, Path],
    subprocess_env: dict[str, str],
    tmp_path: Path,
    args: tuple[str, ...],
    message: str,
) -> None:
    names = {**{k: str(v) for k, v in files.items()}, "missing": str(tmp_path / "nope.json")}
    names["nowhere"] = str(tmp_path / "no" / "such" / "cp.json")
    before = await _counts(database)
    result = _cli(subprocess_env, *(a.format(**names) for a in args))
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], lines
    assert "Traceback" not in result.stderr
    assert await _counts(database) == before
