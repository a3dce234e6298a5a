"""What was last done to keep the trail honest: the newest checkpoints and the last verify.

Read for the console's overview and audit pages. These read metadata (checkpoint digests,
who verified when), not audit rows about requests, so they are not themselves audited.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.database import Database
from app.database.models import AuditCheckpoint, AuditLog

#: How many of the newest verify records are looked at past refusals and one-request runs.
_VERIFY_LOOKBACK = 20


@dataclass(frozen=True)
class CheckpointSummary:
    """A stored checkpoint without its heads."""

    id: uuid.UUID
    digest: str
    created_at: datetime
    created_by: str
    chain_count: int
    signed: bool


@dataclass(frozen=True)
class VerifySummary:
    """The last completed ``audit verify`` of the whole trail, from its access record."""

    occurred_at: datetime
    actor: str
    rows: int
    filters: dict[str, Any]
    #: Whether it found no problem; ``None`` when the record does not say.
    ok: bool | None


async def latest_checkpoints(session: AsyncSession, limit: int = 1) -> list[CheckpointSummary]:
    """The newest stored checkpoints, newest first (a scan of the small checkpoints table)."""
    rows = await session.execute(
        select(
            AuditCheckpoint.id,
            AuditCheckpoint.digest,
            AuditCheckpoint.created_at,
            AuditCheckpoint.created_by,
            AuditCheckpoint.chain_count,
            AuditCheckpoint.signature,
        )
        .order_by(AuditCheckpoint.created_at.desc(), AuditCheckpoint.id.desc())
        .limit(limit)
    )
    return [
        CheckpointSummary(
            r.id, r.digest, r.created_at, r.created_by, r.chain_count, bool(r.signature)
        )
        for r in rows
    ]


async def last_verify(session: AsyncSession) -> VerifySummary | None:
    """The newest ``audit_accessed`` record of a verify of the whole trail that ran.

    Refusals and verifies of one request's chain are skipped; ``ok`` comes from the
    record's ``outcome`` (``ok`` / ``failed``) where the record carries one.

    Walks ``ix_audit_logs_event_type_occurred_at`` backwards and filters on the event's
    ``action`` (JSON), so it reads the newest access records until it meets a verify.
    """
    rows = await session.execute(
        select(AuditLog.occurred_at, AuditLog.actor, AuditLog.event_data)
        .where(
            AuditLog.event_type == "audit_accessed",
            AuditLog.event_data["action"].as_string() == "verify",
        )
        .order_by(AuditLog.occurred_at.desc(), AuditLog.id.desc())
        .limit(_VERIFY_LOOKBACK)
    )
    for occurred_at, actor, data in rows:
        filters = dict(data.get("filters") or {})
        if data.get("denied") or "request_id" in filters:
            continue  # a refusal, or one request's chain: not the whole trail
        outcome = data.get("outcome")
        return VerifySummary(
            occurred_at,
            actor,
            int(data.get("row_count", 0)),
            filters,
            {"ok": True, "failed": False}.get(outcome) if isinstance(outcome, str) else None,
        )
    return None


@dataclass(frozen=True)
class TrailStatus:
    """The newest checkpoint and the last verify."""

    checkpoint: CheckpointSummary | None
    verify: VerifySummary | None


async def read_trail_status(database: Database) -> TrailStatus:
    """The newest checkpoint and the last verify, in one read transaction."""
    async with database.read_session() as session:
        checkpoints = await latest_checkpoints(session, 1)
        return TrailStatus(checkpoints[0] if checkpoints else None, await last_verify(session))
