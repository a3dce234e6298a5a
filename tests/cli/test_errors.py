"""One-line errors, exit 2, and nothing written: missing files, bad JSON, bad payloads, bad
options and mistyped command lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.config import get_settings
from app.database import Database
from app.database.models import AuditCheckpoint, AuditLog, Request
from tests.cli.conftest import Run, research

BOX = set("╭╮╰╯│─")


async def _nothing_written(database: Database) -> None:
    async with database.read_session() as session:
        assert (await session.execute(select(func.count()).select_from(Request))).scalar() == 0
        assert (await session.execute(select(func.count()).select_from(AuditLog))).scalar() == 0


async def test_submit_errors_are_one_line_and_write_nothing(
    run: Run, url: str, database: Database, tmp_path: Path
) -> None:
    missing = await run("submit", "research", str(tmp_path / "nope.json"), "--database-url", url)
    assert (missing.code, missing.out) == (2, "")
    assert missing.err == (
        f"error: PAYLOAD_FILE: cannot read {tmp_path / 'nope.json'} (No such file or directory)\n"
    )

    broken = tmp_path / "broken.json"
    broken.write_text('{"researcher": ', encoding="utf-8")
    not_json = await run("submit", "research", str(broken), "--database-url", url)
    assert not_json.code == 2 and not_json.err.startswith(f"error: PAYLOAD_FILE: {broken} is not")

    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(research(age_range={"min": 80, "max": 30}, data_elements=["labs"])),
        encoding="utf-8",
    )
    invalid = await run("submit", "research", str(bad), "--database-url", url)
    assert invalid.code == 2
    assert invalid.err == (
        "error: payload.age_range: min 80 is above max 30; payload.data_elements.0: 'labs' is "
        "not one of: demographics, conditions, encounters, observations\n"
    )
    kind = await run("submit", "reserch", str(bad), "--database-url", url)
    assert kind.err == "error: kind: unknown kind 'reserch' (known: research, transcription)\n"
    priority = await run("submit", "research", str(bad), "--priority", "500", "--database-url", url)
    assert priority.err == "error: priority: must be at most 100\n"
    await _nothing_written(database)


async def test_submit_refuses_an_audio_path_outside_audio_dir_in_one_line(
    run: Run, url: str, database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    audio = tmp_path / "audio"
    (audio / "inside").mkdir(parents=True)
    (audio / "inside" / "out").symlink_to(tmp_path)
    monkeypatch.setenv("AUDIO_DIR", str(audio))
    get_settings.cache_clear()
    try:
        for raw in ("../secret.wav", "/etc/passwd", "inside/out/secret.wav"):
            payload = tmp_path / "payload.json"
            payload.write_text(
                json.dumps({"patient_id": "P1", "clinician_id": "C1", "audio_file_path": raw}),
                encoding="utf-8",
            )
            refused = await run("submit", "transcription", str(payload), "--database-url", url)
            assert (refused.code, refused.out) == (2, "")
            assert refused.err == "error: payload.audio_file_path: lies outside AUDIO_DIR\n"
        await _nothing_written(database)
        payload.write_text(
            json.dumps({"patient_id": "P1", "clinician_id": "C1", "audio_file_path": "a.wav"}),
            encoding="utf-8",
        )
        accepted = await run("submit", "transcription", str(payload), "--database-url", url)
        assert accepted.code == 0, accepted.err
    finally:
        get_settings.cache_clear()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["requests", "show"], "error: Missing argument 'REQUEST_ID'."),
        (["requests", "list", "--bogus"], "error: No such option: --bogus"),
        (["requests", "list", "--limit", "0"], "error: Invalid value for '--limit'"),
        (["requests", "frobnicate"], "error: No such command 'frobnicate'."),
    ],
)
async def test_a_mistyped_command_line_is_one_error_line_and_its_usage(
    run: Run, args: list[str], message: str
) -> None:
    result = await run(*args)
    assert result.code == 2 and result.out == ""
    lines = result.err.splitlines()
    assert len(lines) == 2 and lines[0].startswith(message), result.err
    assert lines[1].startswith("usage: ledgerflow requests") and "--help" in lines[1]
    assert not BOX & set(result.err), result.err


async def test_bad_option_values_and_unwritable_files_are_one_line(
    run: Run, url: str, database: Database, tmp_path: Path
) -> None:
    since = await run("requests", "list", "--since", "yesterday", "--database-url", url)
    assert since.code == 2 and since.err.startswith("error: --since: 'yesterday' is not an ISO")
    role = await run("clients", "create", "svc-x", "--role", "wizard", "--database-url", url)
    assert role.code == 2 and role.err.count("\n") == 2  # the database line, then the error
    assert role.err.splitlines()[1].startswith("error: ")
    out = tmp_path / "no" / "such" / "dir" / "trail.jsonl"
    export = await run("audit", "export", "-o", str(out), "--database-url", url)
    assert (export.code, export.err) == (
        2,
        f"error: --output: no folder {out.parent} to write trail.jsonl in\n",
    )
    checkpoint = await run("audit", "checkpoint", "-o", str(out), "--database-url", url)
    assert checkpoint.code == 2 and checkpoint.err.startswith("error: --output: no folder")
    status = await run("approvals", "list", "--status", "bogus", "--database-url", url)
    assert status.err == (
        "error: --status: 'bogus' is not one of pending, approved, rejected, cancelled, all\n"
    )
    decision = await run("approvals", "decide", "abcdef12", "maybe", "--database-url", url)
    assert decision.err == "error: DECISION: must be 'approve' or 'reject'\n"
    url_error = await run("requests", "list", "--database-url", "mysql://x/y")
    assert url_error.code == 2 and url_error.err.startswith("error: DATABASE_URL: unsupported")
    for result in (since, role, export, checkpoint, status, decision, url_error):
        assert not BOX & set(result.err) and result.out == ""
    async with database.read_session() as session:
        # The refused checkpoint was refused before it was recorded (and audited).
        assert (await session.execute(select(func.count(AuditCheckpoint.id)))).scalar() == 0


async def test_a_group_without_a_command_shows_its_help(run: Run) -> None:
    for args in ([], ["requests"]):
        result = await run(*args)
        assert result.err.startswith(f"Usage: ledgerflow {' '.join(args)}".rstrip() + " [OPTIONS]")
        assert "error" not in result.err and "Commands:" in result.err
