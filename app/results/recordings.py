"""Recordings and their transcripts: read, list, correct, and stream the audio.

Every function takes the :class:`~app.auth.Principal` asking and applies the rules of
:mod:`app.results.access`. Reading transcript text or audio appends ``phi_accessed`` in a
transaction that commits before anything is returned; a correction is one transaction:
the guarded ``UPDATE recordings ... WHERE id = :id AND transcript_version = :expected``,
the new ``transcript_versions`` row and ``transcript_corrected`` (digests, never text).
The recogniser's text stays version 1 for good (database triggers refuse to change it).
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.transcription.audio import resolve_audio_path
from app.agents.transcription.exceptions import InvalidAudio
from app.audit.events import PhiAccessed, TranscriptCorrected
from app.auth import Principal, Role
from app.config import Settings
from app.database import Database
from app.database.models import Recording, Request, TranscriptVersion
from app.database.types import utcnow
from app.orchestrator.exceptions import InvalidRequest, NotFound
from app.orchestrator.views import decode_cursor, encode_cursor
from app.results.access import (
    METADATA_READERS,
    READERS,
    hide_unless_owner,
    record,
    require_role,
)
from app.results.exceptions import (
    FileCorrupt,
    NotReady,
    TextTooLarge,
    VersionMismatch,
    VersionRequired,
)
from app.results.files import OpenFile, open_slice
from app.results.models import (
    RecordingPublic,
    RecordingsPage,
    RecordingSummary,
    TranscriptPublic,
    TranscriptVersionInfo,
)
from app.results.purges import gone

STATUSES = frozenset({"uploaded", "validated", "transcribed", "verified", "failed"})
_CURRENT = TranscriptVersion.__table__.alias("current_version")
_SUMMARY_COLUMNS = (
    Recording.id,
    Recording.request_id,
    Request.state.label("request_state"),
    Request.submitted_by,
    Request.purged_at,
    Recording.patient_id,
    Recording.clinician_id,
    Recording.status,
    Recording.error_message,
    Recording.audio_file_size,
    Recording.audio_sha256,
    Recording.audio_file_path,
    Recording.duration_seconds,
    Recording.verification_results,
    Recording.transcript_version,
    _CURRENT.c.digest.label("transcript_digest"),
    Recording.uploaded_at,
    Recording.processed_at,
    Recording.audio_purged_at,
)


def _summaries() -> Select[Any]:
    """Recordings with their request's state and owner and the current version's digest.

    ``recordings`` → ``requests`` by primary key; the current version by the unique
    ``(recording_id, version)`` index.
    """
    return (
        select(*_SUMMARY_COLUMNS)
        .join(Request, Request.id == Recording.request_id)
        .outerjoin(
            _CURRENT,
            and_(
                _CURRENT.c.recording_id == Recording.id,
                _CURRENT.c.version == Recording.transcript_version,
            ),
        )
    )


def _summary(row: Any) -> dict[str, Any]:
    verification = row.verification_results
    confidence = verification.get("confidence") if isinstance(verification, dict) else None
    return {
        "id": row.id,
        "request_id": row.request_id,
        "request_state": row.request_state,
        "submitted_by": row.submitted_by,
        "patient_id": row.patient_id,
        "clinician_id": row.clinician_id,
        "status": row.status,
        "error_message": row.error_message,
        "audio_file_size": row.audio_file_size,
        "audio_sha256": row.audio_sha256,
        "duration_seconds": row.duration_seconds,
        "confidence": confidence if isinstance(confidence, int | float) else None,
        "verification_results": verification,
        "transcript_version": row.transcript_version,
        "transcript_digest": row.transcript_digest,
        "uploaded_at": row.uploaded_at,
        "processed_at": row.processed_at,
        "audio_purged_at": row.audio_purged_at,
        "transcript_purged_at": row.purged_at if row.transcript_version else None,
    }


def _text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _missing(recording_id: uuid.UUID) -> str:
    return f"no recording {recording_id}"


class Recordings:
    """The recordings service: what the API, the CLI and the console call."""

    def __init__(self, database: Database, settings: Settings) -> None:
        self.database = database
        self.settings = settings

    # -- metadata ---------------------------------------------------------------------

    async def _visible(self, viewer: Principal, recording_id: uuid.UUID, operation: str) -> Any:
        """The recording's summary row, or a (recorded) 404 for another submitter's."""
        async with self.database.read_session() as session:
            row = (
                await session.execute(_summaries().where(Recording.id == recording_id))
            ).one_or_none()
        if row is None:
            raise NotFound(_missing(recording_id))
        await hide_unless_owner(
            self.database,
            viewer,
            row.submitted_by,
            missing=_missing(recording_id),
            operation=operation,
            target=str(recording_id),
            request_id=row.request_id,
        )
        return row

    async def get(self, viewer: Principal, recording_id: uuid.UUID) -> RecordingPublic:
        """One recording with its current transcript; auditors get it without the text.

        The text's read is recorded (``phi_accessed``) before it is returned.
        """
        operation = "recordings.get"
        await require_role(
            self.database,
            viewer,
            METADATA_READERS,
            what="recordings",
            operation=operation,
            target=str(recording_id),
        )
        row = await self._visible(viewer, recording_id, operation)
        summary = _summary(row)
        if not viewer.has(*READERS):
            return RecordingPublic(**summary, transcript=None, transcript_withheld=True)
        if not row.transcript_version or row.purged_at is not None:
            return RecordingPublic(**summary, transcript=None)
        async with self.database.session() as session:
            current = await self._version_row(session, recording_id, row.transcript_version)
            text = current.text if current is not None else None
            if text is not None:
                await self._record_read(session, viewer, row, row.transcript_version)
        return RecordingPublic(**summary, transcript=text)

    async def summary(self, viewer: Principal, recording_id: uuid.UUID) -> RecordingSummary:
        """One recording's metadata without its text (so not a PHI read), for any role that
        may read metadata: what ``ledgerflow recordings show`` prints."""
        operation = "recordings.summary"
        await require_role(
            self.database,
            viewer,
            METADATA_READERS,
            what="recordings",
            operation=operation,
            target=str(recording_id),
        )
        return RecordingSummary(**_summary(await self._visible(viewer, recording_id, operation)))

    async def list(
        self,
        viewer: Principal,
        *,
        patient_id: str | None = None,
        clinician_id: str | None = None,
        status: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> RecordingsPage:
        """Recordings newest first by keyset on ``(uploaded_at, id)``; submitters see their own.

        Indexes: ``ix_recordings_patient_id`` / ``ix_recordings_clinician_id`` when those
        filter, else ``ix_recordings_status_uploaded_at`` or ``ix_recordings_uploaded_at_id``.
        No transcript text is listed, so nothing here is a PHI read.
        """
        await require_role(
            self.database,
            viewer,
            METADATA_READERS,
            what="recordings",
            operation="recordings.list",
            target="recordings",
        )
        if not 1 <= limit <= 500:
            raise InvalidRequest("must be from 1 to 500", field="limit")
        if status is not None and status not in STATUSES:
            raise InvalidRequest(
                f"unknown status {status!r} (one of: {', '.join(sorted(STATUSES))})",
                field="status",
            )
        query = _summaries()
        for column, value in (
            (Recording.patient_id, patient_id),
            (Recording.clinician_id, clinician_id),
            (Recording.status, status),
        ):
            if value is not None:
                query = query.where(column == value)
        if viewer.role == Role.SUBMITTER:
            query = query.where(Request.submitted_by == viewer.name)
        if created_after is not None:
            query = query.where(Recording.uploaded_at >= created_after)
        if created_before is not None:
            query = query.where(Recording.uploaded_at < created_before)
        if cursor is not None:
            stamp, after_id = decode_cursor(cursor)
            query = query.where(
                or_(
                    Recording.uploaded_at < stamp,
                    and_(Recording.uploaded_at == stamp, Recording.id < after_id),
                )
            )
        query = query.order_by(Recording.uploaded_at.desc(), Recording.id.desc()).limit(limit + 1)
        async with self.database.read_session() as session:
            rows = (await session.execute(query)).all()
        items = [RecordingSummary(**_summary(row)) for row in rows[:limit]]
        more = len(rows) > limit and items
        next_cursor = encode_cursor(items[-1].uploaded_at, items[-1].id) if more else None
        return RecordingsPage(items=items, next_cursor=next_cursor)

    # -- transcripts ------------------------------------------------------------------

    async def versions(
        self, viewer: Principal, recording_id: uuid.UUID
    ) -> builtins.list[TranscriptVersionInfo]:
        """Every version of the transcript, oldest first, without text (metadata)."""
        operation = "recordings.versions"
        await require_role(
            self.database,
            viewer,
            METADATA_READERS,
            what="recordings",
            operation=operation,
            target=str(recording_id),
        )
        await self._visible(viewer, recording_id, operation)
        async with self.database.read_session() as session:
            rows = (
                await session.execute(
                    select(TranscriptVersion)
                    .where(TranscriptVersion.recording_id == recording_id)
                    .order_by(TranscriptVersion.version)
                )
            ).scalars()
            return [_version_info(row) for row in rows]

    async def transcript(
        self, viewer: Principal, recording_id: uuid.UUID, version: int | None = None
    ) -> TranscriptPublic:
        """The current transcript (or ``version``) with its text; the read is recorded."""
        operation = "recordings.transcript"
        await require_role(
            self.database,
            viewer,
            READERS,
            what="transcript text",
            operation=operation,
            target=str(recording_id),
        )
        if version is not None and (isinstance(version, bool) or version < 1):
            raise InvalidRequest("must be a version number from 1", field="version")
        row = await self._visible(viewer, recording_id, operation)
        if not row.transcript_version:
            raise NotReady(f"recording {recording_id} has no transcript yet (status {row.status})")
        wanted = version or row.transcript_version
        async with self.database.session() as session:
            found = await self._version_row(session, recording_id, wanted)
            if found is None:
                raise NotFound(f"recording {recording_id} has no transcript version {wanted}")
            if found.text is None:
                raise await gone(
                    session,
                    row.request_id,
                    "payload",
                    f"the transcript of recording {recording_id}",
                    row.purged_at,
                )
            await self._record_read(session, viewer, row, found.version)
        return TranscriptPublic(
            **_version_info(found).model_dump(),
            recording_id=recording_id,
            text=found.text,
            current_version=row.transcript_version,
        )

    async def correct(
        self,
        viewer: Principal,
        recording_id: uuid.UUID,
        text: str,
        expected_version: int | None,
    ) -> tuple[TranscriptPublic, bool]:
        """Save ``text`` as the next version if the current one is ``expected_version``.

        Returns the version now current and whether this call created it. A retried call
        whose correction already landed (same text, same author, one version on) and a
        text equal to the current one change nothing and return the current version.
        """
        operation = "recordings.correct"
        await require_role(
            self.database,
            viewer,
            READERS,
            what="transcript text",
            operation=operation,
            target=str(recording_id),
        )
        self._check_text(text)
        if expected_version is None:
            raise VersionRequired(
                'If-Match: say which transcript version you corrected, e.g. If-Match: "1"'
            )
        row = await self._visible(viewer, recording_id, operation)
        new_digest = _text_digest(text)
        async with self.database.session() as session:
            locked = (
                await session.execute(
                    select(Recording.transcript_version, Recording.status)
                    .where(Recording.id == recording_id)
                    .with_for_update()
                )
            ).one()
            current_version = locked.transcript_version
            if not current_version:
                raise NotReady(
                    f"recording {recording_id} has no transcript yet (status {locked.status})"
                )
            current = await self._version_row(session, recording_id, current_version)
            assert current is not None  # the version pointer and its row are one write
            if current.text is None:
                raise await gone(
                    session,
                    row.request_id,
                    "payload",
                    f"the transcript of recording {recording_id}",
                    row.purged_at,
                )
            replayed = (
                expected_version == current_version - 1
                and current.digest == new_digest
                and current.created_by == viewer.name
            )
            unchanged = expected_version == current_version and current.digest == new_digest
            if replayed or unchanged:
                return self._public(recording_id, current, current_version), False
            if expected_version != current_version:
                raise VersionMismatch(
                    f"If-Match: the transcript is at version {current_version}, not "
                    f"{expected_version}; read it again and correct that version",
                    current=current_version,
                )
            created = await self._append_version(
                session, viewer, row, current, text, new_digest, expected_version
            )
        return self._public(recording_id, created, created.version), True

    def _check_text(self, text: Any) -> None:
        if not isinstance(text, str):
            raise InvalidRequest("must be a string", field="text")
        if not text.strip():
            raise InvalidRequest("must not be empty", field="text")
        if "\x00" in text:
            raise InvalidRequest("contains a NUL character", field="text")
        limit = self.settings.transcript_max_chars
        if len(text) > limit:
            raise TextTooLarge(
                f"text: {len(text)} characters; at most {limit} (TRANSCRIPT_MAX_CHARS)"
            )

    async def _append_version(
        self,
        session: AsyncSession,
        viewer: Principal,
        row: Any,
        current: TranscriptVersion,
        text: str,
        new_digest: str,
        expected_version: int,
    ) -> TranscriptVersion:
        """The guarded pointer move, the new version row and its audit record."""
        new_version = expected_version + 1
        moved = await session.execute(
            update(Recording)
            .where(Recording.id == row.id, Recording.transcript_version == expected_version)
            .values(transcript=text, transcript_version=new_version)
        )
        if moved.rowcount != 1:  # type: ignore[attr-defined]  # CursorResult of an UPDATE
            raise VersionMismatch(
                f"If-Match: the transcript moved on from version {expected_version}",
                current=expected_version + 1,
            )
        created = TranscriptVersion(
            id=uuid.uuid4(),
            recording_id=row.id,
            version=new_version,
            text=text,
            digest=new_digest,
            source="clinician",
            created_by=viewer.name,
            created_at=utcnow(),
        )
        session.add(created)
        event = TranscriptCorrected(
            recording_id=str(row.id),
            version=new_version,
            previous_version=expected_version,
            old_digest=current.digest,
            new_digest=new_digest,
            channel=viewer.channel,
        )
        await record(session, viewer, [event], row.request_id)
        return created

    @staticmethod
    def _public(
        recording_id: uuid.UUID, version: TranscriptVersion, current: int
    ) -> TranscriptPublic:
        assert version.text is not None
        return TranscriptPublic(
            **_version_info(version).model_dump(),
            recording_id=recording_id,
            text=version.text,
            current_version=current,
        )

    @staticmethod
    async def _version_row(
        session: AsyncSession, recording_id: uuid.UUID, version: int
    ) -> TranscriptVersion | None:
        return (
            await session.execute(
                select(TranscriptVersion).where(
                    TranscriptVersion.recording_id == recording_id,
                    TranscriptVersion.version == version,
                )
            )
        ).scalar_one_or_none()

    @staticmethod
    async def _record_read(
        session: AsyncSession, viewer: Principal, row: Any, version: int
    ) -> None:
        event = PhiAccessed(
            recording_id=str(row.id), resource="transcript", version=version, channel=viewer.channel
        )
        await record(session, viewer, [event], row.request_id)

    # -- audio ------------------------------------------------------------------------

    async def open_audio(
        self, viewer: Principal, recording_id: uuid.UUID, range_header: str | None = None
    ) -> OpenFile:
        """Open the recording's audio (whole, or the one byte range asked for).

        The file is opened first, then the read is recorded (``phi_accessed`` with the
        byte range), then the open file is returned: the caller streams it and closes it.
        """
        operation = "recordings.audio"
        await require_role(
            self.database,
            viewer,
            READERS,
            what="audio",
            operation=operation,
            target=str(recording_id),
        )
        row = await self._visible(viewer, recording_id, operation)
        subject = f"the audio of recording {recording_id}"
        if row.audio_purged_at is not None:
            async with self.database.read_session() as session:
                raise await gone(session, row.request_id, "audio", subject, row.audio_purged_at)
        try:
            path = resolve_audio_path(row.audio_file_path, self.settings.audio_path)
            handle, byte_range = await asyncio.to_thread(open_slice, path, range_header)
        except InvalidAudio as exc:
            raise FileCorrupt(f"{subject}: {exc.message}") from exc
        except FileNotFoundError:
            async with self.database.read_session() as session:
                raise await gone(session, row.request_id, "audio", subject, None) from None
        try:
            async with self.database.session() as session:
                event = PhiAccessed(
                    recording_id=str(row.id),
                    resource="audio",
                    byte_range=byte_range.describe(),
                    channel=viewer.channel,
                )
                await record(session, viewer, [event], row.request_id)
        except BaseException:
            handle.close()
            raise
        return OpenFile(
            name=f"{recording_id}.wav",
            media_type="audio/wav",
            range=byte_range,
            sha256=row.audio_sha256,
            handle=handle,
        )


def _version_info(row: TranscriptVersion) -> TranscriptVersionInfo:
    return TranscriptVersionInfo(
        version=row.version,
        digest=row.digest,
        source=row.source,
        created_by=row.created_by,
        created_at=row.created_at,
        purged=row.text is None,
    )


__all__ = ["STATUSES", "Recordings"]
