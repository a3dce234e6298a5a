"""The payload of a transcription request: who, and where the recording is.

Only identifiers and a file reference: clinical content (the dictation itself) never
enters the payload, so payload digests in the audit trail stay content-free.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from app.validation import inside_folder, rule_error, submit_context


class TranscriptionPayload(BaseModel):
    """A clinician's dictated recording to transcribe and verify."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    #: The patient the dictation is about (an identifier, never a name).
    patient_id: str = Field(min_length=1, max_length=64)
    #: The dictating clinician.
    clinician_id: str = Field(min_length=1, max_length=64)
    #: WAV file, relative to ``AUDIO_DIR`` (or absolute, but inside ``AUDIO_DIR``; refused
    #: at submit otherwise, symlinks and ``..`` resolved).
    audio_file_path: str = Field(min_length=1, max_length=1024)
    #: SHA-256 of the file as uploaded; when given, validation refuses any other content.
    audio_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")

    @field_validator("audio_file_path")
    @classmethod
    def _inside_audio_dir(cls, value: str, info: ValidationInfo) -> str:
        # Only at submit (a SubmitContext names AUDIO_DIR); the validate step checks again,
        # since a link can change in between. The message never repeats the path.
        context = submit_context(info)
        if context is not None and inside_folder(value, context.settings.audio_path) is None:
            raise rule_error("lies outside AUDIO_DIR")
        return value
