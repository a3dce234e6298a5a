"""``/v1/recordings`` reads over HTTP on both backends: a real WAV uploaded and transcribed by
the real agents, its transcript read and corrected with ``If-Match``, its audio streamed by
byte range, the recordings listed, and every read and correction found in the audit trail
without a word of the transcript."""

from __future__ import annotations

import base64
import hashlib
import uuid
from pathlib import Path

import httpx
import pytest

from app.audit.events import AccessDenied, PhiAccessed, TranscriptCorrected
from app.bootstrap import Services
from app.database import Database
from tests.api.conftest import CLIENTS, bearer, run_workers_until_idle
from tests.api.test_errors import assert_problem
from tests.support.results import audit_events, audit_text, word_runs

AUDIO = Path(__file__).resolve().parents[1] / "fixtures" / "audio"
CORRECTED = "Patient reports chest pain since this morning, radiating to the left arm."
OWNER = CLIENTS["submitter"][0]


async def upload(
    client: httpx.AsyncClient,
    key: str,
    name: str = "chest_pain.wav",
    patient_id: str = "P00042",
    clinician_id: str = "C007",
) -> str:
    """Upload a fixture WAV; the new recording's id."""
    made = await client.post(
        "/v1/recordings",
        data={"patient_id": patient_id, "clinician_id": clinician_id},
        files={"file": (name, (AUDIO / name).read_bytes(), "audio/wav")},
        headers=bearer(key),
    )
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


@pytest.fixture
async def transcribed(client: httpx.AsyncClient, keys: dict[str, str], services: Services) -> str:
    """A recording uploaded by the submitter and run through the real transcription agents."""
    recording = await upload(client, keys["submitter"])
    await run_workers_until_idle(services)
    return recording


async def test_upload_read_correct_and_both_versions_stay_with_the_record_free_of_text(
    client: httpx.AsyncClient, keys: dict[str, str], transcribed: str, database: Database
) -> None:
    owner, reviewer = bearer(keys["submitter"]), bearer(keys["reviewer"])
    data = (AUDIO / "chest_pain.wav").read_bytes()

    shown = (await client.get(f"/v1/recordings/{transcribed}", headers=owner)).json()
    assert shown["id"] == shown["request_id"] == transcribed
    assert shown["status"] in ("transcribed", "verified")
    assert (shown["audio_sha256"], shown["audio_file_size"]) == (
        hashlib.sha256(data).hexdigest(),
        len(data),
    )
    assert shown["duration_seconds"] > 0 and shown["verification_results"] is not None
    assert shown["transcript"] and shown["transcript_version"] == 1
    assert not shown["transcript_withheld"]

    read = await client.get(f"/v1/recordings/{transcribed}/transcript", headers=reviewer)
    assert read.status_code == 200 and read.headers["etag"] == '"1"'
    asr = read.json()
    assert (asr["text"], asr["version"], asr["source"]) == (shown["transcript"], 1, "asr")
    assert asr["digest"] == hashlib.sha256(asr["text"].encode()).hexdigest()

    corrected = await client.put(
        f"/v1/recordings/{transcribed}/transcript",
        json={"text": CORRECTED},
        headers={**reviewer, "If-Match": read.headers["etag"]},
    )
    assert corrected.status_code == 200, corrected.text
    assert corrected.headers["etag"] == '"2"'
    saved = corrected.json()
    assert (saved["version"], saved["source"], saved["created_by"], saved["text"]) == (
        2,
        "clinician",
        CLIENTS["reviewer"][0],
        CORRECTED,
    )

    current = (await client.get(f"/v1/recordings/{transcribed}/transcript", headers=owner)).json()
    first = await client.get(
        f"/v1/recordings/{transcribed}/transcript", params={"version": 1}, headers=owner
    )
    assert current["text"] == CORRECTED and current["current_version"] == 2
    assert first.json()["text"] == asr["text"] and first.headers["etag"] == '"1"'
    versions = await client.get(f"/v1/recordings/{transcribed}/transcript/versions", headers=owner)
    assert [(v["version"], v["source"]) for v in versions.json()] == [(1, "asr"), (2, "clinician")]

    [(actor, rid, event)] = await audit_events(database, "transcript_corrected")
    assert isinstance(event, TranscriptCorrected) and str(rid) == transcribed
    assert (actor, event.version, event.previous_version, event.channel) == (
        CLIENTS["reviewer"][0],
        2,
        1,
        "http",
    )
    assert (event.old_digest, event.new_digest) == (asr["digest"], saved["digest"])
    reads = await audit_events(database, "phi_accessed")
    assert [(actor, e.version) for actor, _, e in reads] == [  # type: ignore[attr-defined]
        (OWNER, 1),  # GET /v1/recordings/{id} reads the current text
        (CLIENTS["reviewer"][0], 1),
        (OWNER, 2),
        (OWNER, 1),
    ]
    assert all(isinstance(e, PhiAccessed) and e.channel == "http" for _, _, e in reads)
    everything = await audit_text(database)
    assert not any(run in everything for run in word_runs(asr["text"]) | word_runs(CORRECTED))


async def test_stale_missing_malformed_empty_and_oversize_corrections_change_nothing(
    client: httpx.AsyncClient, keys: dict[str, str], transcribed: str, services: Services
) -> None:
    owner = bearer(keys["submitter"])
    url = f"/v1/recordings/{transcribed}/transcript"
    first = await client.put(url, json={"text": CORRECTED}, headers={**owner, "If-Match": '"1"'})
    assert first.status_code == 200
    again = await client.put(url, json={"text": CORRECTED}, headers={**owner, "If-Match": '"1"'})
    assert again.status_code == 200 and again.json()["version"] == 2  # a retry, not a change

    stale = await client.put(url, json={"text": "other words"}, headers={**owner, "If-Match": "1"})
    problem = assert_problem(stale, 412, "version_mismatch")
    assert problem["current_version"] == 2 and problem["field"] == "If-Match"
    assert stale.headers["etag"] == '"2"'
    missing = await client.put(url, json={"text": "other words"}, headers=owner)
    assert assert_problem(missing, 428, "precondition_required")["field"] == "If-Match"
    for tag in ("*", 'W/"2"', '"1", "2"', '"two"'):
        bad = await client.put(
            url, json={"text": "other words"}, headers={**owner, "If-Match": tag}
        )
        assert assert_problem(bad, 422, "invalid_request")["field"] == "If-Match", tag
    empty = await client.put(url, json={"text": "  \n"}, headers={**owner, "If-Match": '"2"'})
    assert assert_problem(empty, 422, "invalid_request")["field"] == "text"
    services.settings.transcript_max_chars = 20
    large = await client.put(url, json={"text": "x" * 21}, headers={**owner, "If-Match": '"2"'})
    assert assert_problem(large, 413, "content_too_large")["field"] == "text"

    versions = await client.get(f"{url}/versions", headers=owner)
    assert [v["version"] for v in versions.json()] == [1, 2]
    assert len(await audit_events(services.database, "transcript_corrected")) == 1


async def test_audio_streams_whole_or_by_byte_range_with_its_digest(
    client: httpx.AsyncClient, keys: dict[str, str], transcribed: str, database: Database
) -> None:
    owner = bearer(keys["submitter"])
    data = (AUDIO / "chest_pain.wav").read_bytes()
    url = f"/v1/recordings/{transcribed}/audio"
    digest = hashlib.sha256(data).digest()

    whole = await client.get(url, headers=owner)
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["content-type"] == "audio/wav"
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["etag"] == f'"{digest.hex()}"'
    assert whole.headers["digest"] == f"sha-256={base64.b64encode(digest).decode()}"

    part = await client.get(url, headers={**owner, "Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    assert part.headers["content-length"] == "100"
    tail = await client.get(url, headers={**owner, "Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == data[-10:]

    for wanted in (f"bytes={len(data)}-", "bytes=0-1,5-9", "lines=1-2"):
        outside = await client.get(url, headers={**owner, "Range": wanted})
        assert_problem(outside, 416, "range_not_satisfiable")
        assert outside.headers["content-range"] == f"bytes */{len(data)}", wanted

    reads = await audit_events(database, "phi_accessed")
    assert [e.byte_range for _, _, e in reads] == [  # type: ignore[attr-defined]
        f"0-{len(data) - 1}/{len(data)}",
        f"100-199/{len(data)}",
        f"{len(data) - 10}-{len(data) - 1}/{len(data)}",
    ]


async def test_list_filters_pages_and_shows_submitters_their_own(
    client: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    mine = [
        await upload(client, keys["submitter"], patient_id="P1"),
        await upload(client, keys["submitter"], "follow_up.wav", patient_id="P2"),
    ]
    theirs = await upload(client, keys["other"], "medication.wav", patient_id="P1")

    def ids(response: httpx.Response) -> list[str]:
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    owner = bearer(keys["submitter"])
    assert ids(await client.get("/v1/recordings", headers=owner)) == mine[::-1]
    by_patient = await client.get("/v1/recordings", params={"patient_id": "P1"}, headers=owner)
    assert ids(by_patient) == [mine[0]]
    auditor = bearer(keys["auditor"])
    listed = await client.get("/v1/recordings", params={"patient_id": "P1"}, headers=auditor)
    assert set(ids(listed)) == {mine[0], theirs}
    assert all("transcript" not in item for item in listed.json()["items"])

    page = await client.get("/v1/recordings", params={"limit": 2}, headers=auditor)
    following = await client.get(
        "/v1/recordings",
        params={"limit": 2, "cursor": page.json()["next_cursor"]},
        headers=auditor,
    )
    assert ids(page) + ids(following) == [theirs, *mine[::-1]]
    assert following.json()["next_cursor"] is None
    status = await client.get("/v1/recordings", params={"status": "uploaded"}, headers=auditor)
    assert len(ids(status)) == 3
    later = await client.get(
        "/v1/recordings", params={"created_after": "2999-01-01T00:00:00Z"}, headers=auditor
    )
    assert ids(later) == []

    bad = await client.get("/v1/recordings", params={"status": "lost"}, headers=auditor)
    assert assert_problem(bad, 422, "invalid_request")["field"] == "status"
    cursor = await client.get("/v1/recordings", params={"cursor": "nonsense"}, headers=auditor)
    assert assert_problem(cursor, 422, "invalid_request")["field"] == "cursor"


#: Every new recordings route, and the status each role gets on the submitter's recording.
#: ``other`` is a second submitter: the recording is not theirs, so it does not exist.
ROUTES = {
    ("GET", ""): {"submitter": 200, "other": 404, "reviewer": 200, "auditor": 200, "admin": 200},
    ("GET", "/transcript"): {
        "submitter": 200,
        "other": 404,
        "reviewer": 200,
        "auditor": 403,
        "admin": 200,
    },
    ("GET", "/transcript/versions"): {
        "submitter": 200,
        "other": 404,
        "reviewer": 200,
        "auditor": 200,
        "admin": 200,
    },
    ("PUT", "/transcript"): {
        "submitter": 200,
        "other": 404,
        "reviewer": 200,
        "auditor": 403,
        "admin": 200,
    },
    ("GET", "/audio"): {
        "submitter": 200,
        "other": 404,
        "reviewer": 200,
        "auditor": 403,
        "admin": 200,
    },
}


async def test_role_rules_hold_on_every_recordings_route(
    client: httpx.AsyncClient, keys: dict[str, str], transcribed: str, database: Database
) -> None:
    asr = (
        await client.get(
            f"/v1/recordings/{transcribed}/transcript", headers=bearer(keys["submitter"])
        )
    ).json()["text"]
    missing = uuid.uuid4()
    for (method, tail), expected in ROUTES.items():
        for label, status in expected.items():
            # The same text as the current version: allowed callers change nothing.
            extra = {"json": {"text": asr}} if method == "PUT" else {}
            headers = {**bearer(keys[label]), "If-Match": '"1"'}
            answer = await client.request(
                method, f"/v1/recordings/{transcribed}{tail}", headers=headers, **extra
            )
            assert answer.status_code == status, (method, tail, label, answer.text)
            if status == 404:
                absent = await client.request(
                    method, f"/v1/recordings/{missing}{tail}", headers=headers, **extra
                )
                hidden, gone = assert_problem(answer, 404, "not_found"), absent.json()
                assert hidden["detail"].replace(transcribed, "ID") == gone["detail"].replace(
                    str(missing), "ID"
                )
    listed = await client.get("/v1/recordings", headers=bearer(keys["auditor"]))
    assert [r["id"] for r in listed.json()["items"]] == [transcribed]
    shown = await client.get(f"/v1/recordings/{transcribed}", headers=bearer(keys["auditor"]))
    assert shown.json()["transcript"] is None and shown.json()["transcript_withheld"]
    assert (await client.get("/v1/recordings", headers=bearer(keys["other"]))).json()["items"] == []
    anonymous = await client.get(f"/v1/recordings/{transcribed}/transcript")
    assert_problem(anonymous, 401, "unauthorized")

    denied = [
        (actor, e.method, e.route, e.status)
        for actor, _, e in await audit_events(database, "access_denied")
        if isinstance(e, AccessDenied) and e.status != 401
    ]
    template = "/v1/recordings/{recording_id}"
    assert sorted(denied) == sorted(
        (CLIENTS[label][0], method, template + tail, status)
        for (method, tail), expected in ROUTES.items()
        for label, status in expected.items()
        if status in (403, 404)
    )
    assert len(await audit_events(database, "transcript_corrected")) == 0
