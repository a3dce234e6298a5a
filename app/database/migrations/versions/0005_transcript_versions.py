"""Transcript versions: every transcript kept, the recogniser's first; recordings by request id.

* ``transcript_versions`` — one row per version of a recording's transcript (``asr`` for
  the recogniser's, ``clinician`` for each correction), unique per (recording, version).
  Triggers refuse DELETE (and TRUNCATE on PostgreSQL) and any UPDATE except retention's
  clearing of ``text``: an original is never overwritten.
* ``recordings.transcript_version`` — the version ``recordings.transcript`` holds (0: none).
* existing transcripts become version 1 (``asr``), with their SHA-256.
* ``recordings.id`` becomes the transcription request's id (already so for new rows), so a
  recording is read with the id its upload returned. Nothing referenced ``recordings.id``
  before this revision; the downgrade leaves the ids as they are (harmless).
* ``ix_recordings_uploaded_at_id``, ``ix_recordings_status_uploaded_at`` — the recordings
  list's keyset order, unfiltered and by status.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 09:00:00
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MESSAGE = "transcript_versions keeps every version: only clearing text is allowed"
_COLUMNS = ("id", "recording_id", "version", "digest", "source", "created_by", "created_at")

_SQLITE_UP = [
    f"""
    CREATE TRIGGER transcript_versions_refuse_update BEFORE UPDATE ON transcript_versions
    WHEN NEW.text IS NOT NULL OR {" OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in _COLUMNS)}
    BEGIN SELECT RAISE(ABORT, '{_MESSAGE}: UPDATE refused'); END
    """,
    f"""
    CREATE TRIGGER transcript_versions_refuse_delete BEFORE DELETE ON transcript_versions
    BEGIN SELECT RAISE(ABORT, '{_MESSAGE}: DELETE refused'); END
    """,
]
_SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS transcript_versions_refuse_update",
    "DROP TRIGGER IF EXISTS transcript_versions_refuse_delete",
]
_POSTGRES_UP = [
    f"""
    CREATE FUNCTION transcript_versions_guard() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'UPDATE' AND NEW.text IS NULL
           AND {" AND ".join(f"NEW.{c} IS NOT DISTINCT FROM OLD.{c}" for c in _COLUMNS)} THEN
            RETURN NEW;
        END IF;
        RAISE EXCEPTION '{_MESSAGE}: % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END
    $$
    """,
    """
    CREATE TRIGGER transcript_versions_guard BEFORE UPDATE OR DELETE ON transcript_versions
    FOR EACH ROW EXECUTE FUNCTION transcript_versions_guard()
    """,
    """
    CREATE TRIGGER transcript_versions_refuse_truncate BEFORE TRUNCATE ON transcript_versions
    FOR EACH STATEMENT EXECUTE FUNCTION transcript_versions_guard()
    """,
]
_POSTGRES_DOWN = [
    "DROP TRIGGER IF EXISTS transcript_versions_refuse_truncate ON transcript_versions",
    "DROP TRIGGER IF EXISTS transcript_versions_guard ON transcript_versions",
    "DROP FUNCTION IF EXISTS transcript_versions_guard()",
]

_versions = sa.table(
    "transcript_versions",
    sa.column("id", sa.Uuid()),
    sa.column("recording_id", sa.Uuid()),
    sa.column("version", sa.Integer()),
    sa.column("text", sa.Text()),
    sa.column("digest", sa.String()),
    sa.column("source", sa.String()),
    sa.column("created_by", sa.String()),
    sa.column("created_at", sa.DateTime(timezone=True)),
)
_recordings = sa.table(
    "recordings",
    sa.column("id", sa.Uuid()),
    sa.column("request_id", sa.Uuid()),
    sa.column("transcript", sa.Text()),
    sa.column("transcript_version", sa.Integer()),
    sa.column("uploaded_at", sa.DateTime(timezone=True)),
    sa.column("processed_at", sa.DateTime(timezone=True)),
)


def _backfill() -> None:
    """Existing transcripts become version 1, written by the recogniser."""
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(
            _recordings.c.id,
            _recordings.c.transcript,
            _recordings.c.uploaded_at,
            _recordings.c.processed_at,
        ).where(_recordings.c.transcript.is_not(None))
    ).all()
    if rows:
        bind.execute(
            sa.insert(_versions),
            [
                {
                    "id": uuid.uuid4(),
                    "recording_id": row.id,
                    "version": 1,
                    "text": row.transcript,
                    "digest": hashlib.sha256(row.transcript.encode()).hexdigest(),
                    "source": "asr",
                    "created_by": "transcription.transcribe",
                    "created_at": row.processed_at or row.uploaded_at,
                }
                for row in rows
            ],
        )
    bind.execute(
        sa.update(_recordings)
        .where(_recordings.c.transcript.is_not(None))
        .values(transcript_version=1)
    )


def upgrade() -> None:
    op.execute(
        sa.update(_recordings)
        .where(_recordings.c.id != _recordings.c.request_id)
        .values(id=_recordings.c.request_id)
    )
    op.add_column(
        "recordings",
        sa.Column("transcript_version", sa.Integer(), server_default="0", nullable=False),
    )
    op.create_index(
        "ix_recordings_uploaded_at_id", "recordings", ["uploaded_at", "id"], unique=False
    )
    op.create_index(
        "ix_recordings_status_uploaded_at", "recordings", ["status", "uploaded_at"], unique=False
    )
    op.create_table(
        "transcript_versions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("recording_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["recording_id"],
            ["recordings.id"],
            name=op.f("fk_transcript_versions_recording_id_recordings"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transcript_versions")),
        sa.UniqueConstraint(
            "recording_id", "version", name=op.f("uq_transcript_versions_recording_id_version")
        ),
    )
    _backfill()
    for statement in _POSTGRES_UP if op.get_bind().dialect.name == "postgresql" else _SQLITE_UP:
        op.execute(statement)


def downgrade() -> None:
    for statement in _POSTGRES_DOWN if op.get_bind().dialect.name == "postgresql" else _SQLITE_DOWN:
        op.execute(statement)
    op.drop_table("transcript_versions")
    op.drop_index("ix_recordings_status_uploaded_at", table_name="recordings")
    op.drop_index("ix_recordings_uploaded_at_id", table_name="recordings")
    op.drop_column("recordings", "transcript_version")
