"""Appending to the ``system`` chain: events no request's lease holder writes.

Used for audit access records and for results a worker could not record because it lost
its lease: writing those to the request's own chain would move the chain head under the
worker that now holds the lease and fence out its legitimate result.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.chain import SYSTEM_CHAIN, ChainHead
from app.audit.events import AuditEvent
from app.database.models import AuditChain, AuditLog


@dataclass(frozen=True)
class SystemEntry:
    """One event for the system chain, optionally about a request."""

    event: AuditEvent
    actor: str
    request_id: uuid.UUID | None = None
    agent_id: str | None = None


async def append_system(
    session: AsyncSession, entries: Sequence[SystemEntry], now: datetime
) -> ChainHead:
    """Append ``entries`` to the system chain under its head row's lock; return the new head.

    Round trips: SELECT ... FOR UPDATE on ``audit_chains`` (primary key), one multi-row
    INSERT, one UPDATE of the head.
    """
    row = (
        await session.execute(
            select(AuditChain.seq, AuditChain.head_hash)
            .where(AuditChain.chain_key == SYSTEM_CHAIN)
            .with_for_update()
        )
    ).one()
    head = ChainHead(SYSTEM_CHAIN, row.seq, row.head_hash)
    rows = [
        head.append(
            entry.event,
            actor=entry.actor,
            occurred_at=now,
            request_id=entry.request_id,
            agent_id=entry.agent_id,
        )
        for entry in entries
    ]
    if rows:
        await session.execute(insert(AuditLog), rows)
        await session.execute(
            update(AuditChain)
            .where(AuditChain.chain_key == SYSTEM_CHAIN)
            .values(seq=head.seq, head_hash=head.hash, updated_at=now)
        )
    return head
