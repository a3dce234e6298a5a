"""``/v1/recordings``: upload a dictated WAV; read recordings, transcripts and audio; correct
a transcript.

Reads and corrections go through :class:`app.results.Recordings` with the caller as an
``http`` principal, so the role rules and audit records are the console's and the CLI's:
metadata for submitters (their own), reviewers, auditors and admins; transcript text and
audio for all of them but auditors, each read recorded as ``phi_accessed``; each correction
a new version (``transcript_corrected``), made only against the version named in
``If-Match``. Another submitter's recording is answered like a missing one (404).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from app.agents.transcription import AudioLimits, InvalidAudio, inspect_wav
from app.api.auth import MetadataReaderDep, ReaderDep, SubmitterDep
from app.api.deps import ServicesDep
from app.api.problems import ERROR_RESPONSES, GONE_RESPONSES, ApiError, Problem
from app.api.routes.requests import IdempotencyKey, created_or_replayed, public, reject_nul
from app.api.schemas import RequestPublic
from app.api.uploads import receive_upload
from app.database.types import utcnow
from app.exceptions import LedgerflowError
from app.orchestrator.exceptions import InvalidRequest
from app.results import (
    RecordingPublic,
    RecordingsPage,
    TranscriptCorrection,
    TranscriptPublic,
    TranscriptVersionInfo,
)
from app.validation import FieldProblem, IsoDateTime

router = APIRouter(prefix="/v1", tags=["recordings"], responses=ERROR_RESPONSES)

_FORM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["patient_id", "clinician_id", "file"],
    "properties": {
        "patient_id": {"type": "string", "minLength": 1, "maxLength": 64},
        "clinician_id": {"type": "string", "minLength": 1, "maxLength": 64},
        "priority": {"type": "integer", "minimum": -100, "maximum": 100, "default": 0},
        "callback_url": {
            "type": "string",
            "maxLength": 1024,
            "description": "https URL for signed callbacks (default: the client's); "
            "see docs/webhooks.md",
        },
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
                upload.fields.get("callback_url") or principal.callback_url,
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


# -- reading ----------------------------------------------------------------------------

_RANGES: dict[int | str, dict[str, Any]] = {
    206: {"description": "The byte range asked for (`Content-Range`)"},
    416: {"model": Problem, "description": "Range not satisfiable (`Content-Range: bytes */N`)"},
}
_PRECONDITIONS: dict[int | str, dict[str, Any]] = {
    412: {"model": Problem, "description": "Stale If-Match: `current_version` names the current"},
    428: {"model": Problem, "description": "No If-Match"},
}
_ETAG = re.compile(r'^\s*"(\d{1,9})"\s*$|^\s*(\d{1,9})\s*$')


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _version_tag(version: int) -> str:
    """A transcript version as an entity tag: ``"2"``."""
    return f'"{version}"'


def expected_version(if_match: str | None) -> int | None:
    """The transcript version an ``If-Match`` names (``"2"``, or a bare ``2``); None without one.

    Anything else (``*``, a weak tag, a list, a tag that is not a version) is refused: a
    correction must say which one version it was made from.
    """
    if if_match is None:
        return None
    found = _ETAG.match(if_match)
    if found is None:
        raise ApiError(
            422,
            "invalid_request",
            f"If-Match: {if_match[:40]!r} is not one transcript version; send the ETag of "
            'the version you corrected, e.g. If-Match: "2"',
            field="If-Match",
        )
    return int(found.group(1) or found.group(2))


@router.get("/recordings")
async def list_recordings(
    principal: MetadataReaderDep,
    services: ServicesDep,
    patient_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    clinician_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    status: Annotated[
        str | None,
        Query(description="uploaded | validated | transcribed | verified | failed"),
    ] = None,
    created_after: IsoDateTime | None = None,
    created_before: IsoDateTime | None = None,
    cursor: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> RecordingsPage:
    """Recordings newest first, keyset-paginated, without transcript text (submitters: their
    own; auditors too)."""
    return await services.recordings.list(
        principal,
        patient_id=patient_id,
        clinician_id=clinician_id,
        status=status,
        created_after=_utc(created_after),
        created_before=_utc(created_before),
        cursor=cursor,
        limit=limit,
    )


@router.get("/recordings/{recording_id}")
async def get_recording(
    recording_id: uuid.UUID, principal: MetadataReaderDep, services: ServicesDep
) -> RecordingPublic:
    """A recording: status, duration, size, SHA-256, confidence, verification results and
    the current transcript with its version (auditors: without the text). Reading the text
    is recorded as ``phi_accessed``."""
    return await services.recordings.get(principal, recording_id)


@router.get("/recordings/{recording_id}/transcript", responses=GONE_RESPONSES)
async def get_transcript(
    recording_id: uuid.UUID,
    principal: ReaderDep,
    services: ServicesDep,
    response: Response,
    version: Annotated[int | None, Query(ge=1, description="an earlier version")] = None,
) -> TranscriptPublic:
    """The current transcript (or ``version``) with its text; ``ETag`` is its version, to
    send back as ``If-Match`` with a correction. 409 before there is one."""
    transcript = await services.recordings.transcript(principal, recording_id, version)
    response.headers["ETag"] = _version_tag(transcript.version)
    return transcript


@router.get("/recordings/{recording_id}/transcript/versions")
async def transcript_versions(
    recording_id: uuid.UUID, principal: MetadataReaderDep, services: ServicesDep
) -> list[TranscriptVersionInfo]:
    """Every version of the transcript, oldest first, without text: who made it and when,
    its SHA-256, whether retention cleared it."""
    return await services.recordings.versions(principal, recording_id)


@router.put(
    "/recordings/{recording_id}/transcript",
    responses={**_PRECONDITIONS, **GONE_RESPONSES},
)
async def correct_transcript(
    recording_id: uuid.UUID,
    body: Annotated[TranscriptCorrection, Body()],
    principal: ReaderDep,
    services: ServicesDep,
    response: Response,
    if_match: Annotated[
        str | None,
        Header(
            alias="If-Match",
            max_length=64,
            description='The version corrected, as the transcript\'s ETag: `"1"`.',
        ),
    ] = None,
) -> TranscriptPublic:
    """Save the corrected text as the next version, if the current one is ``If-Match``.

    Every version is kept (the recogniser's stays version 1); the correction is recorded
    as ``transcript_corrected`` (digests, never text). 428 without ``If-Match``, 412 when
    the transcript moved on (the problem's ``current_version`` says to what), 422 for an
    empty text, 413 past ``TRANSCRIPT_MAX_CHARS``. Sending the same correction again
    changes nothing and answers the version it made.
    """
    expected = expected_version(if_match)
    transcript, _ = await services.recordings.correct(principal, recording_id, body.text, expected)
    response.headers["ETag"] = _version_tag(transcript.version)
    return transcript


@router.get(
    "/recordings/{recording_id}/audio",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"audio/wav": {}}, "description": "The whole recording"},
        **_RANGES,
        **GONE_RESPONSES,
    },
)
async def get_audio(
    recording_id: uuid.UUID,
    principal: ReaderDep,
    services: ServicesDep,
    range_header: Annotated[
        str | None, Header(alias="Range", max_length=200, description="`bytes=first-last`")
    ] = None,
) -> StreamingResponse:
    """The recording's WAV, streamed whole or as one byte range (so a player can seek);
    each read recorded as ``phi_accessed`` with the range. ``ETag`` and ``Digest`` carry the
    SHA-256 recorded at upload."""
    opened = await services.recordings.open_audio(principal, recording_id, range_header)
    return StreamingResponse(
        opened.chunks(),
        status_code=opened.status_code,
        media_type=opened.media_type,
        headers=opened.headers(download=False),
    )
