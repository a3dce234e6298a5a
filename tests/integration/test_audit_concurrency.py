"""Appends to many chains at once keep every chain valid and never wait on each other."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest
from sqlalchemy import distinct, func, select

from app.audit import AuditAccess
from app.database import Database
from app.database.models import AuditLog, Request
from app.orchestrator.engine import Orchestrator
from app.orchestrator.exceptions import IllegalTransition
from app.orchestrator.worker import Worker
from tests.support.agents import engine_agents, engine_workflows
from tests.support.audit_rows import ENGINE_SETTINGS
from tests.support.checks import assert_ledger_consistent


async def test_fifty_requests_appended_concurrently_keep_every_chain_valid(
    database: Database,
) -> None:
    orchestrator = Orchestrator(database, engine_workflows(timeout=5.0))
    ids = [
        (await orchestrator.submit("test", {"numbers": [i], "sleep": {"first": 0.01}}, "svc")).id
        for i in range(50)
    ]
    worker = Worker(orchestrator, engine_agents(), settings=ENGINE_SETTINGS, concurrency=16)
    access = AuditAccess(database, "dr-audit")
    done = asyncio.Event()

    async def cancel_some(chunk: list[uuid.UUID]) -> None:
        for rid in chunk:
            await asyncio.sleep(0.005)
            with contextlib.suppress(IllegalTransition):  # it may have finished already
                await orchestrator.cancel(rid, "ops", "load test")

    async def verify_while_running() -> int:
        # Each verification reads one snapshot: a chain half-written by a concurrent commit
        # would show as a broken head.
        runs = 0
        while not done.is_set():
            report = await access.verify()
            assert report.ok, report.problems
            runs += 1
        return runs

    async def run_worker() -> None:
        try:
            await asyncio.wait_for(worker.run(until_idle=True), timeout=60)
        finally:
            done.set()

    verifier = asyncio.create_task(verify_while_running())
    await asyncio.gather(run_worker(), cancel_some(ids[0:40:4]), cancel_some(ids[2:40:4]))
    assert await verifier >= 1

    async with database.read_session() as session:
        states = dict((await session.execute(select(Request.id, Request.state))).all())
    assert set(states.values()) <= {"completed", "cancelled"}
    assert "completed" in states.values()
    report = await access.verify()
    async with database.read_session() as session:
        registry = (
            await session.execute(
                select(func.count(distinct(AuditLog.chain_key))).where(
                    AuditLog.chain_key.like("registry-%")
                )
            )
        ).scalar_one()
    assert registry >= 1
    # Fifty requests, the system chain and the registry chains that recorded them.
    assert report.ok and report.chains == 51 + registry
    await assert_ledger_consistent(database)


async def test_appending_to_one_request_does_not_wait_for_another(
    database: Database, backend: str
) -> None:
    if backend != "postgresql":
        pytest.skip("SQLite has one writer by design; row-level locking is PostgreSQL's")
    orchestrator = Orchestrator(database, engine_workflows())
    held = (await orchestrator.submit("single", {"numbers": [1]}, "svc")).id
    other = (await orchestrator.submit("single", {"numbers": [2]}, "svc")).id
    async with database.session() as session:
        # A writer holds request `held`'s row (and so its chain head) mid-transaction.
        await session.execute(select(Request.id).where(Request.id == held).with_for_update())
        blocked = asyncio.create_task(orchestrator.cancel(held, "ops", "waits"))
        free = await asyncio.wait_for(orchestrator.cancel(other, "ops", "free"), timeout=5)
        assert free.state == "cancelled"
        await asyncio.sleep(0.2)
        assert not blocked.done()  # the same chain does wait: one writer per head
    assert (await asyncio.wait_for(blocked, timeout=5)).state == "cancelled"
    assert (await AuditAccess(database, "dr-audit").verify()).ok
