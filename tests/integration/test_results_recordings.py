"""The recordings service (``app.results.recordings``) on real databases with real agents:
reading and correcting transcripts, versions kept, audio ranges, role rules, retention."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import DBAPIError

from app.audit.events import AccessDenied, PhiAccessed, TranscriptCorrected
from app.auth import Origin
from app.database import Database
from app.database.exceptions import DatabaseError
from app.database.models import Recording, Request, TranscriptVersion
from app.database.types import utcnow
from app.ops.retention import purge
from app.orchestrator.exceptions import InvalidRequest, NotFound
from app.results import (
    Forbidden,
    Gone,
    NotReady,
    RangeNotSatisfiable,
    TextTooLarge,
    VersionMismatch,
    VersionRequired,
)
from tests.support.checks import assert_ledger_consistent
from tests.support.results import (
    ADMIN_VIEWER,
    AUDIO,
    AUDITOR_VIEWER,
    OTHER_VIEWER,
    OWNER,
    OWNER_VIEWER,
    REVIEWER_VIEWER,
    Results,
    audit_events,
    audit_text,
    make_results,
    results_settings,
    word_runs,
)

CORRECTED = "patient reports chest pain radiating to the left arm since this morning"


@pytest.fixture
async def results(database: Database, tmp_path: Path) -> Results:
    made = make_results(database, results_settings(tmp_path, transcript_max_chars=500))
    yield made  # type: ignore[misc]  # an async generator fixture
    await assert_ledger_consistent(database)


async def _versions(database: Database, recording_id: uuid.UUID) -> list[tuple[int, str]]:
    async with database.read_session() as session:
        rows = await session.execute(
            select(TranscriptVersion.version, TranscriptVersion.source)
            .where(TranscriptVersion.recording_id == recording_id)
            .order_by(TranscriptVersion.version)
        )
        return [(v, s) for v, s in rows]


async def test_transcript_is_read_with_its_version_and_every_read_is_recorded_without_text(
    results: Results,
) -> None:
    recording_id = await results.transcribed()
    recordings = results.services.recordings

    shown = await recordings.get(OWNER_VIEWER, recording_id)
    assert shown.id == shown.request_id == recording_id
    assert shown.status == "verified" and shown.request_state == "completed"
    assert shown.transcript and shown.transcript_version == 1
    assert shown.audio_sha256 and shown.audio_file_size == (AUDIO / "chest_pain.wav").stat().st_size
    assert shown.confidence is not None and shown.verification_results is not None
    read = await recordings.transcript(REVIEWER_VIEWER, recording_id)
    assert (read.text, read.version, read.source, read.current_version) == (
        shown.transcript,
        1,
        "asr",
        1,
    )
    assert read.digest == shown.transcript_digest

    reads = await audit_events(results.database, "phi_accessed")
    assert [(actor, rid) for actor, rid, _ in reads] == [
        (OWNER, recording_id),
        ("dr-review", recording_id),
    ]
    assert all(
        isinstance(e, PhiAccessed) and (e.resource, e.version) == ("transcript", 1)
        for _, _, e in reads
    )
    everything = await audit_text(results.database)
    assert not any(run in everything for run in word_runs(read.text))


async def test_a_correction_is_a_new_version_and_the_recognisers_text_stays(
    results: Results,
) -> None:
    recording_id = await results.transcribed()
    recordings = results.services.recordings
    original = await recordings.transcript(OWNER_VIEWER, recording_id)

    saved, created = await recordings.correct(REVIEWER_VIEWER, recording_id, CORRECTED, 1)
    assert created and (saved.version, saved.source, saved.created_by) == (
        2,
        "clinician",
        "dr-review",
    )
    assert saved.text == CORRECTED and saved.current_version == 2

    assert await _versions(results.database, recording_id) == [(1, "asr"), (2, "clinician")]
    first = await recordings.transcript(OWNER_VIEWER, recording_id, version=1)
    assert first.text == original.text and first.current_version == 2
    assert (await recordings.get(OWNER_VIEWER, recording_id)).transcript == CORRECTED
    listed = await recordings.versions(AUDITOR_VIEWER, recording_id)
    assert [(v.version, v.source, v.purged) for v in listed] == [
        (1, "asr", False),
        (2, "clinician", False),
    ]

    [(actor, rid, event)] = await audit_events(results.database, "transcript_corrected")
    assert isinstance(event, TranscriptCorrected)
    assert (actor, rid, event.version, event.previous_version) == ("dr-review", recording_id, 2, 1)
    assert (event.old_digest, event.new_digest) == (original.digest, saved.digest)
    everything = await audit_text(results.database)
    assert not any(run in everything for run in word_runs(CORRECTED) | word_runs(original.text))


async def test_stale_missing_empty_and_oversize_corrections_change_nothing(
    results: Results,
) -> None:
    recording_id = await results.transcribed()
    recordings = results.services.recordings
    await recordings.correct(OWNER_VIEWER, recording_id, CORRECTED, 1)

    with pytest.raises(VersionMismatch) as stale:
        await recordings.correct(REVIEWER_VIEWER, recording_id, "another text entirely", 1)
    assert stale.value.current == 2 and "version 2" in stale.value.message
    with pytest.raises(VersionRequired):
        await recordings.correct(REVIEWER_VIEWER, recording_id, "another text", None)
    with pytest.raises(InvalidRequest) as empty:
        await recordings.correct(REVIEWER_VIEWER, recording_id, "   \n", 2)
    assert empty.value.field == "text"
    with pytest.raises(TextTooLarge):
        await recordings.correct(REVIEWER_VIEWER, recording_id, "word " * 101, 2)

    assert await _versions(results.database, recording_id) == [(1, "asr"), (2, "clinician")]
    assert len(await audit_events(results.database, "transcript_corrected")) == 1

    # A retry of the call that made version 2 (same author, same text) answers it again.
    again, created = await recordings.correct(OWNER_VIEWER, recording_id, CORRECTED, 1)
    assert (again.version, created) == (2, False)
    assert await _versions(results.database, recording_id) == [(1, "asr"), (2, "clinician")]


async def test_the_database_refuses_to_change_or_delete_a_version(results: Results) -> None:
    recording_id = await results.transcribed()
    where = TranscriptVersion.recording_id == recording_id
    for statement in (
        update(TranscriptVersion).where(where).values(text="rewritten history"),
        update(TranscriptVersion).where(where).values(digest="0" * 64),
        delete(TranscriptVersion).where(where),
    ):
        with pytest.raises((DBAPIError, DatabaseError)):
            async with results.database.session() as session:
                await session.execute(statement)
    async with results.database.session() as session:
        # Clearing the text is what retention does; that alone is allowed.
        await session.execute(update(TranscriptVersion).where(where).values(text=None))
        count = (await session.execute(select(func.count()).where(where))).scalar_one()
    assert count == 1


async def test_another_submitters_recording_is_answered_like_a_missing_one_and_recorded(
    results: Results,
) -> None:
    recording_id = await results.transcribed()
    recordings = results.services.recordings
    missing = uuid.uuid4()
    origin = Origin("GET", "/v1/recordings/{recording_id}", f"/v1/recordings/{recording_id}")

    with pytest.raises(NotFound) as hidden:
        await recordings.get(OTHER_VIEWER.at(origin), recording_id)
    with pytest.raises(NotFound) as absent:
        await recordings.get(OTHER_VIEWER, missing)
    assert hidden.value.message == f"no recording {recording_id}"
    assert absent.value.message == f"no recording {missing}"
    for call in (
        recordings.transcript(OTHER_VIEWER, recording_id),
        recordings.correct(OTHER_VIEWER, recording_id, CORRECTED, 1),
        recordings.open_audio(OTHER_VIEWER, recording_id),
    ):
        with pytest.raises(NotFound):
            await call

    denied = await audit_events(results.database, "access_denied")
    assert len(denied) == 4  # the missing id is not a denial
    actor, request_id, first = denied[0]
    assert isinstance(first, AccessDenied)
    assert (actor, request_id, first.status, first.route) == (
        "svc-other",
        recording_id,
        404,
        "/v1/recordings/{recording_id}",
    )
    assert [e.route for _, _, e in denied[1:]] == [  # type: ignore[attr-defined]
        "recordings.transcript",
        "recordings.correct",
        "recordings.audio",
    ]
    assert await audit_events(results.database, "phi_accessed", "transcript_corrected") == []
    assert (await recordings.list(OTHER_VIEWER)).items == []


async def test_auditors_see_metadata_but_never_text_or_audio(results: Results) -> None:
    recording_id = await results.transcribed()
    recordings = results.services.recordings

    shown = await recordings.get(AUDITOR_VIEWER, recording_id)
    assert shown.transcript is None and shown.transcript_withheld
    assert shown.transcript_version == 1 and shown.transcript_digest
    assert [r.id for r in (await recordings.list(AUDITOR_VIEWER)).items] == [recording_id]
    with pytest.raises(Forbidden):
        await recordings.transcript(AUDITOR_VIEWER, recording_id)
    with pytest.raises(Forbidden):
        await recordings.open_audio(AUDITOR_VIEWER, recording_id)
    with pytest.raises(Forbidden):
        await recordings.correct(AUDITOR_VIEWER, recording_id, CORRECTED, 1)

    assert await audit_events(results.database, "phi_accessed") == []
    denied = [e for _, _, e in await audit_events(results.database, "access_denied")]
    assert [(e.status, e.role) for e in denied] == [(403, "auditor")] * 3  # type: ignore[attr-defined]
    # The admin reads everything.
    assert (await recordings.transcript(ADMIN_VIEWER, recording_id)).text


async def test_audio_is_read_whole_or_by_range_and_each_read_is_recorded(
    results: Results,
) -> None:
    recording_id = await results.submit_recording()
    data = (AUDIO / "chest_pain.wav").read_bytes()
    recordings = results.services.recordings

    whole = await recordings.open_audio(OWNER_VIEWER, recording_id)
    assert not whole.range.partial and await whole.read_all() == data
    head = await recordings.open_audio(REVIEWER_VIEWER, recording_id, "bytes=0-99")
    assert head.range.content_range() == f"bytes 0-99/{len(data)}"
    assert await head.read_all() == data[:100]
    tail = await recordings.open_audio(OWNER_VIEWER, recording_id, "bytes=-10")
    assert await tail.read_all() == data[-10:]
    for bad in (f"bytes={len(data)}-", "bytes=5-2", "bytes=0-1,5-9", "items=0-5"):
        with pytest.raises(RangeNotSatisfiable) as refused:
            await recordings.open_audio(OWNER_VIEWER, recording_id, bad)
        assert refused.value.size == len(data)

    reads = [e for _, _, e in await audit_events(results.database, "phi_accessed")]
    assert [e.byte_range for e in reads] == [  # type: ignore[attr-defined]
        f"0-{len(data) - 1}/{len(data)}",
        f"0-99/{len(data)}",
        f"{len(data) - 10}-{len(data) - 1}/{len(data)}",
    ]


async def test_no_transcript_yet_is_not_ready(results: Results) -> None:
    recording_id = await results.submit_recording()
    recordings = results.services.recordings
    with pytest.raises(NotReady) as early:
        await recordings.transcript(OWNER_VIEWER, recording_id)
    assert "status uploaded" in early.value.message
    with pytest.raises(NotReady):
        await recordings.correct(OWNER_VIEWER, recording_id, CORRECTED, 0)
    assert (await recordings.get(OWNER_VIEWER, recording_id)).transcript is None


async def test_purged_transcript_and_audio_answer_gone_saying_when_and_why(
    results: Results, database: Database
) -> None:
    recording_id = await results.transcribed()
    await results.services.recordings.correct(OWNER_VIEWER, recording_id, CORRECTED, 1)
    async with database.session() as session:
        await session.execute(
            update(Request)
            .where(Request.id == recording_id)
            .values(completed_at=utcnow() - timedelta(days=400))
        )
    report = await purge(database, results.services.settings, actor="ops:retention")
    assert report.count("payload") == 1 and report.count("audio") == 1
    recordings = results.services.recordings

    with pytest.raises(Gone) as text_gone:
        await recordings.transcript(OWNER_VIEWER, recording_id, version=1)
    assert text_gone.value.purged_at is not None
    assert "kept 365 days" in text_gone.value.message and "ops:retention" in text_gone.value.message
    with pytest.raises(Gone) as audio_gone:
        await recordings.open_audio(OWNER_VIEWER, recording_id)
    assert "kept 90 days" in audio_gone.value.message
    shown = await recordings.get(OWNER_VIEWER, recording_id)
    assert shown.transcript is None and shown.transcript_purged_at is not None
    assert [v.purged for v in await recordings.versions(OWNER_VIEWER, recording_id)] == [True] * 2
    async with database.read_session() as session:
        texts = (
            await session.execute(
                select(TranscriptVersion.text).where(TranscriptVersion.recording_id == recording_id)
            )
        ).scalars()
        assert list(texts) == [None, None]


async def test_list_pages_by_keyset_filters_and_shows_submitters_only_their_own(
    results: Results,
) -> None:
    mine = [await results.submit_recording(patient_id=f"P{i}") for i in range(5)]
    theirs = await results.submit_recording(patient_id="P0", by="svc-other")
    recordings = results.services.recordings

    seen: list[uuid.UUID] = []
    cursor = None
    while True:
        page = await recordings.list(REVIEWER_VIEWER, limit=2, cursor=cursor)
        seen += [r.id for r in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [theirs, *reversed(mine)]

    by_patient = await recordings.list(REVIEWER_VIEWER, patient_id="P0")
    assert {r.id for r in by_patient.items} == {mine[0], theirs}
    own = await recordings.list(OWNER_VIEWER, patient_id="P0")
    assert [r.id for r in own.items] == [mine[0]]
    assert [r.status for r in (await recordings.list(OWNER_VIEWER, status="uploaded")).items] == [
        "uploaded"
    ] * 5
    for bad in ({"status": "lost"}, {"limit": 0}, {"cursor": "not-a-cursor"}):
        with pytest.raises(InvalidRequest) as refused:
            await recordings.list(OWNER_VIEWER, **bad)  # type: ignore[arg-type]
        assert refused.value.field == next(iter(bad))


async def test_a_recordings_id_is_its_requests_id(results: Results, database: Database) -> None:
    recording_id = await results.submit_recording()
    async with database.read_session() as session:
        row = (await session.execute(select(Recording))).scalar_one()
        assert row.id == row.request_id == recording_id
        assert (
            await session.execute(text("SELECT transcript_version FROM recordings"))
        ).scalar_one() == 0
