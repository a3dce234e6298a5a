"""Transcription review: recordings listed, one recording played (HTML5 audio with seeking),
its transcript read with low-confidence words marked, corrected, and its gate decided.

Every read and change goes through :class:`app.results.Recordings` with the signed-in user
as a ``console`` principal, so the role rules and audit records are the API's: transcript
text and audio for the uploader, reviewers and admins (each read recorded as
``phi_accessed``), metadata for auditors too, and each correction a new version
(``transcript_corrected``). A correction made against a version someone else has since
replaced is not saved: the page says so and shows both texts.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.agents.transcription.verify import LOW_CONFIDENCE_WORD
from app.auth import ConsoleUser, Role
from app.console.access import acting, services_of, viewer
from app.console.files import file_response
from app.console.forms import FieldErrors, optional_text, optional_time
from app.console.render import base_path, render
from app.orchestrator.exceptions import InvalidRequest
from app.results import TextTooLarge, TranscriptPublic, VersionMismatch
from app.results.recordings import STATUSES

router = APIRouter()

PAGE_SIZE = 50
_NOTICES = {
    "corrected": "Saved as a new version; every earlier version is kept.",
    "unchanged": "Nothing to save: the text is the current version's.",
}
MetadataReader = Annotated[
    ConsoleUser, Depends(viewer(Role.SUBMITTER, Role.REVIEWER, Role.AUDITOR))
]
Reader = Annotated[ConsoleUser, Depends(viewer(Role.SUBMITTER, Role.REVIEWER))]


@dataclass(frozen=True)
class Word:
    """One word of the recognised text and how sure the recogniser was of it."""

    text: str
    confidence: float | None

    @property
    def low(self) -> bool:
        """Below the confidence the verify step counts as low."""
        return self.confidence is not None and self.confidence < LOW_CONFIDENCE_WORD


def marked_words(text: str, confidences: list[float] | None) -> list[Word]:
    """The words of ``text`` paired with the recogniser's confidences (when they line up)."""
    words = text.split()
    if confidences is None or len(confidences) != len(words):
        return [Word(w, None) for w in words]
    return [Word(w, c) for w, c in zip(words, confidences, strict=True)]


def _word_confidences(result: dict[str, Any] | None) -> list[float] | None:
    transcribed = (result or {}).get("transcribe")
    found = transcribed.get("word_confidences") if isinstance(transcribed, dict) else None
    return [float(c) for c in found] if isinstance(found, list) else None


@router.get("/recordings")
async def list_recordings(
    request: Request,
    user: MetadataReader,
    patient_id: str | None = None,
    clinician_id: str | None = None,
    status: str | None = None,
    created_after: str | None = None,
    created_before: str | None = None,
    cursor: str | None = None,
) -> HTMLResponse:
    """Recordings newest first, 50 a page, filtered by patient, clinician, status, time."""
    errors: FieldErrors = {}
    patient = optional_text(patient_id, "patient_id", errors, limit=64)
    clinician = optional_text(clinician_id, "clinician_id", errors, limit=64)
    if status and status not in STATUSES:
        errors["status"] = "Choose a status from the list."
    after = optional_time(created_after, "created_after", errors)
    before = optional_time(created_before, "created_before", errors)
    filters = {
        "patient_id": patient_id or "",
        "clinician_id": clinician_id or "",
        "status": status or "",
        "created_after": created_after or "",
        "created_before": created_before or "",
    }
    page = None
    if not errors:
        page = await services_of(request).recordings.list(
            acting(request, user),
            patient_id=patient,
            clinician_id=clinician,
            status=status or None,
            created_after=after,
            created_before=before,
            cursor=cursor or None,
            limit=PAGE_SIZE,
        )
    query = {k: v for k, v in filters.items() if v}
    here = f"{base_path(request)}/recordings"
    return render(
        request,
        "recordings.html",
        status=422 if errors else 200,
        title="Recordings",
        section="recordings",
        page=page,
        errors=errors,
        filters=filters,
        statuses=sorted(STATUSES),
        next_url=(
            f"{here}?{urlencode({**query, 'cursor': page.next_cursor})}"
            if page and page.next_cursor
            else None
        ),
        first_url=f"{here}?{urlencode(query)}" if cursor else None,
    )


async def recording_page(
    request: Request,
    user: ConsoleUser,
    recording_id: uuid.UUID,
    *,
    status: int = 200,
    errors: FieldErrors | None = None,
    draft: str | None = None,
    conflict: TranscriptPublic | None = None,
) -> HTMLResponse:
    """One recording (also re-shown with a correction's errors or a version conflict)."""
    services = services_of(request)
    principal = acting(request, user)
    recording = await services.recordings.get(principal, recording_id)
    versions = await services.recordings.versions(principal, recording_id)
    may_read = user.principal.has(Role.SUBMITTER, Role.REVIEWER)
    recognised: list[Word] = []
    if may_read and recording.transcript is not None and versions:
        asr = versions[0]
        if asr.version == recording.transcript_version:
            asr_text: str | None = recording.transcript
        elif asr.purged:
            asr_text = None
        else:
            asr_text = (await services.recordings.transcript(principal, recording_id, 1)).text
        if asr_text is not None:
            view = await services.orchestrator.get(recording.request_id)
            recognised = marked_words(asr_text, _word_confidences(view.result))
    gate = None
    if user.principal.has(Role.REVIEWER) and recording.request_state == "awaiting_approval":
        pending = [
            a
            for a in (await services.orchestrator.history(recording.request_id)).approvals
            if a.status == "pending"
        ]
        gate = pending[0] if pending else None
    return render(
        request,
        "recording.html",
        status=status,
        title=f"Recording {str(recording_id)[:8]}",
        section="recordings",
        recording=recording,
        versions=versions,
        may_read=may_read,
        recognised=recognised,
        low_threshold=LOW_CONFIDENCE_WORD,
        gate=gate,
        errors=errors or {},
        draft=recording.transcript if draft is None else draft,
        conflict=conflict,
        notice=_NOTICES.get(request.query_params.get("done", "")),
    )


@router.get("/recordings/{recording_id}")
async def show_recording(
    request: Request, recording_id: uuid.UUID, user: MetadataReader
) -> HTMLResponse:
    """Play, read, correct; reading the transcript here is recorded as a PHI read."""
    return await recording_page(request, user, recording_id)


@router.get("/recordings/{recording_id}/audio")
async def audio(request: Request, recording_id: uuid.UUID, user: Reader) -> Response:
    """The recording's audio, whole or the byte range a seeking browser asks for."""
    opened = await services_of(request).recordings.open_audio(
        acting(request, user), recording_id, request.headers.get("range")
    )
    return file_response(opened, download=False)


@router.post("/recordings/{recording_id}/transcript")
async def correct(request: Request, recording_id: uuid.UUID, user: Reader) -> Response:
    """Save the corrected text as a new version of the one it was made from."""
    form = await request.form()
    text = str(form.get("text") or "")
    errors: FieldErrors = {}
    try:
        based_on = int(str(form.get("version") or ""))
    except ValueError:
        based_on = 0
    if based_on < 1:
        errors["text"] = "The page lost track of which version you corrected; reload it."
    elif not text.strip():
        errors["text"] = "Write the corrected transcript; an empty one is not saved."
    if errors:
        return await recording_page(
            request, user, recording_id, status=422, errors=errors, draft=text
        )
    services = services_of(request)
    try:
        _, created = await services.recordings.correct(
            acting(request, user), recording_id, text, based_on
        )
    except VersionMismatch:
        current = await services.recordings.transcript(acting(request, user), recording_id)
        return await recording_page(
            request, user, recording_id, status=409, draft=text, conflict=current
        )
    except (InvalidRequest, TextTooLarge) as exc:
        errors["text"] = exc.message.split(": ", 1)[-1]
        return await recording_page(
            request, user, recording_id, status=422, errors=errors, draft=text
        )
    done = "corrected" if created else "unchanged"
    return RedirectResponse(
        f"{base_path(request)}/recordings/{recording_id}?done={done}", status_code=303
    )
