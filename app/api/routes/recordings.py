"""``POST /v1/recordings``: upload a dictated WAV and create its transcription request."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from fastapi import APIRouter, Request, Response

from app.agents.transcription import AudioLimits, InvalidAudio, inspect_wav
from app.api.auth import SubmitterDep
from app.api.deps import ServicesDep
from app.api.problems import ERROR_RESPONSES, ApiError
from app.api.routes.requests import IdempotencyKey, created_or_replayed, public, reject_nul
from app.api.schemas import RequestPublic
from app.api.uploads import receive_upload
from app.database.types import utcnow
from app.exceptions import LedgerflowError
from app.orchestrator.exceptions import InvalidRequest
from app.validation import FieldProblem

router = APIRouter(prefix="/v1", tags=["recordings"], responses=ERROR_RESPONSES)

_FORM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["patient_id", "clinician_id", "file"],
    "properties": {
        "patient_id": {"type": "string", "minLength": 1, "maxLength": 64},
        "clinician_id": {"type": "string", "minLength": 1, "maxLength": 64},
        "priority": {"type": "integer", "minimum": -100, "maximum": 100, "default": 0},
        "file": {"type": "string", "format": "binary", "description": "WAV (integer PCM)"},
    },
}


def _priority(raw: str | None) -> int:
    if raw is None or raw == "":
        return 0
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(
            422, "invalid_request", "priority: must be an integer", field="priority"
        ) from None
    if not -100 <= value <= 100:
        raise ApiError(
            422, "invalid_request", "priority: must be from -100 to 100", field="priority"
        )
    return value


@router.post(
    "/recordings",
    status_code=201,
    responses={
        200: {"model": RequestPublic, "description": "Idempotent replay"},
        415: {"description": "Not multipart/form-data"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"multipart/form-data": {"schema": _FORM_SCHEMA}},
        }
    },
)
async def upload_recording(
    request: Request,
    principal: SubmitterDep,
    services: ServicesDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> RequestPublic:
    """Stream a WAV recording to the audio folder (SHA-256 recorded) and submit its
    transcription; the recording is checked (WAV/PCM, size, duration) before anything is
    written to the database."""
    settings = services.settings
    root = settings.audio_path
    upload = await receive_upload(request, root, settings.audio_max_bytes)
    try:
        try:
            await asyncio.to_thread(inspect_wav, upload.path, AudioLimits.from_settings(settings))
        except InvalidAudio as exc:
            raise ApiError(422, "invalid_audio", f"file: {exc.message}", field="file") from None
        for name, value in upload.fields.items():
            reject_nul(value, name)
        # A form field left out is "required", not an empty string that is "too short".
        payload: dict[str, Any] = {
            name: upload.fields[name]
            for name in ("patient_id", "clinician_id")
            if name in upload.fields
        }
        payload |= {"audio_file_path": upload.relative_path, "audio_sha256": upload.sha256}
        before = utcnow()
        try:
            view = await services.orchestrator.submit(
                "transcription",
                payload,
                principal.name,
                idempotency_key,
                _priority(upload.fields.get("priority")),
            )
        except InvalidRequest as exc:
            # Name the form fields the caller sent, not the payload's internal paths.
            problems = [
                FieldProblem(p.field.removeprefix("payload."), p.message) for p in exc.problems
            ]
            if not problems:
                raise
            raise InvalidRequest(problems=problems) from None
    except (ApiError, LedgerflowError):
        if upload.created:
            with contextlib.suppress(FileNotFoundError):
                upload.path.unlink()
        raise
    created_or_replayed(response, view, before)
    return public(view)
