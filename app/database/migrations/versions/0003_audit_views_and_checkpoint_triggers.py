"""SQL views for compliance staff; make audit_checkpoints append-only too.

Views (documented in docs/compliance.md):

* ``audit_events_v`` — one row per audit event with its request's kind, state and
  submitter, and the patient of a transcription request;
* ``audit_chain_heads_v`` — every chain's recorded head (request chains and the system
  chain), the input of a checkpoint;
* ``audit_access_v`` — who read, exported, verified or checkpointed the audit trail.

Triggers refuse UPDATE and DELETE on ``audit_checkpoints`` (and TRUNCATE on PostgreSQL):
a checkpoint is evidence, like the rows it covers.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_EVENTS_V = """
CREATE VIEW audit_events_v AS
SELECT a.id, a.occurred_at, a.event_type, a.severity, a.actor, a.agent_id,
       a.request_id, r.kind AS request_kind, r.state AS request_state,
       r.submitted_by AS request_submitted_by, rec.patient_id,
       a.event_data, a.chain_key, a.seq, a.prev_hash, a.hash
FROM audit_logs a
LEFT JOIN requests r ON r.id = a.request_id
LEFT JOIN recordings rec ON rec.request_id = a.request_id
"""

# Request chain keys are the hyphenated lower-case UUID; SQLite stores ids as 32 hex digits.
_POSTGRES_HEADS_V = """
CREATE VIEW audit_chain_heads_v AS
SELECT CAST(id AS TEXT) AS chain_key, 'request' AS chain_kind, audit_seq AS seq,
       audit_head AS head_hash, updated_at
FROM requests
UNION ALL
SELECT chain_key, 'system', seq, head_hash, updated_at FROM audit_chains
"""
_SQLITE_HEADS_V = """
CREATE VIEW audit_chain_heads_v AS
SELECT lower(substr(id, 1, 8) || '-' || substr(id, 9, 4) || '-' || substr(id, 13, 4) || '-'
             || substr(id, 17, 4) || '-' || substr(id, 21, 12)) AS chain_key,
       'request' AS chain_kind, audit_seq AS seq, audit_head AS head_hash, updated_at
FROM requests
UNION ALL
SELECT chain_key, 'system', seq, head_hash, updated_at FROM audit_chains
"""

_POSTGRES_ACCESS_V = """
CREATE VIEW audit_access_v AS
SELECT id, occurred_at, actor, event_data->>'action' AS action,
       CAST(event_data->>'row_count' AS INTEGER) AS row_count,
       event_data->>'format' AS format,
       CAST(event_data->>'denied' AS BOOLEAN) AS denied,
       event_data->'filters' AS filters
FROM audit_logs WHERE event_type = 'audit_accessed'
"""
_SQLITE_ACCESS_V = """
CREATE VIEW audit_access_v AS
SELECT id, occurred_at, actor, json_extract(event_data, '$.action') AS action,
       json_extract(event_data, '$.row_count') AS row_count,
       json_extract(event_data, '$.format') AS format,
       json_extract(event_data, '$.denied') AS denied,
       json_extract(event_data, '$.filters') AS filters
FROM audit_logs WHERE event_type = 'audit_accessed'
"""

_VIEWS = ("audit_access_v", "audit_chain_heads_v", "audit_events_v")

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
_POSTGRES_TRIGGERS = [
    """
    CREATE FUNCTION audit_checkpoints_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'audit_checkpoints is append-only: % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END
    $$
    """,
    """
    CREATE TRIGGER audit_checkpoints_refuse_update_delete
    BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_checkpoints_refuse_change()
    """,
    """
    CREATE TRIGGER audit_checkpoints_refuse_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_checkpoints_refuse_change()
    """,
]
_POSTGRES_TRIGGERS_DOWN = [
    "DROP TRIGGER IF EXISTS audit_checkpoints_refuse_truncate ON audit_checkpoints",
    "DROP TRIGGER IF EXISTS audit_checkpoints_refuse_update_delete ON audit_checkpoints",
    "DROP FUNCTION IF EXISTS audit_checkpoints_refuse_change()",
]


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.execute(_EVENTS_V)
    op.execute(_POSTGRES_HEADS_V if postgres else _SQLITE_HEADS_V)
    op.execute(_POSTGRES_ACCESS_V if postgres else _SQLITE_ACCESS_V)
    for statement in _POSTGRES_TRIGGERS if postgres else _SQLITE_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in _POSTGRES_TRIGGERS_DOWN if postgres else _SQLITE_TRIGGERS_DOWN:
        op.execute(statement)
    for view in _VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {view}")
