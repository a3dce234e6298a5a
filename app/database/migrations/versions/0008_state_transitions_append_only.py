"""Make state_transitions append-only, like audit_logs (triggers on both backends).

Triggers refuse UPDATE and DELETE on both backends and TRUNCATE on PostgreSQL: a request's
history of states is evidence, cross-checked against its chain by ``audit verify``.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SQLITE_UP = [
    """
    CREATE TRIGGER state_transitions_refuse_update BEFORE UPDATE ON state_transitions
    BEGIN SELECT RAISE(ABORT, 'state_transitions is append-only: UPDATE refused'); END
    """,
    """
    CREATE TRIGGER state_transitions_refuse_delete BEFORE DELETE ON state_transitions
    BEGIN SELECT RAISE(ABORT, 'state_transitions is append-only: DELETE refused'); END
    """,
]
_SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS state_transitions_refuse_update",
    "DROP TRIGGER IF EXISTS state_transitions_refuse_delete",
]
_POSTGRES_UP = [
    """
    CREATE FUNCTION state_transitions_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'state_transitions is append-only: % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END
    $$
    """,
    """
    CREATE TRIGGER state_transitions_refuse_update_delete
    BEFORE UPDATE OR DELETE ON state_transitions
    FOR EACH ROW EXECUTE FUNCTION state_transitions_refuse_change()
    """,
    """
    CREATE TRIGGER state_transitions_refuse_truncate BEFORE TRUNCATE ON state_transitions
    FOR EACH STATEMENT EXECUTE FUNCTION state_transitions_refuse_change()
    """,
]
_POSTGRES_DOWN = [
    "DROP TRIGGER IF EXISTS state_transitions_refuse_truncate ON state_transitions",
    "DROP TRIGGER IF EXISTS state_transitions_refuse_update_delete ON state_transitions",
    "DROP FUNCTION IF EXISTS state_transitions_refuse_change()",
]


def upgrade() -> None:
    for statement in _POSTGRES_UP if op.get_bind().dialect.name == "postgresql" else _SQLITE_UP:
        op.execute(statement)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in _POSTGRES_DOWN if postgres else _SQLITE_DOWN:
        op.execute(statement)
