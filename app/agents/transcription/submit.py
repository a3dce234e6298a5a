"""What the engine records when a transcription request is submitted (before any step)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from app.agents.base import DomainWrite
from app.agents.transcription.payload import TranscriptionPayload


def transcription_submit_writes(
    request_id: uuid.UUID, payload: Mapping[str, Any] | TranscriptionPayload
) -> tuple[DomainWrite, ...]:
    """The ``recordings`` row for a new request, status ``uploaded``; its id is the request's.

    Call it inside the submit transaction; the steps then update this row by
    ``request_id``. The file is not read here: ``audio_file_size`` is 0 until the
    validate step measures it. A payload of the wrong shape raises
    ``pydantic.ValidationError`` naming the field, so nothing is written.
    """
    parsed = (
        payload
        if isinstance(payload, TranscriptionPayload)
        else TranscriptionPayload.model_validate(payload)
    )
    return (
        DomainWrite(
            "recordings",
            {
                "id": request_id,
                "request_id": request_id,
                "patient_id": parsed.patient_id,
                "clinician_id": parsed.clinician_id,
                "audio_file_path": parsed.audio_file_path,
                "audio_file_size": 0,
                "audio_sha256": parsed.audio_sha256,
                "status": "uploaded",
            },
        ),
    )
