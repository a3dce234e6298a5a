"""Submits share transactions: many at once are written together, each answered on its own."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from app.database import Database
from app.database.models import AuditLog, Request, StateTransition
from app.ids import uuid7_time_ms
from app.orchestrator.engine import Orchestrator
from app.orchestrator.exceptions import IdempotencyConflict, InvalidRequest, QueueFull
from app.orchestrator.views import RequestView
from tests.support.agents import engine_workflows


async def _count(database: Database, model: object) -> int:
    async with database.read_session() as session:
        query = select(func.count()).select_from(model)  # type: ignore[arg-type]
        return int((await session.execute(query)).scalar_one())


async def test_concurrent_submits_share_transactions_and_each_gets_its_request(
    database: Database,
) -> None:
    orchestrator = Orchestrator(database, engine_workflows(), max_queued_requests=0)
    made = await asyncio.gather(
        *(orchestrator.submit("single", {"numbers": [i]}, "svc") for i in range(200))
    )
    writer = orchestrator._submits
    assert writer.submits == 200 and writer.batches < 50  # group commit, not one each
    assert len({m.id for m in made}) == 200
    assert [m.payload["numbers"] for m in made] == [[i] for i in range(200)]
    assert all(m.id.version == 7 for m in made)  # time-ordered keys
    assert abs(uuid7_time_ms(made[0].id) - made[0].created_at.timestamp() * 1000) < 5_000
    # Each request has its own submit transition and chain start, as if submitted alone.
    assert await _count(database, Request) == 200
    assert await _count(database, StateTransition) == 200
    async with database.read_session() as session:
        per_request = (
            await session.execute(
                select(AuditLog.request_id, func.count())
                .where(AuditLog.request_id.is_not(None))
                .group_by(AuditLog.request_id)
            )
        ).all()
    assert len(per_request) == 200 and {n for _, n in per_request} == {2}
    again = await orchestrator.get(made[42].id)
    assert again.model_dump() == made[42].model_dump()


async def test_the_same_key_submitted_at_once_makes_one_request(database: Database) -> None:
    orchestrator = Orchestrator(database, engine_workflows(), max_queued_requests=0)
    same = await asyncio.gather(
        *(orchestrator.submit("single", {"numbers": [1]}, "svc", "k-1") for _ in range(20))
    )
    assert len({s.id for s in same}) == 1
    outcomes = await asyncio.gather(
        *(orchestrator.submit("single", {"numbers": [n]}, "svc", "k-2") for n in range(5)),
        return_exceptions=True,
    )
    made = [o for o in outcomes if isinstance(o, RequestView)]
    refused = [o for o in outcomes if isinstance(o, IdempotencyConflict)]
    assert len(made) == 1 and len(refused) == 4
    assert await _count(database, Request) == 2
    # Another submitter's identical key is theirs alone.
    theirs = await orchestrator.submit("single", {"numbers": [1]}, "svc-b", "k-1")
    assert theirs.id != same[0].id


async def test_a_full_queue_admits_only_its_room_and_still_answers_known_keys(
    database: Database,
) -> None:
    orchestrator = Orchestrator(database, engine_workflows(), max_queued_requests=5)
    known = await orchestrator.submit("single", {"numbers": [0]}, "svc", "known")
    outcomes = await asyncio.gather(
        *(orchestrator.submit("single", {"numbers": [i]}, "svc") for i in range(1, 9)),
        orchestrator.submit("single", {"numbers": [0]}, "svc", "known"),
        return_exceptions=True,
    )
    created = [o for o in outcomes[:8] if isinstance(o, RequestView)]
    full = [o for o in outcomes[:8] if isinstance(o, QueueFull)]
    assert len(created) == 4 and len(full) == 4
    assert isinstance(outcomes[8], RequestView) and outcomes[8].id == known.id
    assert await _count(database, Request) == 5


async def test_submit_many_checks_everything_before_writing_anything(database: Database) -> None:
    orchestrator = Orchestrator(database, engine_workflows(), max_queued_requests=0)
    with pytest.raises(InvalidRequest) as caught:
        await orchestrator.submit_many(
            [
                {"kind": "single", "payload": {"numbers": [1]}, "submitted_by": "svc"},
                {"kind": "nope", "payload": {}, "submitted_by": "svc"},
                {"kind": "single", "payload": {"numbers": [2]}, "submitted_by": " "},
            ]
        )
    assert {p.field for p in caught.value.problems} == {"1.kind", "2.submitted_by"}
    assert await _count(database, Request) == 0
    with pytest.raises(InvalidRequest, match="1 to 500"):
        await orchestrator.submit_many([])

    outcomes = await orchestrator.submit_many(
        [
            {
                "kind": "single",
                "payload": {"numbers": [i]},
                "submitted_by": "svc",
                "idempotency_key": f"m{i % 3}",
            }
            for i in range(6)
        ]
    )
    assert [type(o).__name__ for o in outcomes] == ["RequestView"] * 3 + ["IdempotencyConflict"] * 3
    assert await _count(database, Request) == 3


async def test_far_from_the_limit_counts_are_reused_and_near_it_exact(database: Database) -> None:
    orchestrator = Orchestrator(database, engine_workflows(), max_queued_requests=100)
    for i in range(85):  # under 90 % of the limit: one count, then this process's own tally
        await orchestrator.submit("single", {"numbers": [i]}, "svc")
    outcomes = await asyncio.gather(
        *(orchestrator.submit("single", {"numbers": [i]}, "svc") for i in range(20)),
        return_exceptions=True,
    )
    assert sum(isinstance(o, RequestView) for o in outcomes) == 15
    assert sum(isinstance(o, QueueFull) for o in outcomes) == 5
    assert await _count(database, Request) == 100
    # Requests leaving the queue (here: cancelled by another process's hand) are counted
    # again once the tally nears the limit.
    async with database.read_session() as session:
        first = (await session.execute(select(Request.id).limit(10))).scalars().all()
    for request_id in first:
        await Orchestrator(database, engine_workflows()).cancel(request_id, "ops", "test")
    more = await asyncio.gather(
        *(orchestrator.submit("single", {"numbers": [i]}, "svc") for i in range(12)),
        return_exceptions=True,
    )
    assert sum(isinstance(o, RequestView) for o in more) == 10
