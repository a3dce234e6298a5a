"""Retention and legal hold: hold columns on requests, purge markers, the retention index.

* ``requests.legal_hold_at``, ``legal_hold_by``, ``legal_hold_reason`` — a set
  ``legal_hold_at`` blocks every purge of the request;
* ``requests.purged_at`` — when the payload bodies were purged (digests stay);
* ``recordings.audio_purged_at`` and ``data_deliveries.purged_at`` — when the files went;
* ``ix_requests_retention`` — not yet purged requests by ``completed_at``;
  ``ix_recordings_audio_retained`` and ``ix_data_deliveries_retained`` — rows whose files
  are still on disk (partial indexes: they only hold what retention may still purge).

Plain ``ALTER TABLE ... ADD/DROP COLUMN`` on both backends (SQLite 3.35+ drops columns
natively), never batch mode: rebuilding ``requests`` on SQLite would have to drop a table
that views and ``ON DELETE RESTRICT`` foreign keys point at.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("requests", sa.Column("legal_hold_at", sa.DateTime(timezone=True)))
    op.add_column("requests", sa.Column("legal_hold_by", sa.String(length=128)))
    op.add_column("requests", sa.Column("legal_hold_reason", sa.Text()))
    op.add_column("requests", sa.Column("purged_at", sa.DateTime(timezone=True)))
    op.add_column("recordings", sa.Column("audio_purged_at", sa.DateTime(timezone=True)))
    op.add_column("data_deliveries", sa.Column("purged_at", sa.DateTime(timezone=True)))
    op.create_index(
        "ix_requests_retention",
        "requests",
        ["completed_at"],
        unique=False,
        postgresql_where=sa.text("purged_at IS NULL"),
        sqlite_where=sa.text("purged_at IS NULL"),
    )
    op.create_index(
        "ix_recordings_audio_retained",
        "recordings",
        ["request_id"],
        unique=False,
        postgresql_where=sa.text("audio_purged_at IS NULL"),
        sqlite_where=sa.text("audio_purged_at IS NULL"),
    )
    op.create_index(
        "ix_data_deliveries_retained",
        "data_deliveries",
        ["request_id"],
        unique=False,
        postgresql_where=sa.text("purged_at IS NULL"),
        sqlite_where=sa.text("purged_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_data_deliveries_retained", table_name="data_deliveries")
    op.drop_index("ix_recordings_audio_retained", table_name="recordings")
    op.drop_index("ix_requests_retention", table_name="requests")
    op.drop_column("data_deliveries", "purged_at")
    op.drop_column("recordings", "audio_purged_at")
    op.drop_column("requests", "purged_at")
    op.drop_column("requests", "legal_hold_reason")
    op.drop_column("requests", "legal_hold_by")
    op.drop_column("requests", "legal_hold_at")
