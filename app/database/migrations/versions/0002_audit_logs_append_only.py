"""Make audit_logs append-only (triggers) and create the system audit chain's head row.

Triggers refuse UPDATE and DELETE on both backends and TRUNCATE on PostgreSQL.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 09:20:00

Note for later migrations: SQLite batch mode rebuilds a table by copying it, which drops
its triggers. Any batch operation on audit_logs must re-create these triggers.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SQLITE_UP = [
    """
    CREATE TRIGGER audit_logs_refuse_update BEFORE UPDATE ON audit_logs
    BEGIN SELECT RAISE(ABORT, 'audit_logs is append-only: UPDATE refused'); END
    """,
    """
    CREATE TRIGGER audit_logs_refuse_delete BEFORE DELETE ON audit_logs
    BEGIN SELECT RAISE(ABORT, 'audit_logs is append-only: DELETE refused'); END
    """,
]
_SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS audit_logs_refuse_update",
    "DROP TRIGGER IF EXISTS audit_logs_refuse_delete",
]
_POSTGRES_UP = [
    """
    CREATE FUNCTION audit_logs_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'audit_logs is append-only: % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END
    $$
    """,
    """
    CREATE TRIGGER audit_logs_refuse_update_delete BEFORE UPDATE OR DELETE ON audit_logs
    FOR EACH ROW EXECUTE FUNCTION audit_logs_refuse_change()
    """,
    """
    CREATE TRIGGER audit_logs_refuse_truncate BEFORE TRUNCATE ON audit_logs
    FOR EACH STATEMENT EXECUTE FUNCTION audit_logs_refuse_change()
    """,
]
_POSTGRES_DOWN = [
    "DROP TRIGGER IF EXISTS audit_logs_refuse_truncate ON audit_logs",
    "DROP TRIGGER IF EXISTS audit_logs_refuse_update_delete ON audit_logs",
    "DROP FUNCTION IF EXISTS audit_logs_refuse_change()",
]


def _run(statements: list[str]) -> None:
    for statement in statements:
        op.execute(statement)


_SYSTEM_CHAIN_UP = (
    "INSERT INTO audit_chains (chain_key, seq, head_hash, updated_at) "
    "VALUES ('system', 0, '', CURRENT_TIMESTAMP)"
)
_SYSTEM_CHAIN_DOWN = "DELETE FROM audit_chains WHERE chain_key = 'system'"


def upgrade() -> None:
    _run(_POSTGRES_UP if op.get_bind().dialect.name == "postgresql" else _SQLITE_UP)
    op.execute(_SYSTEM_CHAIN_UP)


def downgrade() -> None:
    op.execute(_SYSTEM_CHAIN_DOWN)
    _run(_POSTGRES_DOWN if op.get_bind().dialect.name == "postgresql" else _SQLITE_DOWN)
