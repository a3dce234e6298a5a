"""The worker's hot SQL, one function each, with the index it uses."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
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


async def extend_leases(
    session: AsyncSession, worker_id: str, request_ids: Collection[uuid.UUID], until: datetime
) -> set[uuid.UUID]:
    """Heartbeat: push out the lease of the requests this worker is driving right now.

    One UPDATE by primary key (``id IN (...) AND lease_owner = me``), returning the ids it
    renewed. Only ids the worker is driving: a request it dropped (abandoned after an
    error, or claimed in a transaction whose reply was lost) is not renewed, so its lease
    runs out and any worker recovers it. A request taken over by another worker has another
    ``lease_owner`` and is left alone (its id is missing from the result). A request
    cancelled while its step runs keeps its lease until the step returns, so its files are
    not removed under a live agent. Does not bump ``version``: extending a lease is not a
    change of the request.
    """
    if not request_ids:
        return set()
    result = await session.execute(
        update(REQUESTS)
        .where(REQUESTS.c.id.in_(sorted(request_ids)), REQUESTS.c.lease_owner == worker_id)
        .values(lease_expires_at=until)
        .returning(REQUESTS.c.id)
    )
    return {_as_uuid(value) for value in result.scalars()}


async def release_lease(session: AsyncSession, request_id: uuid.UUID, worker_id: str) -> None:
    """Give up this worker's lease on a request it no longer drives (a late result was
    discarded); a lease another worker took over is left alone. Not a change of state."""
    await session.execute(
        update(REQUESTS)
        .where(REQUESTS.c.id == request_id, REQUESTS.c.lease_owner == worker_id)
        .values(lease_owner=None, lease_expires_at=None)
    )


def _as_uuid(value: object) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
