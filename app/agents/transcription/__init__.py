"""Clinical transcription reference agents: validate audio, transcribe offline, verify.

``validate`` checks a WAV/PCM recording against the size and duration limits,
``transcribe`` runs PocketSphinx (English model bundled in its wheel) and stores the
text on the ``recordings`` row only, and ``verify`` judges confidence and completeness
from numbers, asking a clinician to review doubtful transcripts.
"""

from typing import Any

from app.agents.base import Agent
from app.agents.transcription.agents import (
    LOW_CONFIDENCE_REVIEW,
    TranscribeInput,
    TranscribeOutput,
    TranscribeRecording,
    ValidateInput,
    ValidateOutput,
    ValidateRecording,
    VerifyInput,
    VerifyTranscript,
)
from app.agents.transcription.audio import AudioInfo, AudioLimits, inspect_wav, read_pcm16k_mono
from app.agents.transcription.exceptions import InvalidAudio
from app.agents.transcription.payload import TranscriptionPayload
from app.agents.transcription.recognizer import Recognition, RecognizedWord, Recognizer
from app.agents.transcription.submit import transcription_submit_writes
from app.agents.transcription.verify import Verification, verify_transcript
from app.agents.transcription.wer import word_error_rate

#: The transcription workflow's agents in step order, keyed by step name.
TRANSCRIPTION_AGENTS: dict[str, type[Agent[Any, Any]]] = {
    "validate": ValidateRecording,
    "transcribe": TranscribeRecording,
    "verify": VerifyTranscript,
}

__all__ = [
    "LOW_CONFIDENCE_REVIEW",
    "TRANSCRIPTION_AGENTS",
    "AudioInfo",
    "AudioLimits",
    "InvalidAudio",
    "Recognition",
    "RecognizedWord",
    "Recognizer",
    "TranscribeInput",
    "TranscribeOutput",
    "TranscribeRecording",
    "TranscriptionPayload",
    "ValidateInput",
    "ValidateOutput",
    "ValidateRecording",
    "Verification",
    "VerifyInput",
    "VerifyTranscript",
    "inspect_wav",
    "read_pcm16k_mono",
    "transcription_submit_writes",
    "verify_transcript",
    "word_error_rate",
]
