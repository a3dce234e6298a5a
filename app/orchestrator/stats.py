"""Figures about the workload, read for people (the console's overview) and for Prometheus.

Each function takes a read session and runs one or two statements; the docstring names
the index it uses. Counting requests by kind and state reads every row of ``requests``:
callers that poll it often cache the answer (``/metrics`` does).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, union
from sqlalchemy.ext.asyncio import AsyncSession

from app.database import Database
from app.database.models import AgentExecution, Approval, Escalation, Request
from app.database.types import utcnow
from app.orchestrator.states import State


@dataclass(frozen=True)
class RequestCount:
    """How many requests of one kind are in one state."""

    kind: str
    state: str
    count: int


async def count_requests(session: AsyncSession) -> list[RequestCount]:
    """Requests by kind and state (a full scan of ``requests``; see the module docstring)."""
    rows = await session.execute(
        select(Request.kind, Request.state, func.count())
        .group_by(Request.kind, Request.state)
        .order_by(Request.kind, Request.state)
    )
    return [RequestCount(str(kind), str(state), int(n)) for kind, state, n in rows]


async def queue_depth(session: AsyncSession, now: datetime) -> int:
    """Pending requests a worker could claim now (``ix_requests_state_created_at``)."""
    query = (
        select(func.count())
        .select_from(Request)
        .where(Request.state == State.PENDING, Request.not_before <= now)
    )
    return int((await session.execute(query)).scalar_one())


async def workers_seen(
    session: AsyncSession, agent_ids: Sequence[str], since: datetime, now: datetime
) -> list[str]:
    """Workers that started a step since ``since`` or hold a live lease now, by id.

    Steps by ``ix_agent_executions_agent_id_started_at`` (one range per agent id), leases by
    ``ix_requests_state_created_at``. A worker that found nothing to do leaves no trace.
    """
    started = select(AgentExecution.worker_id.label("worker_id")).where(
        AgentExecution.agent_id.in_(agent_ids),
        AgentExecution.started_at >= since,
        AgentExecution.worker_id.is_not(None),
    )
    leasing = select(Request.lease_owner.label("worker_id")).where(
        Request.state == State.RUNNING,
        Request.lease_expires_at > now,
        Request.lease_owner.is_not(None),
    )
    rows = await session.execute(union(started, leasing))
    return sorted(str(worker) for (worker,) in rows)


@dataclass(frozen=True)
class Waiting:
    """Gates waiting for a person: how many, and since when the oldest has waited."""

    count: int
    oldest_since: datetime | None
    oldest_id: uuid.UUID | None


async def pending_approvals(session: AsyncSession) -> Waiting:
    """Pending approvals (``ix_approvals_status_requested_at``: a count and the first row)."""
    where = Approval.status == "pending"
    count = (await session.execute(select(func.count()).where(where))).scalar_one()
    oldest = (
        await session.execute(
            select(Approval.id, Approval.requested_at)
            .where(where)
            .order_by(Approval.requested_at)
            .limit(1)
        )
    ).one_or_none()
    if oldest is None:
        return Waiting(int(count), None, None)
    return Waiting(int(count), oldest.requested_at, oldest.id)


async def open_escalations(session: AsyncSession) -> Waiting:
    """Open escalations (``ix_escalations_status_opened_at``: a count and the first row)."""
    where = Escalation.status == "open"
    count = (await session.execute(select(func.count()).where(where))).scalar_one()
    oldest = (
        await session.execute(
            select(Escalation.id, Escalation.opened_at)
            .where(where)
            .order_by(Escalation.opened_at)
            .limit(1)
        )
    ).one_or_none()
    if oldest is None:
        return Waiting(int(count), None, None)
    return Waiting(int(count), oldest.opened_at, oldest.id)


#: "Workers seen" looks back this far.
WORKERS_WINDOW = timedelta(minutes=1)


@dataclass(frozen=True)
class Overview:
    """The workload at a glance: what the console's overview page shows."""

    read_at: datetime
    counts: list[RequestCount]
    queue_depth: int
    approvals: Waiting
    escalations: Waiting
    workers: list[str]


async def read_overview(database: Database, agent_ids: Sequence[str]) -> Overview:
    """Every overview figure, read in one read transaction (seven short statements)."""
    now = utcnow()
    async with database.read_session() as session:
        return Overview(
            read_at=now,
            counts=await count_requests(session),
            queue_depth=await queue_depth(session, now),
            approvals=await pending_approvals(session),
            escalations=await open_escalations(session),
            workers=await workers_seen(session, agent_ids, now - WORKERS_WINDOW, now),
        )
