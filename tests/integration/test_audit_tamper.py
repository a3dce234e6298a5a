"""A database administrator who drops the triggers still cannot tamper unseen.

The test acts as that administrator: it drops the append-only triggers with raw SQL (as
migration 0002's downgrade does), then changes one byte of one row, deletes a row in the
middle of a chain, deletes the last row of another, and swaps two rows of a third. The
``ledgerflow audit verify`` command, run as a real process, must name each with the right
row ids and exit non-zero; before the tampering, it says OK and exits 0.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from typing import Any

import pytest
from sqlalchemy import delete, select, text, update

from app.audit import AuditAccess, Report
from app.cli import main
from app.database import Database
from app.database.models import AuditLog
from tests.support.audit_rows import run_engine_requests

_DROP_TRIGGERS = {
    "sqlite": [
        "DROP TRIGGER audit_logs_refuse_update",
        "DROP TRIGGER audit_logs_refuse_delete",
    ],
    "postgresql": [
        "DROP TRIGGER audit_logs_refuse_truncate ON audit_logs",
        "DROP TRIGGER audit_logs_refuse_update_delete ON audit_logs",
    ],
}


def _verify(env: dict[str, str], *args: str) -> tuple[int, dict[str, Any], str]:
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "audit", "verify", "--as", "dba-test", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert "Traceback" not in result.stderr, result.stderr
    report = json.loads(result.stdout) if "--json" in args else {}
    return result.returncode, report, result.stdout


async def _chain(database: Database, request_id: uuid.UUID) -> list[AuditLog]:
    async with database.read_session() as session:
        return list(
            (
                await session.execute(
                    select(AuditLog)
                    .where(AuditLog.chain_key == str(request_id))
                    .order_by(AuditLog.seq)
                )
            ).scalars()
        )


def kinds(report: Report) -> list[tuple[str, uuid.UUID | None]]:
    return [(p.kind, p.row_id) for p in report.problems]


def _problems(report: dict[str, Any], request_id: uuid.UUID) -> list[tuple[str, str | None]]:
    return sorted(
        (p["kind"], p["row_id"]) for p in report["problems"] if p["chain_key"] == str(request_id)
    )


async def test_verify_names_every_tampered_row_and_exits_non_zero(
    database: Database, subprocess_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    ids = await run_engine_requests(database, 5, kind="test")
    code, report, out = _verify(subprocess_env)
    assert code == 0 and "OK:" in out

    edited, middle, tail, swapped, untouched = ids
    async with database.engine.begin() as connection:
        for statement in _DROP_TRIGGERS[database.dialect]:
            await connection.execute(text(statement))

    # One byte of one row's event_data.
    target = (await _chain(database, edited))[3]
    data = dict(target.event_data)
    key = next(k for k, v in sorted(data.items()) if isinstance(v, str) and v)
    data[key] = data[key][:-1] + ("X" if data[key][-1] != "X" else "Y")
    # A row in the middle, the last row, and a swap of two seqs (through a free seq, because
    # (chain_key, seq) is unique).
    gone = (await _chain(database, middle))[4]
    after_gone = (await _chain(database, middle))[5]
    last = (await _chain(database, tail))[-1]
    before_last = (await _chain(database, tail))[-2]
    chain = await _chain(database, swapped)
    a, b = chain[2], chain[6]
    async with database.session() as session:
        await session.execute(
            update(AuditLog).where(AuditLog.id == target.id).values(event_data=data)
        )
        await session.execute(delete(AuditLog).where(AuditLog.id == gone.id))
        await session.execute(delete(AuditLog).where(AuditLog.id == last.id))
        await session.execute(update(AuditLog).where(AuditLog.id == a.id).values(seq=-1))
        await session.execute(update(AuditLog).where(AuditLog.id == b.id).values(seq=a.seq))
        await session.execute(update(AuditLog).where(AuditLog.id == a.id).values(seq=b.seq))

    code, report, _ = _verify(subprocess_env, "--json")
    assert code == 1 and report["ok"] is False
    assert _problems(report, edited) == [("modified", str(target.id))]
    assert _problems(report, middle) == [("deleted", str(after_gone.id))]
    [deleted] = [p for p in report["problems"] if p["chain_key"] == str(middle)]
    assert f"seq {gone.seq} missing" in deleted["detail"]
    [cut] = [p for p in report["problems"] if p["chain_key"] == str(tail)]
    assert cut["kind"] == "deleted" and cut["related"] == [str(before_last.id)]
    assert f"seq {last.seq} missing at the end" in cut["detail"]
    assert _problems(report, swapped) == sorted(
        [("reordered", str(a.id)), ("reordered", str(b.id))]
    )
    assert _problems(report, untouched) == []
    assert len(report["problems"]) == 5

    # The human report names the rows too (in-process: the process runs were proven above),
    # and one request can be verified alone.
    def text_report() -> int:
        try:
            main(["audit", "verify", "--database-url", subprocess_env["DATABASE_URL"]])
        except SystemExit as exc:
            return int(exc.code or 0)
        return 0

    assert await asyncio.to_thread(text_report) == 1
    out = capsys.readouterr().out
    assert f"MODIFIED: {edited}: row {target.id} (seq {target.seq})" in out
    assert f"DELETED: {middle}: row {after_gone.id} (seq {after_gone.seq})" in out
    assert f"REORDERED: {swapped}: row {a.id} (seq {b.seq})" in out
    assert "FAILED: 5 problem(s)" in out
    access = AuditAccess(database, "dba-test")
    assert kinds(await access.verify(edited)) == [("modified", target.id)]
    assert (await access.verify(untouched)).ok
