"""What the results service returns: the same models the HTTP API sends and the client reads.

Pydantic only (no database, no web framework), so ``app.client`` can import them cheaply.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class RecordingSummary(_Model):
    """A recording's metadata: what auditors and lists see (never the transcript text)."""

    id: uuid.UUID = Field(description="the recording's id: its transcription request's id")
    request_id: uuid.UUID
    request_state: str
    submitted_by: str
    patient_id: str
    clinician_id: str
    #: uploaded | validated | transcribed | verified | failed
    status: str
    error_message: str | None
    audio_file_size: int = Field(description="bytes (0 until the validate step measured it)")
    audio_sha256: str | None
    duration_seconds: float | None
    confidence: float | None = Field(description="mean word confidence from verification")
    verification_results: dict[str, Any] | None
    transcript_version: int = Field(description="the current version (0: no transcript yet)")
    transcript_digest: str | None = Field(description="SHA-256 of the current text")
    uploaded_at: datetime
    processed_at: datetime | None
    audio_purged_at: datetime | None
    transcript_purged_at: datetime | None = Field(
        description="when retention cleared the transcript text (digests stay)"
    )


class RecordingPublic(RecordingSummary):
    """A recording with its current transcript (``null`` for auditors, or before there is one)."""

    transcript: str | None = Field(
        description="the current text; withheld (null) from roles that may not read it"
    )
    transcript_withheld: bool = Field(
        default=False, description="true when the caller's role may not read the text"
    )


class RecordingsPage(_Model):
    """One page of recordings, newest first; pass ``next_cursor`` as ``cursor`` for the next."""

    items: list[RecordingSummary]
    next_cursor: str | None


class TranscriptVersionInfo(_Model):
    """One version of a transcript, without its text."""

    version: int
    digest: str = Field(description="SHA-256 of the text (UTF-8)")
    source: Literal["asr", "clinician"]
    created_by: str
    created_at: datetime
    purged: bool = Field(description="true when retention cleared the text")


class TranscriptPublic(TranscriptVersionInfo):
    """One version of a transcript with its text."""

    recording_id: uuid.UUID
    text: str
    current_version: int = Field(description="the recording's current version")


class TranscriptCorrection(BaseModel):
    """``PUT /v1/recordings/{id}/transcript``: the corrected text (the version goes in
    ``If-Match``)."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="the whole corrected transcript")


class DeliveryFile(_Model):
    """One delivered file, as the manifest records it."""

    name: str
    rows: int = Field(description="data rows (the header not counted)")
    bytes: int
    sha256: str
    url: str = Field(description="where to download it (relative to the API root)")


class DictionaryEntry(_Model):
    """One column of the data dictionary."""

    file: str
    column: str
    type: str
    description: str


class DeliveryManifest(_Model):
    """A research request's delivery: its files with SHA-256, rows and the data dictionary."""

    request_id: uuid.UUID
    manifest_sha256: str = Field(description="SHA-256 of `manifest.json` (also downloadable)")
    phi_level: str | None
    row_count: int = Field(description="data rows over every data file")
    created_at: datetime
    files: list[DeliveryFile] = Field(description="data files and `data_dictionary.csv`")
    data_dictionary: list[DictionaryEntry]


__all__ = [
    "DeliveryFile",
    "DeliveryManifest",
    "DictionaryEntry",
    "RecordingPublic",
    "RecordingSummary",
    "RecordingsPage",
    "TranscriptCorrection",
    "TranscriptPublic",
    "TranscriptVersionInfo",
]
