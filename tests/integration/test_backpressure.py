"""Backpressure: past ``MAX_QUEUED_REQUESTS`` pending requests, ``submit`` raises QueueFull."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.config import Settings
from app.database import Database
from app.database.models import AuditLog, Request, StateTransition
from app.orchestrator.engine import Orchestrator
from app.orchestrator.exceptions import QueueFull
from tests.support.agents import engine_workflows


async def _count(database: Database, model: object) -> int:
    async with database.read_session() as session:
        query = select(func.count()).select_from(model)  # type: ignore[arg-type]
        return int((await session.execute(query)).scalar_one())


async def test_submit_past_the_limit_raises_queue_full_and_writes_nothing(
    database: Database,
) -> None:
    orchestrator = Orchestrator(database, engine_workflows(), max_queued_requests=3)
    made = [await orchestrator.submit("single", {"numbers": [i]}, "svc") for i in range(3)]
    counts = [await _count(database, m) for m in (Request, StateTransition, AuditLog)]

    with pytest.raises(QueueFull) as caught:
        await orchestrator.submit("single", {"numbers": [99]}, "svc")
    assert caught.value.code == "queue_full"
    assert caught.value.retry_after >= 1 and caught.value.limit == 3
    assert "MAX_QUEUED_REQUESTS=3" in caught.value.message
    assert [await _count(database, m) for m in (Request, StateTransition, AuditLog)] == counts
    assert len(made) == 3


async def test_idempotent_resubmission_is_answered_even_when_full(database: Database) -> None:
    orchestrator = Orchestrator(database, engine_workflows(), max_queued_requests=1)
    first = await orchestrator.submit("single", {"numbers": [1]}, "svc", idempotency_key="k1")
    same = await orchestrator.submit("single", {"numbers": [1]}, "svc", idempotency_key="k1")
    assert same.id == first.id
    with pytest.raises(QueueFull):
        await orchestrator.submit("single", {"numbers": [2]}, "svc", idempotency_key="k2")


async def test_room_frees_up_when_pending_requests_leave_the_queue(database: Database) -> None:
    orchestrator = Orchestrator(database, engine_workflows(), max_queued_requests=2)
    a = await orchestrator.submit("single", {"numbers": [1]}, "svc")
    await orchestrator.submit("single", {"numbers": [2]}, "svc")
    with pytest.raises(QueueFull):
        await orchestrator.submit("single", {"numbers": [3]}, "svc")
    await orchestrator.cancel(a.id, "svc", "no longer needed")
    third = await orchestrator.submit("single", {"numbers": [3]}, "svc")
    assert third.state == "pending"


async def test_zero_means_no_limit_and_the_setting_is_the_default(database: Database) -> None:
    unlimited = Orchestrator(database, engine_workflows(), max_queued_requests=0)
    for i in range(5):
        await unlimited.submit("single", {"numbers": [i]}, "svc")
    assert Settings(_env_file=None).max_queued_requests == 10_000
    default = Orchestrator(database, engine_workflows())
    assert (await default.submit("single", {"numbers": [9]}, "svc")).state == "pending"
