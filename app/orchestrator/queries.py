"""The worker's hot SQL, one function each, with the index it uses."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.orchestrator.changes import REQUESTS
from app.orchestrator.states import State


async def select_claimable(
    session: AsyncSession, kinds: Sequence[str], now: datetime, limit: int
) -> Sequence[Any]:
    """Lock up to ``limit`` runnable requests in claim order (priority, then age).

    Runnable: ``pending`` whose ``not_before`` has passed, or ``running`` whose lease
    expired. Walks ``ix_requests_claim`` (partial on those two states, ordered by
    ``priority DESC, created_at``). PostgreSQL: ``FOR UPDATE SKIP LOCKED`` so concurrent
    workers take disjoint rows; SQLite: the write transaction (``BEGIN IMMEDIATE``) already
    excludes every other writer. The caller writes the lease in the same transaction.
    """
    query = (
        select(REQUESTS)
        .where(
            REQUESTS.c.state.in_((State.PENDING, State.RUNNING)),
            REQUESTS.c.kind.in_(kinds),
            or_(
                and_(REQUESTS.c.state == State.PENDING, REQUESTS.c.not_before <= now),
                and_(REQUESTS.c.state == State.RUNNING, REQUESTS.c.lease_expires_at <= now),
            ),
        )
        .order_by(REQUESTS.c.priority.desc(), REQUESTS.c.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return (await session.execute(query)).all()


async def extend_leases(session: AsyncSession, worker_id: str, until: datetime) -> int:
    """Heartbeat: push out the lease of every request this worker still holds.

    One UPDATE for all of the worker's requests (``ix_requests_state_created_at`` narrows to
    running rows). A request taken over by another worker has another ``lease_owner`` and is
    left alone. Does not bump ``version``: extending a lease is not a change of the request.
    """
    result = await session.execute(
        update(REQUESTS)
        .where(REQUESTS.c.state == State.RUNNING, REQUESTS.c.lease_owner == worker_id)
        .values(lease_expires_at=until)
    )
    return int(getattr(result, "rowcount", 0) or 0)
