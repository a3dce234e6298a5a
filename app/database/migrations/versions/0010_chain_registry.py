"""The chain registry: registry chain heads, every existing request chain registered.

Creates the head rows of the registry chains (``registry-0`` … ``registry-f`` in
``audit_chains``) and registers every request chain that already exists: its opening and,
for a request that already ended, its current head as the terminal head (nothing appends
to a request's chain after it ends). The entries are ``chains_registered`` events hashed
onto ``registry-0`` exactly as the write path hashes them (``app.audit.chain``), 500
requests per row. ``audit_chain_heads_v`` labels registry chains as such.

Downgrade removes the registry rows (lifting the append-only triggers for the moment) and
restores the view of migration 0003.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from app.audit.chain import ChainHead
from app.audit.events import ChainsRegistered, RegisteredEnd
from app.audit.registry import REGISTRY_CHAINS, TERMINAL_STATES

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CHUNK = 500
_ACTOR = "migration:0010"

_HEADS_V = {
    "postgresql": """
CREATE VIEW audit_chain_heads_v AS
SELECT CAST(id AS TEXT) AS chain_key, 'request' AS chain_kind, audit_seq AS seq,
       audit_head AS head_hash, updated_at
FROM requests
UNION ALL
SELECT chain_key, {kind}, seq, head_hash, updated_at FROM audit_chains
""",
    "sqlite": """
CREATE VIEW audit_chain_heads_v AS
SELECT lower(substr(id, 1, 8) || '-' || substr(id, 9, 4) || '-' || substr(id, 13, 4) || '-'
             || substr(id, 17, 4) || '-' || substr(id, 21, 12)) AS chain_key,
       'request' AS chain_kind, audit_seq AS seq, audit_head AS head_hash, updated_at
FROM requests
UNION ALL
SELECT chain_key, {kind}, seq, head_hash, updated_at FROM audit_chains
""",
}
_KIND_NOW = "CASE WHEN chain_key = 'system' THEN 'system' ELSE 'registry' END"
_KIND_BEFORE = "'system'"

_TRIGGERS_OFF = {
    "postgresql": ["ALTER TABLE audit_logs DISABLE TRIGGER audit_logs_refuse_update_delete"],
    "sqlite": ["DROP TRIGGER IF EXISTS audit_logs_refuse_delete"],
}
_TRIGGERS_ON = {
    "postgresql": ["ALTER TABLE audit_logs ENABLE TRIGGER audit_logs_refuse_update_delete"],
    "sqlite": [
        """
        CREATE TRIGGER audit_logs_refuse_delete BEFORE DELETE ON audit_logs
        BEGIN SELECT RAISE(ABORT, 'audit_logs is append-only: DELETE refused'); END
        """
    ],
}

_audit_logs = sa.table(
    "audit_logs",
    sa.column("id", sa.Uuid()),
    sa.column("chain_key", sa.String()),
    sa.column("seq", sa.Integer()),
    sa.column("request_id", sa.Uuid()),
    sa.column("event_type", sa.String()),
    sa.column("severity", sa.String()),
    sa.column("actor", sa.String()),
    sa.column("agent_id", sa.String()),
    sa.column("occurred_at", sa.DateTime(timezone=True)),
    sa.column("event_data", sa.JSON()),
    sa.column("prev_hash", sa.String()),
    sa.column("hash", sa.String()),
)
_audit_chains = sa.table(
    "audit_chains",
    sa.column("chain_key", sa.String()),
    sa.column("seq", sa.Integer()),
    sa.column("head_hash", sa.String()),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)
_requests = sa.table(
    "requests",
    sa.column("id", sa.Uuid()),
    sa.column("state", sa.String()),
    sa.column("audit_seq", sa.Integer()),
    sa.column("audit_head", sa.String()),
    sa.column("created_at", sa.DateTime(timezone=True)),
)


def _stored_time(moment: datetime, dialect: str) -> datetime:
    # SQLite keeps UTC as naive text (see app.database.types.UTCDateTime).
    return moment.replace(tzinfo=None) if dialect == "sqlite" else moment


def _register_existing(bind: sa.Connection, now: datetime) -> ChainHead:
    head = ChainHead(REGISTRY_CHAINS[0])
    requests = bind.execute(
        sa.select(
            _requests.c.id, _requests.c.state, _requests.c.audit_seq, _requests.c.audit_head
        ).order_by(_requests.c.created_at, _requests.c.id)
    ).all()
    for start in range(0, len(requests), _CHUNK):
        chunk = requests[start : start + _CHUNK]
        entry = ChainsRegistered(
            opened=[str(r.id) for r in chunk],
            closed=[
                RegisteredEnd(
                    request_id=str(r.id), seq=r.audit_seq, hash=r.audit_head, state=r.state
                )
                for r in chunk
                if r.state in TERMINAL_STATES and r.audit_seq > 0
            ],
        )
        row = dict(head.append(entry, actor=_ACTOR, occurred_at=now))
        row["occurred_at"] = _stored_time(now, bind.dialect.name)
        bind.execute(sa.insert(_audit_logs), [row])
    return head


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    now = datetime.now(UTC)
    stamp = _stored_time(now, dialect)
    bind.execute(
        sa.insert(_audit_chains),
        [
            {"chain_key": key, "seq": 0, "head_hash": "", "updated_at": stamp}
            for key in REGISTRY_CHAINS
        ],
    )
    head = _register_existing(bind, now)
    if head.seq:
        bind.execute(
            sa.update(_audit_chains)
            .where(_audit_chains.c.chain_key == head.chain_key)
            .values(seq=head.seq, head_hash=head.hash, updated_at=stamp)
        )
    op.execute("DROP VIEW IF EXISTS audit_chain_heads_v")
    op.execute(_HEADS_V[dialect].format(kind=_KIND_NOW))


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute("DROP VIEW IF EXISTS audit_chain_heads_v")
    op.execute(_HEADS_V[dialect].format(kind=_KIND_BEFORE))
    for statement in _TRIGGERS_OFF[dialect]:
        op.execute(statement)
    op.execute("DELETE FROM audit_logs WHERE chain_key LIKE 'registry-%'")
    for statement in _TRIGGERS_ON[dialect]:
        op.execute(statement)
    op.execute("DELETE FROM audit_chains WHERE chain_key LIKE 'registry-%'")
