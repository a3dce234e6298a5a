"""Webhook callbacks: the outbox, where requests and clients say where callbacks go, and
each client's signing secret.

* ``callback_outbox`` — one row per callback owed, written in the same transaction as the
  change of state it announces; ``sent_at`` or ``failed_at`` once it is settled;
* ``ix_callback_outbox_due`` — partial on ``sent_at IS NULL AND failed_at IS NULL``:
  workers look only at what is still owed, in due order;
* ``requests.callback_url`` — where the request's callbacks go (null: none);
* ``api_clients.callback_url`` — a client's default for the requests it submits;
* ``api_clients.webhook_secret`` — the HMAC key of a client's callbacks. Clients made
  before this migration get a random one (``ledgerflow clients webhook NAME
  --rotate-secret`` makes and shows a new one).

Plain ``ALTER TABLE ... ADD/DROP COLUMN`` on both backends, never batch mode (see 0004).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08 10:00:00
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SECRET_PREFIX = "whsec_"


def upgrade() -> None:
    op.create_table(
        "callback_outbox",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("client", sa.String(length=128), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(length=128), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["requests.id"],
            name=op.f("fk_callback_outbox_request_id_requests"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callback_outbox")),
    )
    op.create_index(
        "ix_callback_outbox_due",
        "callback_outbox",
        ["not_before"],
        unique=False,
        postgresql_where=sa.text("sent_at IS NULL AND failed_at IS NULL"),
        sqlite_where=sa.text("sent_at IS NULL AND failed_at IS NULL"),
    )
    op.create_index(
        "ix_callback_outbox_request_id", "callback_outbox", ["request_id"], unique=False
    )
    op.add_column("requests", sa.Column("callback_url", sa.Text()))
    op.add_column("api_clients", sa.Column("callback_url", sa.Text()))
    op.add_column("api_clients", sa.Column("webhook_secret", sa.String(length=64)))
    clients = sa.table("api_clients", sa.column("id", sa.Uuid()), sa.column("webhook_secret"))
    bind = op.get_bind()
    for (client_id,) in bind.execute(sa.select(clients.c.id)).all():
        bind.execute(
            clients.update()
            .where(clients.c.id == client_id)
            .values(webhook_secret=_SECRET_PREFIX + secrets.token_urlsafe(32))
        )


def downgrade() -> None:
    op.drop_column("api_clients", "webhook_secret")
    op.drop_column("api_clients", "callback_url")
    op.drop_column("requests", "callback_url")
    op.drop_index("ix_callback_outbox_request_id", table_name="callback_outbox")
    op.drop_index("ix_callback_outbox_due", table_name="callback_outbox")
    op.drop_table("callback_outbox")
