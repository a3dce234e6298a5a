"""The client library against a real ``ledgerflow serve`` (API and workers), on each backend:
research submitted → waited for → approved → completed → delivery downloaded with every
SHA-256 matching; a recording uploaded → transcribed → read → corrected with its version."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import httpx
import pytest

from app.agents.research import sample_research_payloads
from app.client import AsyncClient, Client, DigestMismatch, PreconditionFailed
from tests.client.conftest import AUDIO, Served

pytestmark = pytest.mark.slow


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Recording(httpx.HTTPTransport):
    """httpx's transport, keeping each request it sent."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        return super().handle_request(request)


def test_research_is_waited_for_and_its_delivery_downloads_with_every_digest_matching(
    served: Served, tmp_path: Path
) -> None:
    payload = sample_research_payloads()["type2_diabetes_adults"]
    transport = Recording()
    with Client(served.base_url, served.keys["submitter"], transport=transport) as lf:
        submitted = lf.submit("research", payload)
        assert submitted.state == "pending"
        assert uuid.UUID(submitted.idempotency_key or "").version == 4
        assert lf.wait(submitted.id, timeout=90).state == "awaiting_approval"
        served.approve(submitted.id)
        done = lf.wait(submitted.id, timeout=90)
        assert done.state == "completed", done
        # Long polls: one answer per change of state (pending, running, ...), no polling.
        polls = [r.url.params.get("wait") for r in transport.sent if r.method == "GET"]
        assert 2 <= len(polls) <= 8 and all(int(p or 0) > 50 for p in polls), polls
        got = lf.download_delivery(done.id, tmp_path / "delivery")

        manifest = got.manifest
        assert manifest.request_id == done.id and manifest.row_count > 0
        assert [p.name for p in got.paths] == [f.name for f in manifest.files] + ["manifest.json"]
        for file, path in zip(manifest.files, got.paths, strict=False):
            assert sha256(path) == file.sha256 and path.stat().st_size == file.bytes
        assert sha256(got.paths[-1]) == manifest.manifest_sha256
        assert not list(got.folder.glob(".*.part"))

        # A file changed on the server (same size, other bytes) is refused and not kept.
        name = manifest.files[0].name
        [stored] = Path(served.env["DELIVERY_DIR"]).rglob(name)
        data = bytearray(stored.read_bytes())
        data[-2] = ord("0") if data[-2] != ord("0") else ord("1")
        stored.write_bytes(bytes(data))
        again = tmp_path / "again"
        with pytest.raises(DigestMismatch, match=name):
            lf.download_delivery(done.id, again)
        assert not (again / name).exists() and not list(again.glob(".*.part"))


async def test_an_uploaded_recording_is_transcribed_read_and_corrected_with_its_version(
    served: Served,
) -> None:
    async with AsyncClient(served.base_url, served.keys["submitter"]) as lf:
        uploaded = await lf.upload_recording(
            AUDIO / "medication.wav", patient_id="P000042", clinician_id="C007"
        )
        assert uploaded.kind == "transcription"
        done = await lf.wait(uploaded.id, timeout=120)
        assert done.state == "completed", done
        first = await lf.transcript(uploaded.id)
        assert (first.version, first.source, first.current_version) == (1, "asr", 1)
        assert "medication" in first.text

        fixed = "Continue the current medication and review in two weeks."
        second = await lf.correct_transcript(uploaded.id, fixed, version=first.version)
        assert (second.version, second.source, second.text) == (2, "clinician", fixed)
        with pytest.raises(PreconditionFailed) as stale:
            await lf.correct_transcript(uploaded.id, "an edit of the old text", version=1)
        assert stale.value.status == 412

        recording = await lf.recording(uploaded.id)
        assert (recording.transcript_version, recording.transcript) == (2, fixed)
        assert (await lf.transcript(uploaded.id, version=1)).text == first.text


def test_a_batch_gives_each_request_a_key_so_sending_it_again_replays_it(served: Served) -> None:
    payloads = sample_research_payloads()
    items = [
        {"kind": "research", "payload": payloads["type2_diabetes_adults"], "priority": 5},
        {"kind": "research", "payload": payloads["hypertension_older_adults"]},
    ]
    with Client(served.base_url, served.keys["submitter"]) as lf:
        first = lf.submit_batch(items)
        assert [r.status for r in first.items] == ["created", "created"]
        sent = [r.request for r in first.items if r.request is not None]
        keys = [r.idempotency_key for r in sent]
        assert all(keys) and keys[0] != keys[1] and sent[0].priority == 5
        again = lf.submit_batch(
            [{**item, "idempotency_key": key} for item, key in zip(items, keys, strict=True)]
        )
    assert [r.status for r in again.items] == ["replayed", "replayed"]
    assert [r.request.id for r in again.items if r.request] == [r.id for r in sent]
