"""The transcription workflow's agents: validate → transcribe → verify.

Each records its progress on the request's ``recordings`` row (created at submission)
through :class:`DomainWrite` updates matched on ``request_id``. Step outputs are audited,
so they carry identifiers, digests and numbers only: the transcript text goes to the
``recordings`` row and its first ``transcript_versions`` row, nowhere else.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from app.agents.base import Agent, AgentContext, DomainWrite, StepResult
from app.agents.transcription.audio import (
    AudioLimits,
    file_sha256,
    inspect_wav,
    read_pcm16k_mono,
    resolve_audio_path,
)
from app.agents.transcription.exceptions import InvalidAudio
from app.agents.transcription.payload import TranscriptionPayload
from app.agents.transcription.recognizer import Recognizer, default_recognizer
from app.agents.transcription.verify import Verification, verify_transcript

#: ``StepResult.review`` reason when verification fails.
LOW_CONFIDENCE_REVIEW = "low_confidence_transcript"


class ValidateInput(BaseModel):
    """The first step reads only the payload."""

    payload: TranscriptionPayload
    previous: dict[str, Any] = Field(default_factory=dict)


class ValidateOutput(BaseModel):
    """What validation found out about the recording."""

    audio_file_size: int
    audio_sha256: str
    duration_seconds: float
    sample_rate: int
    channels: int
    sample_bits: int


class TranscribeOutput(BaseModel):
    """Numbers about the transcript; its text is only in ``recordings.transcript``."""

    audio_sha256: str
    transcript_sha256: str
    word_count: int
    #: Mean word posterior, 0 when no word was recognised.
    confidence: float
    #: Each word's posterior, in order (the words themselves are not here).
    word_confidences: list[float]
    voiced_seconds: float
    voiced_seconds_in_words: float
    decode_ms: int


class _AfterValidate(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    # ``validate`` would shadow a BaseModel method, hence the alias.
    validated: ValidateOutput = Field(alias="validate")


class _AfterTranscribe(_AfterValidate):
    transcribed: TranscribeOutput = Field(alias="transcribe")


class TranscribeInput(BaseModel):
    """The payload plus the ``validate`` step's output."""

    payload: TranscriptionPayload
    previous: _AfterValidate


class VerifyInput(BaseModel):
    """The payload plus the ``validate`` and ``transcribe`` outputs (numbers only)."""

    payload: TranscriptionPayload
    previous: _AfterTranscribe


def _recording(context: AgentContext, **values: Any) -> DomainWrite:
    """An update of this request's ``recordings`` row."""
    return DomainWrite("recordings", values, match={"request_id": context.request_id})


def _failed(context: AgentContext, exc: InvalidAudio) -> InvalidAudio:
    """``exc`` again, carrying the write that marks the recording failed and why."""
    failed = _recording(context, status="failed", error_message=exc.message)
    return InvalidAudio(exc.message, detail=exc.detail, writes=(failed,))


class ValidateRecording(Agent[ValidateInput, ValidateOutput]):
    """Check the recording is WAV/PCM within the size and duration limits; fingerprint it."""

    agent_id: ClassVar[str] = "transcription.validate"
    input_model: ClassVar[type[BaseModel]] = ValidateInput
    output_model: ClassVar[type[BaseModel]] = ValidateOutput

    async def run(self, context: AgentContext, input: ValidateInput) -> StepResult[ValidateOutput]:
        """Inspect the file; an unusable one fails the request with the reason recorded."""
        payload = input.payload
        try:
            path = resolve_audio_path(payload.audio_file_path, context.settings.audio_path)
            info = inspect_wav(path, AudioLimits.from_settings(context.settings))
            if payload.audio_sha256 is not None and payload.audio_sha256 != info.sha256:
                raise InvalidAudio("audio file content does not match the payload's audio_sha256")
        except InvalidAudio as exc:
            context.log.warning("audio_rejected", error=exc.message)
            raise _failed(context, exc) from exc
        output = ValidateOutput(
            audio_file_size=info.size_bytes,
            audio_sha256=info.sha256,
            duration_seconds=round(info.duration_seconds, 3),
            sample_rate=info.sample_rate,
            channels=info.channels,
            sample_bits=info.sample_bits,
        )
        context.log.info("audio_validated", **output.model_dump())
        write = _recording(
            context,
            status="validated",
            audio_file_size=info.size_bytes,
            audio_sha256=info.sha256,
            duration_seconds=output.duration_seconds,
            error_message=None,
        )
        return StepResult(output, writes=(write,))


class TranscribeRecording(Agent[TranscribeInput, TranscribeOutput]):
    """Turn the validated recording into text with offline PocketSphinx recognition."""

    agent_id: ClassVar[str] = "transcription.transcribe"
    input_model: ClassVar[type[BaseModel]] = TranscribeInput
    output_model: ClassVar[type[BaseModel]] = TranscribeOutput

    def __init__(self, recognizer: Recognizer | None = None) -> None:
        """Use ``recognizer``, or the shared default one (loaded on first use)."""
        self._recognizer = recognizer

    async def run(
        self, context: AgentContext, input: TranscribeInput
    ) -> StepResult[TranscribeOutput]:
        """Decode the recording; the text goes to ``recordings`` and, as version 1, to
        ``transcript_versions``; numbers go to the output."""
        validated = input.previous.validated
        try:
            path = resolve_audio_path(input.payload.audio_file_path, context.settings.audio_path)
            if not path.is_file() or file_sha256(path) != validated.audio_sha256:
                raise InvalidAudio("audio file changed or vanished since it was validated")
            samples = read_pcm16k_mono(path)
        except InvalidAudio as exc:
            context.log.warning("audio_rejected", error=exc.message)
            raise _failed(context, exc) from exc
        recognizer = self._recognizer or default_recognizer()
        recognition = await recognizer.recognize(samples)
        transcript = recognition.text
        output = TranscribeOutput(
            audio_sha256=validated.audio_sha256,
            transcript_sha256=hashlib.sha256(transcript.encode()).hexdigest(),
            word_count=len(recognition.words),
            confidence=round(recognition.confidence, 4),
            word_confidences=[round(w.confidence, 4) for w in recognition.words],
            voiced_seconds=round(recognition.voiced_seconds, 3),
            voiced_seconds_in_words=round(recognition.voiced_seconds_in_words, 3),
            decode_ms=recognition.decode_ms,
        )
        context.log.info(
            "audio_transcribed",
            word_count=output.word_count,
            confidence=output.confidence,
            decode_ms=output.decode_ms,
        )
        now = datetime.now(UTC)
        first_version = DomainWrite(
            "transcript_versions",
            {
                "id": uuid.uuid4(),
                # A recording's id is its request's (see transcription_submit_writes).
                "recording_id": context.request_id,
                "version": 1,
                "text": transcript,
                "digest": output.transcript_sha256,
                "source": "asr",
                "created_by": self.agent_id,
                "created_at": now,
            },
        )
        write = _recording(
            context,
            status="transcribed",
            transcript=transcript,
            transcript_version=1,
            processed_at=now,
        )
        return StepResult(output, writes=(first_version, write))


class VerifyTranscript(Agent[VerifyInput, Verification]):
    """Judge the transcript's confidence and completeness; doubtful ones go to a clinician."""

    agent_id: ClassVar[str] = "transcription.verify"
    input_model: ClassVar[type[BaseModel]] = VerifyInput
    output_model: ClassVar[type[BaseModel]] = Verification

    async def run(self, context: AgentContext, input: VerifyInput) -> StepResult[Verification]:
        """Record the verification; ask for review when it does not pass."""
        transcribed = input.previous.transcribed
        result = verify_transcript(
            word_confidences=transcribed.word_confidences,
            duration_seconds=input.previous.validated.duration_seconds,
            voiced_seconds=transcribed.voiced_seconds,
            voiced_seconds_in_words=transcribed.voiced_seconds_in_words,
            min_confidence=context.settings.transcript_min_confidence,
        )
        write = _recording(
            context, status="verified", verification_results=result.model_dump(mode="json")
        )
        context.log.info("transcript_verified", passed=result.passed, reasons=result.reasons)
        if result.passed:
            return StepResult(result, writes=(write,))
        detail = {
            "reasons": result.reasons,
            "confidence": result.confidence,
            "min_confidence": result.min_confidence,
            "speech_coverage": result.speech_coverage,
        }
        return StepResult(
            result, writes=(write,), review=LOW_CONFIDENCE_REVIEW, review_detail=detail
        )
