"""``POST /v1/recordings``: a WAV streamed to the audio folder, hashed, and submitted."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from app.bootstrap import Services
from app.database import Database
from app.database.models import Recording
from tests.api.conftest import bearer, research_body
from tests.api.test_errors import assert_problem

AUDIO = Path(__file__).resolve().parents[1] / "fixtures" / "audio" / "chest_pain.wav"
FORM = {"patient_id": "P00042", "clinician_id": "C007"}


async def test_upload_stores_the_file_and_creates_the_transcription(
    client: httpx.AsyncClient, keys: dict[str, str], services: Services, database: Database
) -> None:
    data = AUDIO.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    headers = {**bearer(keys["submitter"]), "Idempotency-Key": "dictation-1"}
    files = {"file": ("note.wav", data, "audio/wav")}
    response = await client.post("/v1/recordings", data=FORM, files=files, headers=headers)
    assert response.status_code == 201, response.text
    request = response.json()
    assert request["kind"] == "transcription" and request["state"] == "pending"
    assert request["payload"]["audio_sha256"] == sha
    stored = services.settings.audio_path / request["payload"]["audio_file_path"]
    assert stored.read_bytes() == data
    assert [p.name for p in stored.parent.parent.glob(".upload-*")] == []
    async with database.read_session() as session:
        row = (await session.execute(select(Recording))).scalar_one()
    assert (row.patient_id, row.audio_sha256) == ("P00042", sha)
    again = await client.post("/v1/recordings", data=FORM, files=files, headers=headers)
    assert again.status_code == 200 and again.json()["id"] == request["id"]


async def test_not_a_wav_is_422_and_leaves_nothing(
    client: httpx.AsyncClient, keys: dict[str, str], services: Services
) -> None:
    files = {"file": ("note.wav", b"this is not audio at all", "audio/wav")}
    response = await client.post(
        "/v1/recordings", data=FORM, files=files, headers=bearer(keys["submitter"])
    )
    assert assert_problem(response, 422, "invalid_audio")["field"] == "file"
    assert [p for p in services.settings.audio_path.rglob("*") if p.is_file()] == []


async def test_missing_field_is_422_naming_it(
    client: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    files = {"file": ("note.wav", AUDIO.read_bytes(), "audio/wav")}
    response = await client.post(
        "/v1/recordings", data={"patient_id": "P1"}, files=files, headers=bearer(keys["admin"])
    )
    assert assert_problem(response, 422, "invalid_request")["field"] == "clinician_id"


@pytest.mark.parametrize(
    ("limit", "field"),
    [(50_000, "body"), (100_000, "file")],
    ids=["refused-by-content-length", "refused-while-streaming"],
)
async def test_oversize_upload_is_413_and_leaves_nothing(
    client: httpx.AsyncClient, keys: dict[str, str], services: Services, limit: int, field: str
) -> None:
    services.settings.audio_max_bytes = limit
    files = {"file": ("note.wav", AUDIO.read_bytes(), "audio/wav")}
    response = await client.post(
        "/v1/recordings", data=FORM, files=files, headers=bearer(keys["submitter"])
    )
    assert assert_problem(response, 413, "content_too_large")["field"] == field
    assert [p for p in services.settings.audio_path.rglob("*") if p.is_file()] == []


async def test_reviewers_cannot_upload(client: httpx.AsyncClient, keys: dict[str, str]) -> None:
    files = {"file": ("note.wav", b"RIFF", "audio/wav")}
    response = await client.post(
        "/v1/recordings", data=FORM, files=files, headers=bearer(keys["reviewer"])
    )
    assert_problem(response, 403, "forbidden")


async def test_upload_to_a_full_queue_is_429_and_leaves_no_file_or_row(
    client: httpx.AsyncClient, keys: dict[str, str], services: Services, database: Database
) -> None:
    services.orchestrator.max_queued_requests = 1
    headers = bearer(keys["submitter"])
    assert (await client.post("/v1/requests", json=research_body(), headers=headers)).is_success
    files = {"file": ("note.wav", AUDIO.read_bytes(), "audio/wav")}
    response = await client.post("/v1/recordings", data=FORM, files=files, headers=headers)
    assert_problem(response, 429, "queue_full")
    assert int(response.headers["retry-after"]) >= 1
    assert [p for p in services.settings.audio_path.rglob("*") if p.is_file()] == []
    async with database.read_session() as session:
        assert (await session.execute(select(Recording))).scalars().all() == []
