"""PostgreSQL keeps ``audit_logs.event_data`` as written: ``json`` instead of ``jsonb``.

ledgerflow writes event data as canonical JSON text (sorted keys, no whitespace), the very
text each row's hash covers. ``jsonb`` re-prints it its own way, so every verification and
export had to parse and re-encode every row; ``json`` keeps the text, so they hash and copy
it as it is (rows written before keep jsonb's form and are re-encoded as before). SQLite
stores JSON as text already: nothing changes there. The two views that select
``event_data`` are re-created around the change (PostgreSQL cannot alter a column a view
uses); the ``->>`` reads they make work on ``json`` as on ``jsonb``.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26 14:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
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
_ACCESS_V = """
CREATE VIEW audit_access_v AS
SELECT id, occurred_at, actor, event_data->>'action' AS action,
       CAST(event_data->>'row_count' AS INTEGER) AS row_count,
       event_data->>'format' AS format,
       CAST(event_data->>'denied' AS BOOLEAN) AS denied,
       event_data->'filters' AS filters
FROM audit_logs WHERE event_type = 'audit_accessed'
"""


def _retype(to: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP VIEW IF EXISTS audit_access_v")
    op.execute("DROP VIEW IF EXISTS audit_events_v")
    op.execute(f"ALTER TABLE audit_logs ALTER COLUMN event_data TYPE {to} USING event_data::{to}")
    op.execute(_EVENTS_V)
    op.execute(_ACCESS_V)


def upgrade() -> None:
    _retype("json")


def downgrade() -> None:
    _retype("jsonb")
