"""Chain the audit checkpoints: seq, version, prev_digest and heads_digest columns.

Existing checkpoints become version 1 (their ``heads`` hold every head, their digest has no
chain fields) numbered by ``created_at``; new ones are version 2, each linked to the one
before by ``prev_digest`` and holding only the heads changed since (see
``app.audit.checkpoint``). The append-only triggers are dropped while the numbers are
filled in and re-created afterwards (SQLite's batch mode rebuilds the table, which drops
its triggers anyway).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SQLITE_TRIGGERS = [
    """
    CREATE TRIGGER audit_checkpoints_refuse_update BEFORE UPDATE ON audit_checkpoints
    BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only: UPDATE refused'); END
    """,
    """
    CREATE TRIGGER audit_checkpoints_refuse_delete BEFORE DELETE ON audit_checkpoints
    BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only: DELETE refused'); END
    """,
]
_SQLITE_TRIGGERS_DOWN = [
    "DROP TRIGGER IF EXISTS audit_checkpoints_refuse_update",
    "DROP TRIGGER IF EXISTS audit_checkpoints_refuse_delete",
]
# The trigger function of migration 0003 stays; only the row trigger is lifted meanwhile.
_POSTGRES_TRIGGERS = [
    """
    CREATE TRIGGER audit_checkpoints_refuse_update_delete
    BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_checkpoints_refuse_change()
    """,
]
_POSTGRES_TRIGGERS_DOWN = [
    "DROP TRIGGER IF EXISTS audit_checkpoints_refuse_update_delete ON audit_checkpoints",
]
_NUMBER = """
UPDATE audit_checkpoints SET version = 1, seq = (
    SELECT count(*) FROM audit_checkpoints AS earlier
    WHERE earlier.created_at < audit_checkpoints.created_at
       OR (earlier.created_at = audit_checkpoints.created_at
           AND earlier.id <= audit_checkpoints.id))
"""


def _triggers(up: bool) -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if up:
        statements = _POSTGRES_TRIGGERS if postgres else _SQLITE_TRIGGERS
    else:
        statements = _POSTGRES_TRIGGERS_DOWN if postgres else _SQLITE_TRIGGERS_DOWN
    for statement in statements:
        op.execute(statement)


def upgrade() -> None:
    _triggers(up=False)
    with op.batch_alter_table("audit_checkpoints") as batch:
        batch.add_column(sa.Column("seq", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("version", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("prev_digest", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("heads_digest", sa.String(length=64), nullable=True))
    op.execute(_NUMBER)
    with op.batch_alter_table("audit_checkpoints") as batch:
        batch.alter_column("seq", existing_type=sa.Integer(), nullable=False)
        batch.alter_column("version", existing_type=sa.Integer(), nullable=False)
        batch.create_unique_constraint("uq_audit_checkpoints_seq", ["seq"])
    _triggers(up=True)


def downgrade() -> None:
    _triggers(up=False)
    with op.batch_alter_table("audit_checkpoints") as batch:
        batch.drop_constraint("uq_audit_checkpoints_seq", type_="unique")
        batch.drop_column("heads_digest")
        batch.drop_column("prev_digest")
        batch.drop_column("version")
        batch.drop_column("seq")
    _triggers(up=True)
