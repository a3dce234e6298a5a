"""Invariant checks by query: what the database holds, not what the code says it did."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable

from sqlalchemy import func, select

from app.audit.verify import verify_database
from app.database import Database
from app.database.models import AgentExecution, AuditLog, Request, StateTransition
from app.orchestrator.worker import Worker


async def assert_ledger_consistent(database: Database) -> None:
    """Each request's transitions match its state_changed events one to one and in order;
    its state is the last transition's target; every hash chain verifies."""
    async with database.read_session() as session:
        transitions: dict[uuid.UUID, list[tuple[str | None, str]]] = defaultdict(list)
        for t in (
            await session.execute(
                select(StateTransition).order_by(StateTransition.created_at, StateTransition.id)
            )
        ).scalars():
            transitions[t.request_id].append((t.from_state, t.to_state))
        events: dict[uuid.UUID, list[tuple[str | None, str]]] = defaultdict(list)
        for e in (
            await session.execute(
                select(AuditLog)
                .where(AuditLog.event_type == "state_changed", AuditLog.chain_key != "system")
                .order_by(AuditLog.chain_key, AuditLog.seq)
            )
        ).scalars():
            assert e.request_id is not None
            events[e.request_id].append((e.event_data["from_state"], e.event_data["to_state"]))
        requests = {r.id: r.state for r in (await session.execute(select(Request))).scalars()}
        for request_id, state in requests.items():
            assert transitions[request_id] == events[request_id], request_id
            assert transitions[request_id][-1][1] == state, (request_id, transitions[request_id])
        checked, problems = await verify_database(session)
        assert problems == [], problems
        assert checked >= len(requests)  # every request has at least its submit events


async def succeeded_per_step(database: Database) -> Counter[tuple[uuid.UUID, str]]:
    """How many ``agent_succeeded`` events each (request, step) has."""
    async with database.read_session() as session:
        rows = (
            await session.execute(
                select(AuditLog.request_id, AuditLog.event_data).where(
                    AuditLog.event_type == "agent_succeeded"
                )
            )
        ).all()
    return Counter((rid, data["step"]) for rid, data in rows)


async def executions(database: Database, request_id: uuid.UUID) -> list[tuple[str, int, str]]:
    """(step, attempt, status) of a request's executions in order."""
    async with database.read_session() as session:
        rows = (
            await session.execute(
                select(AgentExecution.step, AgentExecution.attempt, AgentExecution.status)
                .where(AgentExecution.request_id == request_id)
                .order_by(
                    AgentExecution.step_index, AgentExecution.attempt, AgentExecution.started_at
                )
            )
        ).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


async def event_types(database: Database, request_id: uuid.UUID) -> list[str]:
    """Event types on a request's own chain, in order."""
    async with database.read_session() as session:
        return list(
            (
                await session.execute(
                    select(AuditLog.event_type)
                    .where(AuditLog.chain_key == str(request_id))
                    .order_by(AuditLog.seq)
                )
            ).scalars()
        )


async def active_requests(database: Database) -> int:
    """How many requests are still pending or running."""
    async with database.read_session() as session:
        query = select(func.count()).where(Request.state.in_(("pending", "running")))
        return int((await session.execute(query)).scalar_one())


async def drive_until_settled(
    make_worker: Callable[[], Worker], database: Database, passes: int = 200
) -> None:
    """Run fresh workers until idle, until no request is active (waiting out backoffs)."""
    for _ in range(passes):
        await asyncio.wait_for(make_worker().run(until_idle=True), timeout=120)
        if not await active_requests(database):
            return
        await asyncio.sleep(0.05)  # a retry is waiting out its backoff
    raise AssertionError(f"requests still active after {passes} worker passes")
