"""Querying, exporting, verifying and checkpointing real engine rows; every access audited."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import delete, func, select, text, update

from app.audit import (
    AuditAccess,
    AuditFilter,
    AuditRecord,
    read_checkpoint_file,
    read_export,
    verify_file,
)
from app.audit.events import AuditAccessed
from app.audit.exceptions import InvalidFilter
from app.cli import main
from app.database import Database
from app.database.models import AuditChain, AuditLog, Recording, Request
from tests.support.audit_rows import run_engine_requests

FAIL_ONCE = {"fail_times": {"second": 1}}


@pytest.fixture
async def request_ids(database: Database) -> list[uuid.UUID]:
    """Six completed requests (two retried a failed step); the first three are about
    patient P1, the fourth about P2 (transcription recordings)."""
    ids = await run_engine_requests(database, 6, payloads=[{}, FAIL_ONCE, {}, FAIL_ONCE])
    async with database.session() as session:
        for rid, patient in zip(ids, ("P1", "P1", "P1", "P2"), strict=False):
            session.add(
                Recording(
                    request_id=rid,
                    patient_id=patient,
                    clinician_id="C1",
                    audio_file_path=f"/audio/{rid}.wav",
                    audio_file_size=1,
                )
            )
    return ids


async def accesses(database: Database) -> list[tuple[str, AuditAccessed]]:
    """(actor, event) of every audit_accessed row, in order."""
    async with database.read_session() as session:
        rows = await session.execute(
            select(AuditLog)
            .where(AuditLog.event_type == "audit_accessed")
            .order_by(AuditLog.chain_key, AuditLog.seq)
        )
        out = []
        for row in rows.scalars():
            record = AuditRecord.from_row(
                {c.key: getattr(row, c.key) for c in AuditLog.__mapper__.columns}
            )
            assert isinstance(record.event, AuditAccessed) and record.chain_key == "system"
            out.append((record.actor, record.event))
        return out


async def count_rows(database: Database) -> int:
    async with database.read_session() as session:
        return int((await session.execute(select(func.count()).select_from(AuditLog))).scalar_one())


async def test_each_read_leaves_exactly_one_access_record(
    database: Database, request_ids: list[uuid.UUID]
) -> None:
    access = AuditAccess(database, "dr-audit")
    f = AuditFilter(event_types=("agent_failed",))
    page = await access.query(f, limit=10, fmt="csv")
    assert len(page.items) == 2 and all(r.event_type == "agent_failed" for r in page.items)
    assert await accesses(database) == [
        (
            "dr-audit",
            AuditAccessed(
                action="query",
                filters={"event_types": ["agent_failed"], "limit": 10},
                row_count=2,
                format="csv",
            ),
        )
    ]

    trail = await access.trail(request_ids[0], fmt="table")
    out = io.StringIO()
    exported = await access.export(AuditFilter(request_id=request_ids[1]), out, "jsonl")
    report = await access.verify()
    checkpoint = await access.checkpoint()
    await access.denied("export", {"patient_id": "P1"}, "csv")
    events = [e for _, e in await accesses(database)]
    assert [(e.action, e.row_count, e.format, e.denied) for e in events[1:]] == [
        ("trail", len(trail), "table", False),
        ("export", exported, "jsonl", False),
        ("verify", report.rows, None, False),
        ("checkpoint", len(checkpoint.heads), None, False),
        ("export", 0, "csv", True),
    ]
    assert events[1].filters == {"request_id": str(request_ids[0])}
    assert events[2].filters == {"request_id": str(request_ids[1])}
    assert events[4].filters == {"checkpoint": checkpoint.digest}
    assert exported == len(out.getvalue().splitlines()) > 0
    assert report.ok, report.problems


async def test_filters_select_what_they_say(
    database: Database, request_ids: list[uuid.UUID]
) -> None:
    access = AuditAccess(database, "dr-audit")

    async def everything(**raw: Any) -> list[AuditRecord]:
        out = io.StringIO()
        await access.export(AuditFilter.parse(**raw), out, "jsonl")
        return list(read_export_text(out.getvalue()))

    by_request = await everything(request_id=str(request_ids[1]))
    assert {r.request_id for r in by_request} == {request_ids[1]}
    # Rows written together share occurred_at; (occurred_at, id) orders them by id.
    assert sorted(r.seq for r in by_request) == list(range(1, len(by_request) + 1))
    by_patient = await everything(patient_id="P1")
    assert {r.request_id for r in by_patient} == set(request_ids[:3])
    assert await everything(patient_id="nobody") == []
    warnings = await everything(severity="warning")
    assert {r.event_type for r in warnings} == {"agent_failed"}
    agent = await everything(agent_id="test.second", event_types=("agent_succeeded",))
    assert len(agent) == 6 and all(r.agent_id == "test.second" for r in agent)
    mine = await everything(actor="svc-1")
    assert {r.request_id for r in mine} == {request_ids[1], request_ids[4]}
    cut = sorted(r.occurred_at for r in await everything())[len(by_request)]
    assert all(r.occurred_at < cut for r in await everything(until=cut.isoformat()))
    assert all(r.occurred_at >= cut for r in await everything(since=cut.isoformat()))


def read_export_text(text_: str) -> list[AuditRecord]:
    from app.audit.export import read_jsonl

    return list(read_jsonl(text_.splitlines()))


async def test_keyset_pages_cover_everything_once_in_both_directions(
    database: Database, request_ids: list[uuid.UUID]
) -> None:
    access = AuditAccess(database, "dr-audit")
    for newest_first in (False, True):
        total = await count_rows(database)
        seen: list[AuditRecord] = []
        cursor = None
        while True:
            page = await access.query(
                AuditFilter(), cursor=cursor, limit=7, newest_first=newest_first
            )
            seen += page.items
            cursor = page.next_cursor
            if cursor is None:
                break
        keys = [(r.occurred_at, r.id.hex) for r in seen]
        assert len(set(keys)) == len(keys)
        assert keys == sorted(keys, reverse=newest_first)
        # Each page appends its access record: oldest-first paging reaches those too,
        # newest-first paging starts before them.
        assert len(keys) > total if not newest_first else len(keys) == total
    page = await access.query(AuditFilter(), limit=2)
    assert page.next_cursor
    with pytest.raises(InvalidFilter, match="cursor: was issued for different filters"):
        await access.query(AuditFilter(actor="x"), cursor=page.next_cursor)


async def test_fhir_export_of_a_real_trail_validates(
    database: Database, request_ids: list[uuid.UUID]
) -> None:
    out = io.StringIO()
    count = await AuditAccess(database, "dr-audit").export(AuditFilter(), out, "fhir")
    bundle = Bundle.model_validate_json(out.getvalue())
    assert len(bundle.entry or []) == count > 50


async def test_verify_and_export_report_their_progress(
    database: Database, request_ids: list[uuid.UUID], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("app.audit.access.PROGRESS_EVERY", 10)
    access = AuditAccess(database, "dr-audit")
    verified: list[tuple[int, int | None]] = []
    report = await access.verify(progress=lambda done, total: verified.append((done, total)))
    assert report.ok and verified
    # The expected total comes from the chain heads, before any row is read.
    assert verified[-1] == (report.rows, report.rows)
    exported: list[tuple[int, int | None]] = []
    count = await access.export(
        AuditFilter(), io.StringIO(), "jsonl", progress=lambda n, t: exported.append((n, t))
    )
    assert count > 20, "too few rows to see export progress"
    assert exported[-1] == (count, None)
    assert [n for n, _ in exported] == sorted({n for n, _ in exported})
    fhir: list[tuple[int, int | None]] = []
    sent = await access.export(
        AuditFilter(), io.StringIO(), "fhir", progress=lambda n, t: fhir.append((n, t))
    )
    assert fhir == [(n, None) for n in range(10, sent + 1, 10)]


async def test_plain_verify_holds_chains_to_the_newest_stored_checkpoint(
    database: Database, request_ids: list[uuid.UUID], tmp_path: Path
) -> None:
    access = AuditAccess(database, "dr-audit")
    checkpoint = await access.checkpoint(hmac_key="k1")
    assert checkpoint.signature and checkpoint.computed_digest() == checkpoint.digest
    (tmp_path / "cp.json").write_text(checkpoint.to_file())
    assert read_checkpoint_file(tmp_path / "cp.json") == checkpoint
    report = await access.verify(hmac_key="k1")
    assert report.ok and "checkpoint #1 signature OK" in report.notes
    assert report.checkpoint is not None and report.checkpoint["seq"] == 1
    assert report.checkpoint["digest"] == checkpoint.digest

    # A DBA truncates one chain by two rows and moves its head back to match: consistent
    # on its own, but not with the stored checkpoint, which plain verify uses.
    victim = request_ids[2]
    async with database.engine.begin() as connection:
        if database.dialect == "sqlite":
            await connection.execute(text("DROP TRIGGER audit_logs_refuse_delete"))
        else:
            await connection.execute(
                text("DROP TRIGGER audit_logs_refuse_update_delete ON audit_logs")
            )
    async with database.session() as session:
        rows = list(
            (
                await session.execute(
                    select(AuditLog)
                    .where(AuditLog.chain_key == str(victim))
                    .order_by(AuditLog.seq.desc())
                    .limit(3)
                )
            ).scalars()
        )
        await session.execute(delete(AuditLog).where(AuditLog.id.in_([r.id for r in rows[:2]])))
        await session.execute(
            update(Request)
            .where(Request.id == victim)
            .values(audit_seq=rows[2].seq, audit_head=rows[2].hash)
        )
    report = await access.verify()
    [problem] = report.problems
    assert problem.chain_key == str(victim) and problem.kind == "deleted"
    assert f"(seq {rows[0].seq}) is gone" in problem.detail
    assert not (await access.verify(checkpoint=checkpoint.digest, hmac_key="wrong")).ok


async def test_an_export_file_verifies_offline_and_round_trips(
    database: Database, request_ids: list[uuid.UUID], tmp_path: Path
) -> None:
    access = AuditAccess(database, "dr-audit")
    checkpoint = await access.checkpoint()
    for fmt in ("jsonl", "csv"):
        path = tmp_path / f"all.{fmt}"
        with path.open("w", encoding="utf-8", newline="") as out:
            await access.export(AuditFilter(), out, fmt)
        async with database.read_session() as session:
            stored = {row.id: row for row in (await session.execute(select(AuditLog))).scalars()}
        back = list(read_export(path))
        assert len(back) <= len(stored)  # access records after the export are not in it
        for record in back:
            row = stored[record.id]
            assert record.hash == row.hash and record.event_data == row.event_data
            assert record.occurred_at == row.occurred_at and record.hash_ok
        report = verify_file(path, checkpoint)
        assert report.ok, report.problems
        assert report.rows == len(back)

    # Offline CLI: the database URL points nowhere, and a cut row is still found.
    lines = (tmp_path / "all.jsonl").read_text().splitlines()
    victim = json.loads(lines[len(lines) // 2])
    (tmp_path / "cut.jsonl").write_text(
        "\n".join(line for line in lines if victim["id"] not in line)
    )
    (tmp_path / "cp.json").write_text(checkpoint.to_file())
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": "sqlite:///nonexistent/dir/x.db"}
    for name, expected in (("all.jsonl", 0), ("cut.jsonl", 1)):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "app.cli",
                "audit",
                "verify",
                "--json",
                "--file",
                str(tmp_path / name),
                "--checkpoint",
                str(tmp_path / "cp.json"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            stdin=subprocess.DEVNULL,
        )
        assert result.returncode == expected, result.stderr
    problems = json.loads(result.stdout)["problems"]
    assert problems and all(p["chain_key"] == victim["chain_key"] for p in problems)


async def test_sql_views_join_requests_and_patients(
    database: Database, request_ids: list[uuid.UUID]
) -> None:
    await AuditAccess(database, "dr-audit").trail(request_ids[0])
    async with database.read_session() as session:
        rows = (
            await session.execute(
                text(
                    "SELECT request_kind, request_state, request_submitted_by, patient_id, "
                    "count(*) FROM audit_events_v WHERE patient_id = 'P1' "
                    "GROUP BY request_kind, request_state, request_submitted_by, patient_id"
                )
            )
        ).all()
        assert {tuple(r[:4]) for r in rows} == {
            ("test", "completed", f"svc-{i}", "P1") for i in range(3)
        }
        heads = (
            await session.execute(
                text("SELECT chain_key, chain_kind, seq FROM audit_chain_heads_v")
            )
        ).all()
        assert {h[0] for h in heads} >= {str(r) for r in request_ids} | {"system"}
        access = (
            await session.execute(
                text("SELECT actor, action, row_count, denied FROM audit_access_v")
            )
        ).all()
        assert [tuple(a) for a in access] == [("dr-audit", "trail", access[0][2], False)]
        system = await session.get(AuditChain, "system")
        assert system is not None and system.seq == 1


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["query", "--event-type", "nope"], "--event-type"),
        (["query", "--since", "last tuesday"], "--since"),
        (["query", "--request-id", "42"], "--request-id"),
        (["query", "--severity", "fatal"], "--severity"),
        (["export", "--until", "2026-13-01"], "--until"),
        (["export", "--format", "xml"], "--format"),
        (["trail", "not-a-uuid"], "REQUEST_ID"),
        (["verify", "--request-id", "nope"], "--request-id"),
        (["verify", "--request-id", "00000000-0000-4000-8000-000000000000"], "--request-id"),
        (["trail", "00000000-0000-4000-8000-000000000000"], "REQUEST_ID"),
        (["query", "--as", " "], "--as"),
        (["export", "--output", "/nonexistent/folder/a.jsonl"], "--output"),
    ],
)
async def test_bad_cli_filters_name_the_option_exit_2_and_change_nothing(
    database: Database,
    subprocess_env: dict[str, str],
    args: list[str],
    option: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = await count_rows(database)
    url = subprocess_env["DATABASE_URL"]

    def invoke() -> int:
        try:
            main(["audit", *args, "--database-url", url])
        except SystemExit as exc:
            return int(exc.code or 0)
        return 0

    # In-process (in a thread: the CLI runs its own event loop); the test below runs the
    # real process for one bad filter.
    assert await asyncio.to_thread(invoke) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: {option}:"), line
    assert await count_rows(database) == before


async def test_a_bad_filter_in_a_real_process_is_one_line_and_exit_2(
    database: Database, subprocess_env: dict[str, str]
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "audit", "query", "--event-type", "agent_exploded"],
        capture_output=True,
        text=True,
        timeout=60,
        env=subprocess_env,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("error: --event-type: unknown event type 'agent_exploded'")
    assert len(result.stderr.strip().splitlines()) == 1
    assert await count_rows(database) == 0


async def test_cli_query_trail_checkpoint_and_verify(
    database: Database,
    request_ids: list[uuid.UUID],
    subprocess_env: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = subprocess_env["DATABASE_URL"]

    async def cli(*args: str) -> tuple[int, str, str]:
        def invoke() -> int:
            try:
                main(["audit", *args, "--as", "dr-cli", "--database-url", url])
            except SystemExit as exc:
                return int(exc.code or 0)
            return 0

        code = await asyncio.to_thread(invoke)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    code, out, err = await cli("query", "--limit", "3", "--format", "jsonl", "--newest-first")
    assert code == 0 and len(out.splitlines()) == 3 and "next page: --cursor " in err
    code, out, _ = await cli("trail", str(request_ids[0]))
    # A table (fitted to the 80 columns a non-terminal gets) titled with the request.
    assert code == 0 and str(request_ids[0]) in out and "occurred at (UTC)" in out
    # The checkpoint as a real process: its digest is the only thing on standard output.
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.cli",
            "audit",
            "checkpoint",
            "--as",
            "dr-cli",
            "--output",
            str(tmp_path / "cp.json"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=subprocess_env,
        stdin=subprocess.DEVNULL,
    )
    assert made.returncode == 0, made.stderr
    digest = made.stdout.strip()
    assert len(digest) == 64 and read_checkpoint_file(tmp_path / "cp.json").digest == digest
    code, out, _ = await cli("verify", "--checkpoint", digest)
    assert code == 0 and "OK:" in out
    assert [(a, e.action) for a, e in await accesses(database)] == [
        ("dr-cli", "query"),
        ("dr-cli", "trail"),
        ("dr-cli", "checkpoint"),
        ("dr-cli", "verify"),
    ]
