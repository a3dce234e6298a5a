"""File cleanups: removals of a request's files owed after it was cancelled or failed.

* ``file_cleanups`` — one row per owed removal, written in the same transaction as the
  change of state; ``done_at`` set once the files are gone and the removal audited;
* ``ix_file_cleanups_owed`` — partial on ``done_at IS NULL``: workers look only at what
  is still owed.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 16:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "file_cleanups",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_by", sa.String(length=128), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["requests.id"],
            name=op.f("fk_file_cleanups_request_id_requests"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_file_cleanups")),
    )
    op.create_index(
        "ix_file_cleanups_owed",
        "file_cleanups",
        ["created_at"],
        unique=False,
        postgresql_where=sa.text("done_at IS NULL"),
        sqlite_where=sa.text("done_at IS NULL"),
    )
    op.create_index("ix_file_cleanups_request_id", "file_cleanups", ["request_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_file_cleanups_request_id", table_name="file_cleanups")
    op.drop_index("ix_file_cleanups_owed", table_name="file_cleanups")
    op.drop_table("file_cleanups")
