"""The transcription agents, step by step, on the committed speech fixtures.

The engine is not involved: each test builds the ``AgentContext`` the engine would and
feeds every step the JSON outputs of the steps before it. PocketSphinx really decodes;
the database tests apply the returned writes to a real ``recordings`` row so their shape
is checked by the schema too.

Measured word error rates of the fixtures (PocketSphinx 5.1.1, bundled en-us model):
chest_pain 0.125, blood_pressure 0.375, medication 0.222, no_allergies 0.333,
follow_up 0.625 (mean 0.336). The thresholds below leave a margin over those.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
import structlog
from sqlalchemy import insert, select, update

from app.agents.base import Agent, AgentContext, DomainWrite, PermanentError, StepResult
from app.agents.transcription import (
    LOW_CONFIDENCE_REVIEW,
    TranscribeRecording,
    ValidateRecording,
    VerifyTranscript,
    transcription_submit_writes,
    word_error_rate,
)
from app.config import Settings
from app.database import Database
from app.database.models import Base, Recording, Request

FIXTURES = Path(__file__).parent.parent / "fixtures" / "audio"
SENTENCES: dict[str, str] = json.loads((FIXTURES / "sentences.json").read_text())
#: Largest WER accepted for any one sentence (worst measured: 0.625).
MAX_SENTENCE_WER = 0.8
#: Largest mean WER accepted over all sentences (measured: 0.336).
MAX_MEAN_WER = 0.5
#: The ``TRANSCRIPT_MIN_CONFIDENCE`` these tests run with (see ``verify.py``).
MIN_CONFIDENCE = 0.4
HEX64 = re.compile(r"^[0-9a-f]{64}$")

Outputs = dict[str, dict[str, Any]]


class Steps:
    """Runs transcription steps for one request the way the engine would."""

    def __init__(self, settings: Settings, audio_file_path: str, **payload: Any) -> None:
        self.settings = settings
        self.payload: dict[str, Any] = {
            "patient_id": "P000123",
            "clinician_id": "C042",
            "audio_file_path": audio_file_path,
            **payload,
        }
        self.request_id = uuid.uuid4()
        self.previous: Outputs = {}
        self.results: dict[str, StepResult[Any]] = {}

    def context(self, step: str) -> AgentContext:
        """The context the engine gives the agent of ``step``."""
        return AgentContext(
            request_id=self.request_id,
            kind="transcription",
            step=step,
            attempt=1,
            idempotency_key=f"{self.request_id}:{step}",
            log=structlog.get_logger(),
            warehouse=None,  # type: ignore[arg-type]  # transcription never reads it
            settings=self.settings,
        )

    async def run(self, step: str, agent: Agent[Any, Any]) -> StepResult[Any]:
        """Run ``agent`` as ``step``; keep its JSON output for the steps after it."""
        parsed = agent.parse_input(self.payload, self.previous)
        result = await agent.run(self.context(step), parsed)
        assert isinstance(result, StepResult)
        assert isinstance(result.output, agent.output_model)
        self.previous[step] = json.loads(result.output.model_dump_json())
        self.results[step] = result
        return result

    async def run_all(self) -> StepResult[Any]:
        """Run validate, transcribe and verify; return the verify result."""
        await self.run("validate", ValidateRecording())
        await self.run("transcribe", TranscribeRecording())
        return await self.run("verify", VerifyTranscript())

    @property
    def writes(self) -> list[DomainWrite]:
        """Every domain write so far, in step order."""
        return [write for result in self.results.values() for write in result.writes]

    @property
    def transcript(self) -> str:
        """The text the transcribe step wrote to ``recordings``."""
        version, write = self.results["transcribe"].writes
        text = write.values["transcript"]
        assert version.values["text"] == text
        assert isinstance(text, str)
        return text


def make_settings(audio_dir: Path) -> Settings:
    """Settings with the given audio folder and the limits these tests assume."""
    return Settings(
        _env_file=None,
        audio_dir=audio_dir,
        audio_max_bytes=1024 * 1024,
        audio_min_seconds=0.5,
        audio_max_seconds=60.0,
        transcript_min_confidence=MIN_CONFIDENCE,
    )


@pytest.fixture
def settings() -> Settings:
    """Settings reading audio straight from the committed fixtures."""
    return make_settings(FIXTURES)


async def test_clean_dictation_transcribes_within_the_wer_threshold_without_review(
    settings: Settings,
) -> None:
    rates: dict[str, float] = {}
    for name, sentence in SENTENCES.items():
        steps = Steps(settings, name)
        verified = await steps.run_all()
        rates[name] = word_error_rate(sentence, steps.transcript)
        assert verified.review is None, (name, verified.output)
        assert verified.output.passed
    assert max(rates.values()) < MAX_SENTENCE_WER, rates
    assert sum(rates.values()) / len(rates) < MAX_MEAN_WER, rates


async def test_transcribe_output_holds_numbers_and_digests_but_no_words(
    settings: Settings,
) -> None:
    steps = Steps(settings, "chest_pain.wav")
    await steps.run("validate", ValidateRecording())
    result = await steps.run("transcribe", TranscribeRecording())

    output = steps.previous["transcribe"]
    transcript = steps.transcript
    assert len(transcript.split()) >= 4
    assert output["word_count"] == len(transcript.split())
    assert output["transcript_sha256"] == hashlib.sha256(transcript.encode()).hexdigest()
    digests = {k for k, v in output.items() if isinstance(v, str) and HEX64.match(v)}
    assert digests == {"audio_sha256", "transcript_sha256"}
    rest = json.dumps([v for k, v in output.items() if k not in digests])
    assert re.findall(r"[a-z]+", rest) == []  # numbers only: no word can hide in there
    assert result.review is None

    version, write = result.writes
    assert write.table == "recordings"
    assert write.match == {"request_id": steps.request_id}
    assert write.values["status"] == "transcribed"
    assert write.values["transcript_version"] == 1
    assert write.values["processed_at"] is not None
    # The recogniser's text is kept as version 1, never to be overwritten.
    assert (version.table, version.match) == ("transcript_versions", None)
    assert version.values["recording_id"] == steps.request_id
    assert (version.values["version"], version.values["source"]) == (1, "asr")
    assert version.values["digest"] == output["transcript_sha256"]


async def test_noisy_recording_asks_a_clinician_to_review(settings: Settings) -> None:
    steps = Steps(settings, "noisy_speech.wav")
    verified = await steps.run_all()

    assert verified.review == LOW_CONFIDENCE_REVIEW
    assert "confidence_below_minimum" in verified.review_detail["reasons"]
    assert verified.review_detail["confidence"] < MIN_CONFIDENCE
    assert not verified.output.passed
    (write,) = verified.writes
    assert write.values["status"] == "verified"
    assert write.values["verification_results"]["passed"] is False


async def test_recognition_does_not_depend_on_the_previous_recording(
    settings: Settings,
) -> None:
    confidences = []
    for name in ["no_allergies.wav", "blood_pressure.wav", "no_allergies.wav"]:
        steps = Steps(settings, name)
        await steps.run("validate", ValidateRecording())
        await steps.run("transcribe", TranscribeRecording())
        confidences.append(steps.previous["transcribe"]["word_confidences"])
    assert confidences[0] == confidences[2]


async def test_corrupt_wav_fails_permanently_and_records_why(tmp_path: Path) -> None:
    whole = (FIXTURES / "no_allergies.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(whole[:30])
    steps = Steps(make_settings(tmp_path), "cut.wav")

    with pytest.raises(PermanentError) as info:
        await steps.run("validate", ValidateRecording())
    assert info.value.message == "corrupt WAV file: header is truncated"
    (write,) = info.value.writes
    assert write.match == {"request_id": steps.request_id}
    assert write.values == {"status": "failed", "error_message": info.value.message}


async def test_non_wav_file_fails_permanently(tmp_path: Path) -> None:
    (tmp_path / "dictation.wav").write_bytes(b"this is a text file, not audio\n")
    steps = Steps(make_settings(tmp_path), "dictation.wav")

    with pytest.raises(PermanentError, match=r"^not a WAV file \(no RIFF header\)$"):
        await steps.run("validate", ValidateRecording())


async def test_path_outside_the_audio_folder_fails_permanently(tmp_path: Path) -> None:
    steps = Steps(make_settings(tmp_path), str(FIXTURES / "chest_pain.wav"))

    with pytest.raises(PermanentError, match="is outside the audio folder"):
        await steps.run("validate", ValidateRecording())


async def test_file_not_matching_the_uploaded_digest_fails(settings: Settings) -> None:
    steps = Steps(settings, "chest_pain.wav", audio_sha256="0" * 64)

    with pytest.raises(PermanentError, match="does not match the payload's audio_sha256"):
        await steps.run("validate", ValidateRecording())


async def test_file_replaced_after_validation_is_not_transcribed(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "no_allergies.wav", tmp_path / "note.wav")
    steps = Steps(make_settings(tmp_path), "note.wav")
    await steps.run("validate", ValidateRecording())
    shutil.copy(FIXTURES / "chest_pain.wav", tmp_path / "note.wav")

    with pytest.raises(PermanentError, match="changed or vanished since it was validated") as info:
        await steps.run("transcribe", TranscribeRecording())
    assert info.value.writes[0].values["status"] == "failed"


@pytest.mark.parametrize(
    ("confidences", "voiced", "in_words", "reason"),
    [
        ([], 3.0, 0.0, "no_words_recognised"),
        ([0.9, 0.2, 0.1], 3.0, 2.8, "confidence_below_minimum"),
        ([0.9, 0.9, 0.9], 3.0, 1.0, "speech_not_covered"),
        ([0.9], 3.0, 2.9, "speaking_rate_too_low"),
        ([0.9] * 25, 3.0, 2.9, "speaking_rate_too_high"),
    ],
)
async def test_verify_names_why_a_transcript_needs_review(
    settings: Settings,
    confidences: list[float],
    voiced: float,
    in_words: float,
    reason: str,
) -> None:
    steps = Steps(settings, "chest_pain.wav")
    steps.previous = {
        "validate": {
            "audio_file_size": 1000,
            "audio_sha256": "a" * 64,
            "duration_seconds": 3.5,
            "sample_rate": 16000,
            "channels": 1,
            "sample_bits": 16,
        },
        "transcribe": {
            "audio_sha256": "a" * 64,
            "transcript_sha256": "b" * 64,
            "word_count": len(confidences),
            "confidence": sum(confidences) / len(confidences) if confidences else 0.0,
            "word_confidences": confidences,
            "voiced_seconds": voiced,
            "voiced_seconds_in_words": in_words,
            "decode_ms": 1,
        },
    }
    verified = await steps.run("verify", VerifyTranscript())
    assert verified.review == LOW_CONFIDENCE_REVIEW
    assert reason in verified.review_detail["reasons"]


async def test_step_writes_fit_the_recordings_table(database: Database, tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "no_allergies.wav", tmp_path / "note.wav")
    good = Steps(make_settings(tmp_path), "note.wav")
    await good.run_all()
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    bad = Steps(make_settings(tmp_path), "bad.wav")
    with pytest.raises(PermanentError) as info:
        await bad.run("validate", ValidateRecording())

    for steps, writes in [(good, good.writes), (bad, list(info.value.writes))]:
        await _record(database, steps, writes)

    async with database.read_session() as session:
        rows = {row.request_id: row for row in (await session.execute(select(Recording))).scalars()}
    done, failed = rows[good.request_id], rows[bad.request_id]
    assert done.status == "verified"
    assert done.transcript == good.transcript
    assert done.audio_sha256 == good.previous["validate"]["audio_sha256"]
    assert done.audio_file_size == (tmp_path / "note.wav").stat().st_size
    assert done.duration_seconds == pytest.approx(2.7, abs=0.05)
    assert done.processed_at is not None
    assert done.verification_results is not None
    assert done.verification_results["passed"] is True
    assert (failed.status, failed.error_message) == ("failed", "not a WAV file (no RIFF header)")
    assert failed.transcript is None


async def _record(database: Database, steps: Steps, writes: list[DomainWrite]) -> None:
    """Insert the request and its submit-time row, then apply ``writes`` as the engine would."""
    async with database.session() as session:
        session.add(
            Request(
                id=steps.request_id,
                kind="transcription",
                state="running",
                submitted_by="test",
                payload_digest="0" * 64,
                payload=steps.payload,
            )
        )
        await session.flush()
        for write in [*transcription_submit_writes(steps.request_id, steps.payload), *writes]:
            table = Base.metadata.tables[write.table]
            if write.match is None:
                await session.execute(insert(table).values(**write.values))
                continue
            where = [table.c[column] == value for column, value in write.match.items()]
            result = await session.execute(update(table).where(*where).values(**write.values))
            assert result.rowcount == 1  # type: ignore[attr-defined]
