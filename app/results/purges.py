"""When and why retention purged a request's data: the 410 answer's words.

Retention (:mod:`app.ops.retention`) records each purge as a ``data_purged`` event on the
system chain with the request's id; this reads it back (``ix_audit_logs_request_id``: a
request has tens of audit rows) to say when, why (which retention age) and who.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.events import DataPurged, parse_event
from app.database.models import AuditLog
from app.results.exceptions import Gone

Category = Literal["payload", "audio", "delivery"]

_WHAT = {
    "payload": "payload bodies (transcripts, results)",
    "audio": "audio files",
    "delivery": "delivery files",
}


async def gone(
    session: AsyncSession,
    request_id: uuid.UUID,
    category: Category,
    subject: str,
    purged_at: datetime | None,
) -> Gone:
    """The :class:`Gone` error for ``subject``, naming when and why it was purged."""
    rows = (
        await session.execute(
            select(AuditLog.event_type, AuditLog.event_data, AuditLog.actor, AuditLog.occurred_at)
            .where(AuditLog.request_id == request_id, AuditLog.event_type == "data_purged")
            .order_by(AuditLog.occurred_at)
        )
    ).all()
    for row in rows:
        event = parse_event(row.event_type, row.event_data)
        if isinstance(event, DataPurged) and event.category == category:
            when = purged_at or row.occurred_at
            reason = (
                f"retention: {_WHAT[category]} are kept {event.retention_days} days after "
                f"a request finishes (purged by {row.actor})"
            )
            return Gone(
                f"{subject} was purged at {when.isoformat()} ({reason})",
                purged_at=when,
                reason=reason,
            )
    if purged_at is not None:
        reason = f"retention purged the {_WHAT[category]}"
        return Gone(
            f"{subject} was purged at {purged_at.isoformat()} ({reason})",
            purged_at=purged_at,
            reason=reason,
        )
    return Gone(
        f"{subject} is missing on the server, and no purge of it is on record; ask an operator",
        reason="missing",
    )


__all__ = ["Category", "gone"]
