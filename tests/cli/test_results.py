"""``ledgerflow recordings list|show|transcript|correct`` and ``requests delivery`` on both
backends, with recordings transcribed and research delivered by the real agents: output
that fits, reads and corrections recorded like the API's (channel ``cli``, no text in the
audit trail), one-line errors with exit 2, and every delivered file checked."""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from app.agents.research import seed_warehouse
from app.audit.events import DataAccessed, PhiAccessed, TranscriptCorrected
from app.auth import Principal, Role
from app.bootstrap import Services
from app.config import get_settings
from app.database import Database
from app.database.models import Request
from app.database.types import utcnow
from app.ops.retention import purge
from tests.cli.conftest import Run, research, run_until_idle, typed
from tests.cli.test_tables import UUID, assert_fits, flat
from tests.support.results import audit_events, audit_text, word_runs

AUDIO = Path(__file__).resolve().parents[1] / "fixtures" / "audio"
CORRECTED = "Patient reports chest pain since this morning, radiating to the left arm."
ADMIN = Principal("ops-admin", Role.ADMIN)


@pytest.fixture(autouse=True)
def folders(services: Services, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The command's settings name the test's audio and delivery folders."""
    monkeypatch.setenv("AUDIO_DIR", str(services.settings.audio_path))
    monkeypatch.setenv("DELIVERY_DIR", str(services.settings.deliveries_path))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def transcribed(
    services: Services, name: str = "chest_pain.wav", patient: str = "P1"
) -> uuid.UUID:
    """A fixture WAV submitted by ``svc-cli`` and run through the real transcription agents."""
    folder = services.settings.audio_path
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(AUDIO / name, folder / name)
    view = await services.orchestrator.submit(
        "transcription",
        {"patient_id": patient, "clinician_id": "C007", "audio_file_path": name},
        "svc-cli",
    )
    await run_until_idle(services)
    return view.id


async def test_list_and_show_print_metadata_only_and_record_no_read(
    run: Run, url: str, services: Services, database: Database
) -> None:
    first = await transcribed(services, patient="P1")
    second = await transcribed(services, "follow_up.wav", patient="P2")

    listed = await run("recordings", "list", "--database-url", url)
    assert listed.code == 0, listed.err
    assert_fits(listed.out)
    assert not UUID.search(listed.out.split("─\n", 1)[-1])
    shown_ids = [row.split()[0] for row in listed.out.split("─\n", 1)[1].splitlines()]
    order = [
        i for i, text in enumerate(shown_ids) for r in (second, first) if str(r).startswith(text)
    ]
    assert len(order) == 2 and str(second).startswith(shown_ids[order[0]])
    page = json.loads((await run("recordings", "list", "--json", "--database-url", url)).out)
    assert [r["id"] for r in page["items"]] == [str(second), str(first)]
    only = await run("recordings", "list", "--patient-id", "P1", "--json", "--database-url", url)
    assert [r["id"] for r in json.loads(only.out)["items"]] == [str(first)]
    wide = await run("recordings", "list", "--wide", "--database-url", url)
    assert str(first) in wide.out and "audio SHA-256" in wide.out

    shown = await run("recordings", "show", typed(first), "--database-url", url)
    assert shown.code == 0, shown.err
    assert_fits(shown.out)
    sha = hashlib.sha256((AUDIO / "chest_pain.wav").read_bytes()).hexdigest()
    story = flat(shown.out)
    assert f"recording {first} request {first}" in story and f"audio SHA-256 {sha}" in story
    assert "transcript version 1" in story and "1 asr transcription.transcribe" in story
    data = json.loads(
        (await run("recordings", "show", str(first), "--json", "--database-url", url)).out
    )
    assert data["audio_sha256"] == sha and [v["version"] for v in data["versions"]] == [1]
    assert "transcript" not in data
    assert await audit_events(database, "phi_accessed") == []


async def test_transcript_read_and_correction_are_recorded_like_the_apis(
    run: Run, url: str, services: Services, database: Database, tmp_path: Path
) -> None:
    recording = await transcribed(services)
    prefix = typed(recording)
    asr = (await services.recordings.transcript(ADMIN, recording)).text

    read = await run("recordings", "transcript", prefix, "--as", "dr-cli", "--database-url", url)
    assert read.code == 0, read.err
    assert read.out == asr + "\n"
    assert f"recording {recording}: transcript version 1 of 1 (asr" in read.err

    saved = await run(
        "recordings", "correct", prefix, "--version", "1", "--text", CORRECTED,
        "--as", "dr-cli", "--database-url", url,
    )  # fmt: skip
    assert saved.code == 0, saved.err
    assert saved.out == f"recording {recording}: saved as version 2 (corrected from version 1)\n"
    again = await run(
        "recordings", "correct", prefix, "--version", "1", "--text", CORRECTED,
        "--as", "dr-cli", "--json", "--database-url", url,
    )  # fmt: skip
    assert json.loads(again.out)["version"] == 2 and json.loads(again.out)["created"] is False

    current = await run("recordings", "transcript", prefix, "--json", "--database-url", url)
    original = await run(
        "recordings", "transcript", prefix, "--version", "1", "--database-url", url
    )
    assert json.loads(current.out)["text"] == CORRECTED and original.out == asr + "\n"

    [(actor, _, corrected)] = await audit_events(database, "transcript_corrected")
    assert isinstance(corrected, TranscriptCorrected)
    assert (actor, corrected.version, corrected.channel) == ("dr-cli", 2, "cli")
    reads = await audit_events(database, "phi_accessed")
    assert len(reads) == 4  # services' own read above, then three by the command
    assert all(isinstance(e, PhiAccessed) and e.channel == "cli" for _, _, e in reads[1:])
    assert reads[1][0] == "dr-cli" and reads[2][0].startswith("cli")
    everything = await audit_text(database)
    assert not any(run_ in everything for run_ in word_runs(asr) | word_runs(CORRECTED))

    from_file = tmp_path / "corrected.txt"
    from_file.write_text(CORRECTED + " Follow up in a week.", encoding="utf-8")
    third = await run(
        "recordings", "correct", prefix, "--version", "2", "--file", str(from_file),
        "--database-url", url,
    )  # fmt: skip
    assert third.code == 0 and "saved as version 3" in third.out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--version", "1", "--text", "other words"], "--version: the transcript of recording"),
        (["--version", "2"], "give the corrected transcript with --text TEXT or --file FILE"),
        (["--version", "2", "--text", "a", "--file", "b"], "give the corrected transcript"),
        (["--version", "2", "--text", "   "], "text: must not be empty"),
        (["--version", "2", "--file", "/nonexistent/t.txt"], "--file: cannot read"),
    ],
    ids=["stale", "no-text", "both", "empty", "unreadable"],
)
async def test_refused_corrections_are_one_line_exit_2_and_change_nothing(
    run: Run, url: str, services: Services, database: Database, args: list[str], message: str
) -> None:
    recording = await transcribed(services)
    await services.recordings.correct(ADMIN, recording, CORRECTED, 1)
    refused = await run("recordings", "correct", typed(recording), *args, "--database-url", url)
    assert (refused.code, refused.out) == (2, "")
    assert refused.err.startswith(f"error: {message}") and refused.err.count("\n") == 1
    assert "Traceback" not in refused.err
    versions = await services.recordings.versions(ADMIN, recording)
    assert [v.version for v in versions] == [1, 2]
    assert len(await audit_events(database, "transcript_corrected")) == 1


async def test_unknown_recordings_and_early_transcripts_are_one_line(
    run: Run, url: str, services: Services
) -> None:
    missing = await run("recordings", "show", "abcdef12", "--database-url", url)
    assert (missing.code, missing.err) == (2, "error: no recording id starts with abcdef12\n")
    whole = uuid.uuid4()
    absent = await run("recordings", "transcript", str(whole), "--database-url", url)
    assert (absent.code, absent.err) == (2, f"error: no recording {whole}\n")
    status = await run("recordings", "list", "--status", "lost", "--database-url", url)
    assert status.code == 2 and status.err.startswith("error: --status: 'lost' is not one of")
    folder = services.settings.audio_path
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(AUDIO / "chest_pain.wav", folder / "early.wav")
    early = await services.orchestrator.submit(
        "transcription",
        {"patient_id": "P1", "clinician_id": "C1", "audio_file_path": "early.wav"},
        "svc-cli",
    )
    none_yet = await run("recordings", "transcript", str(early.id), "--database-url", url)
    assert none_yet.code == 2 and "has no transcript yet (status uploaded)" in none_yet.err


@pytest.fixture
async def delivered(services: Services, database: Database) -> uuid.UUID:
    """A research request approved and delivered by the real agents."""
    await seed_warehouse(database, 300, seed=42)
    view = await services.orchestrator.submit("research", research(), "svc-cli")
    await run_until_idle(services)
    [gate] = [a for a in await services.orchestrator.approvals() if a.request_id == view.id]
    await services.orchestrator.decide_approval(gate.id, "dr-review", "approve")
    await run_until_idle(services)
    assert (await services.orchestrator.get(view.id)).state == "completed"
    return view.id


async def test_delivery_writes_every_file_checked_against_the_manifest(
    run: Run, url: str, services: Services, database: Database, delivered: uuid.UUID, tmp_path: Path
) -> None:
    out = tmp_path / "out" / "here"
    done = await run(
        "requests", "delivery", typed(delivered), "-o", str(out), "--as", "analyst",
        "--database-url", url,
    )  # fmt: skip
    assert done.code == 0, done.err
    manifest = await services.deliveries.manifest(ADMIN, delivered)
    assert done.out.startswith(f"delivery of request {delivered}: {len(manifest.files) + 1} files")
    for listed in manifest.files:
        assert hashlib.sha256((out / listed.name).read_bytes()).hexdigest() == listed.sha256
    assert hashlib.sha256((out / "manifest.json").read_bytes()).hexdigest() == (
        manifest.manifest_sha256
    )
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*(f.name for f in manifest.files), "manifest.json"]
    )
    reads = await audit_events(database, "data_accessed")
    assert [actor for actor, _, _ in reads] == ["analyst"] * (len(manifest.files) + 1)
    assert all(isinstance(e, DataAccessed) and e.channel == "cli" for _, _, e in reads)

    as_json = await run(
        "requests", "delivery", str(delivered), "-o", str(tmp_path / "again"), "--json",
        "--database-url", url,
    )  # fmt: skip
    data = json.loads(as_json.out)
    assert data["manifest"]["manifest_sha256"] == manifest.manifest_sha256
    assert {f["name"]: f["sha256"] for f in data["files"]} == {
        **{f.name: f.sha256 for f in manifest.files},
        "manifest.json": manifest.manifest_sha256,
    }


async def test_a_file_that_does_not_match_its_manifest_is_not_kept(
    run: Run, url: str, services: Services, delivered: uuid.UUID, tmp_path: Path
) -> None:
    manifest = await services.deliveries.manifest(ADMIN, delivered)
    first = next(f for f in manifest.files if f.name != "data_dictionary.csv")
    stored = services.settings.deliveries_path / str(delivered) / first.name
    data = bytearray(stored.read_bytes())
    data[-2] = ord("0") if data[-2] != ord("0") else ord("1")  # same size, other bytes
    stored.write_bytes(bytes(data))
    out = tmp_path / "out"
    refused = await run(
        "requests", "delivery", str(delivered), "-o", str(out), "--database-url", url
    )
    assert (refused.code, refused.out) == (2, "")
    assert refused.err.startswith(f"error: {first.name}: received {first.bytes} bytes with SHA-256")
    assert "nothing of it was kept" in refused.err
    assert not (out / first.name).exists() and not list(out.glob(".*.part"))


async def test_delivery_refusals_are_one_line(
    run: Run,
    url: str,
    services: Services,
    database: Database,
    delivered: uuid.UUID,
    tmp_path: Path,
) -> None:
    transcription = await transcribed(services)
    none = await run("requests", "delivery", str(transcription), "--database-url", url)
    assert none.code == 2 and "has no delivery (research requests deliver files" in none.err
    a_file = tmp_path / "file.txt"
    a_file.write_text("x", encoding="utf-8")
    not_folder = await run(
        "requests", "delivery", str(delivered), "-o", str(a_file), "--database-url", url
    )
    assert (not_folder.code, not_folder.err) == (
        2,
        f"error: -o: {a_file} is a file, not a folder\n",
    )

    async with database.session() as session:
        await session.execute(
            update(Request)
            .where(Request.id == delivered)
            .values(completed_at=utcnow() - timedelta(days=200))
        )
    await purge(database, services.settings, actor="ops:retention", categories=["delivery"])
    gone = await run(
        "requests", "delivery", str(delivered), "-o", str(tmp_path / "o"), "--database-url", url
    )
    assert gone.code == 2 and gone.err.count("\n") == 1
    assert "was purged at" in gone.err and "kept 180 days" in gone.err
    assert await audit_events(database, "data_accessed") == []
