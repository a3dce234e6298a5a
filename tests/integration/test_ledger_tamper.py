"""Nothing vanishes or changes unnoticed: each attack of a superuser, found by plain verify.

Every test builds a real ledger (:func:`tests.support.ledger.build_ledger`: completions,
retries, escalations, approvals, cancels, a retention purge, legal holds, checkpoints),
switches the guards off the way a superuser would (SQLite: triggers dropped, foreign keys
off; PostgreSQL: ``session_replication_role = replica``), makes one change, and runs
``ledgerflow audit verify`` as a process: exit 1 with the request, row and column named.
The untouched ledger verifies with exit 0.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select, update

from app.audit import AuditAccess, AuditFilter
from app.audit.chain import row_hash
from app.database import Database
from app.database.models import AuditCheckpoint, AuditLog, Request, StateTransition
from tests.support.ledger import Ledger, build_ledger, found, guards_off, run_verify


@pytest.fixture
async def ledger(database: Database, tmp_path: Path) -> Ledger:
    return await build_ledger(database, tmp_path)


async def _transition(database: Database, request_id: uuid.UUID, to_state: str) -> Any:
    async with database.read_session() as session:
        return (
            (
                await session.execute(
                    select(StateTransition).where(
                        StateTransition.request_id == request_id,
                        StateTransition.to_state == to_state,
                    )
                )
            )
            .scalars()
            .first()
        )


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


async def test_an_untouched_ledger_verifies_with_exit_0(
    database: Database, ledger: Ledger, subprocess_env: dict[str, str]
) -> None:
    code, report, _ = run_verify(subprocess_env)
    assert code == 0, report["problems"]
    assert report["ok"] and report["chains"] >= len(ledger.ids()) + 1
    assert report["checkpoint"]["seq"] == 2  # held to the newest stored checkpoint
    async with database.read_session() as session:
        states = dict((await session.execute(select(Request.id, Request.state))).all())
    assert {states[i] for i in ledger.ids()} >= {
        "completed",
        "failed",
        "cancelled",
        "pending",
        "awaiting_approval",
    }


async def test_an_updated_transition_row_is_named_with_its_column(
    database: Database, ledger: Ledger, subprocess_env: dict[str, str]
) -> None:
    victim = ledger.completed[1]
    row = await _transition(database, victim, "completed")
    async with guards_off(database) as connection:
        await connection.execute(
            update(StateTransition).where(StateTransition.id == row.id).values(to_state="failed")
        )
    code, report, _ = run_verify(subprocess_env)
    assert code == 1
    assert found(report) == [
        ("transition_mismatch", str(victim), "state_transitions", str(row.id), "to_state")
    ]


async def test_a_deleted_transition_row_is_named_by_its_event(
    database: Database, ledger: Ledger, subprocess_env: dict[str, str]
) -> None:
    victim = ledger.retried
    assert victim is not None
    row = await _transition(database, victim, "running")
    async with guards_off(database) as connection:
        await connection.execute(
            delete(StateTransition).where(
                StateTransition.request_id == victim, StateTransition.to_state == "running"
            )
        )
    code, report, _ = run_verify(subprocess_env)
    assert code == 1
    problems = found(report)
    assert problems and {p[:3] for p in problems} == {
        ("transition_mismatch", str(victim), "audit_logs")
    }
    assert all("has no state_transitions row (deleted)" in p["detail"] for p in report["problems"])
    assert row.id  # the row existed before


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("state", "failed"),
        ("payload", {"numbers": [9, 9]}),
        ("result", {"first": {"step": "first", "total": 1000, "attempt": 1, "pid": 1}}),
        ("payload_digest", "0" * 64),
    ],
)
async def test_a_changed_request_column_is_a_ledger_mismatch(
    database: Database,
    ledger: Ledger,
    subprocess_env: dict[str, str],
    column: str,
    value: Any,
) -> None:
    victim = ledger.completed[2]
    async with guards_off(database) as connection:
        changed = update(Request).where(Request.id == victim).values({column: value})
        await connection.execute(changed)
    code, report, _ = run_verify(subprocess_env)
    assert code == 1
    assert ("ledger_mismatch", str(victim), "requests", str(victim), column) in found(report)
    assert {p[1] for p in found(report)} == {str(victim)}


async def test_an_emptied_payload_without_a_recorded_purge_is_named(
    database: Database, ledger: Ledger, subprocess_env: dict[str, str]
) -> None:
    victim = ledger.completed[1]
    async with guards_off(database) as connection:
        await connection.execute(
            update(Request)
            .where(Request.id == victim)
            .values(payload={}, result=None, purged_at=func.now())
        )
    code, report, _ = run_verify(subprocess_env)
    assert code == 1
    assert found(report) == [("ledger_mismatch", str(victim), "requests", str(victim), "payload")]
    assert "no data_purged event" in report["problems"][0]["detail"]


async def test_a_cut_tail_with_its_head_rewound_is_caught_by_the_stored_checkpoint(
    database: Database, ledger: Ledger, subprocess_env: dict[str, str]
) -> None:
    victim = ledger.completed[0]
    rows = await _chain(database, victim)
    keep = rows[-3]
    async with guards_off(database) as connection:
        await connection.execute(delete(AuditLog).where(AuditLog.id.in_([r.id for r in rows[-2:]])))
        await connection.execute(
            update(Request)
            .where(Request.id == victim)
            .values(audit_seq=keep.seq, audit_head=keep.hash)
        )
    code, report, _ = run_verify(subprocess_env)
    assert code == 1
    kinds = {(p["kind"], p["chain_key"]) for p in report["problems"]}
    assert ("deleted", str(victim)) in kinds
    assert any(f"(seq {rows[-1].seq}) is gone" in p["detail"] for p in report["problems"])


async def test_a_row_changed_with_every_later_hash_recomputed_is_caught(
    database: Database, ledger: Ledger, subprocess_env: dict[str, str]
) -> None:
    victim = ledger.completed[1]
    rows = await _chain(database, victim)
    target = next(r for r in rows if r.event_type == "agent_succeeded")
    columns = [c.key for c in AuditLog.__table__.columns]
    rewritten = []
    prev = None
    for row in rows:
        values = {c: getattr(row, c) for c in columns}
        if row.id == target.id:
            values["event_data"] = {**values["event_data"], "duration_ms": 1}
        if prev is not None and row.seq > target.seq:
            values["prev_hash"] = prev
        if row.seq >= target.seq:
            values["hash"] = row_hash(values)
            rewritten.append(values)
        prev = values["hash"]
    async with guards_off(database) as connection:
        for values in rewritten:
            await connection.execute(
                update(AuditLog)
                .where(AuditLog.id == values["id"])
                .values(
                    event_data=values["event_data"],
                    prev_hash=values["prev_hash"],
                    hash=values["hash"],
                )
            )
        await connection.execute(
            update(Request).where(Request.id == victim).values(audit_head=rewritten[-1]["hash"])
        )
    code, report, _ = run_verify(subprocess_env)
    assert code == 1
    problems = [p for p in report["problems"] if p["chain_key"] == str(victim)]
    assert problems and problems[0]["kind"] == "checkpoint_mismatch"
    assert problems[0]["row_id"] == str(rows[-1].id)


@pytest.mark.parametrize("which", ["first", "newest"])
async def test_a_deleted_checkpoint_row_is_named(
    database: Database, ledger: Ledger, subprocess_env: dict[str, str], which: str
) -> None:
    seq = 1 if which == "first" else 2
    async with guards_off(database) as connection:
        await connection.execute(delete(AuditCheckpoint).where(AuditCheckpoint.seq == seq))
    code, report, _ = run_verify(subprocess_env)
    assert code == 1
    kinds = [p["kind"] for p in report["problems"]]
    assert "checkpoint_deleted" in kinds and set(kinds) <= {
        "checkpoint_deleted",
        "checkpoint_mismatch",
    }
    assert {p["table"] for p in report["problems"]} == {"audit_checkpoints"}
    gone = "checkpoint #1 missing before checkpoint #2" if seq == 1 else "no audit_checkpoints row"
    assert any(gone in p["detail"] for p in report["problems"])


async def test_an_edited_checkpoint_row_is_named(
    database: Database, ledger: Ledger, subprocess_env: dict[str, str]
) -> None:
    async with database.read_session() as session:
        first = (
            await session.execute(select(AuditCheckpoint).where(AuditCheckpoint.seq == 1))
        ).scalar_one()
    async with guards_off(database) as connection:
        await connection.execute(
            update(AuditCheckpoint).where(AuditCheckpoint.seq == 1).values(created_by="somebody")
        )
    code, report, _ = run_verify(subprocess_env)
    assert code == 1
    assert found(report) == [
        ("checkpoint_mismatch", "checkpoints", "audit_checkpoints", str(first.id), None)
    ]
    assert "(edited)" in report["problems"][0]["detail"]


async def test_an_unsigned_checkpoint_file_is_refused_while_a_key_is_set(
    database: Database, ledger: Ledger, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    checkpoint = await AuditAccess(database, "dr-audit").checkpoint(hmac_key=None)
    path = tmp_path / "cp.json"
    path.write_text(checkpoint.to_file())
    keyed = {**subprocess_env, "AUDIT_HMAC_KEY": "a-secret"}
    code, report, _ = run_verify(keyed, "--checkpoint", str(path))
    assert code == 1
    assert {p["kind"] for p in report["problems"]} == {"checkpoint_unsigned"}
    code, report, _ = run_verify(keyed, "--checkpoint", str(path), "--allow-unsigned")
    assert code == 0, report["problems"]
    assert any("--allow-unsigned" in note for note in report["notes"])
    # Signed with the key, it passes without the flag.
    signed = await AuditAccess(database, "dr-audit").checkpoint(hmac_key="a-secret")
    path.write_text(signed.to_file())
    code, report, _ = run_verify(keyed, "--checkpoint", str(path))
    assert code == 0, report["problems"]
    assert f"checkpoint #{signed.seq} signature OK" in report["notes"]


async def test_an_offline_export_missing_a_checkpointed_chain_fails_unless_partial(
    database: Database, ledger: Ledger, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    access = AuditAccess(database, "dr-audit")
    checkpoint = await access.checkpoint()
    (tmp_path / "cp.json").write_text(checkpoint.to_file())
    export = tmp_path / "all.jsonl"
    with export.open("w", encoding="utf-8") as out:
        await access.export(AuditFilter(), out, "jsonl")
    assert run_verify({}, "--file", str(export), "--checkpoint", str(tmp_path / "cp.json"))[0] == 0
    victim = str(ledger.completed[2])
    lines = export.read_text().splitlines()
    kept = [line for line in lines if json.loads(line)["chain_key"] != victim]
    (tmp_path / "cut.jsonl").write_text("\n".join(kept) + "\n")
    offline = {"DATABASE_URL": "sqlite:///nonexistent/dir/x.db"}
    code, report, _ = run_verify(
        offline, "--file", str(tmp_path / "cut.jsonl"), "--checkpoint", str(tmp_path / "cp.json")
    )
    assert code == 1
    assert (victim, "chain_missing") in {(p["chain_key"], p["kind"]) for p in report["problems"]}
    code, report, _ = run_verify(
        offline,
        "--file",
        str(tmp_path / "cut.jsonl"),
        "--checkpoint",
        str(tmp_path / "cp.json"),
        "--partial",
    )
    assert code == 0, report["problems"]
    assert any("not checked (--partial)" in n and victim in n for n in report["notes"])
