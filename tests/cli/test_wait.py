"""``ledgerflow requests wait``: where a request stopped, as its exit code and one line."""

from __future__ import annotations

import asyncio
import time

from app.bootstrap import Services
from app.database import Database
from app.orchestrator.engine import Orchestrator
from app.orchestrator.worker import Worker
from tests.cli.conftest import Run, escalated_request, gated_request, research, run_until_idle
from tests.support.agents import engine_agents, engine_workflows


async def test_wait_exits_4_at_an_approval_gate_and_prints_the_state(
    run: Run, url: str, services: Services
) -> None:
    request_id = await gated_request(services)
    result = await run("requests", "wait", str(request_id)[:8], "--database-url", url)
    assert result.code == 4, result
    assert result.out.split()[:3] == [str(request_id), "research", "awaiting_approval"]


async def test_wait_exits_4_when_escalated(run: Run, url: str, services: Services) -> None:
    request_id = await escalated_request(services)
    result = await run("requests", "wait", str(request_id), "--database-url", url)
    assert result.code == 4, result
    assert "escalated" in result.out


async def test_wait_exits_1_when_cancelled(run: Run, url: str, services: Services) -> None:
    view = await services.orchestrator.submit("research", research(), "svc-cli")
    await services.orchestrator.cancel(view.id, "svc-cli", "changed my mind")
    result = await run("requests", "wait", str(view.id), "--database-url", url, "--json")
    assert result.code == 1, result
    assert '"state": "cancelled"' in result.out


async def test_wait_exits_0_when_completed(run: Run, url: str, database: Database) -> None:
    orchestrator = Orchestrator(database, engine_workflows())
    view = await orchestrator.submit("single", {"numbers": [1]}, "svc-cli")
    await Worker(orchestrator, engine_agents(), concurrency=1).run(until_idle=True)
    result = await run("requests", "wait", str(view.id), "--database-url", url)
    assert result.code == 0, result
    assert result.out.split()[1:3] == ["single", "completed"]


async def test_wait_follows_a_request_until_it_needs_a_person(
    run: Run, url: str, services: Services
) -> None:
    view = await services.orchestrator.submit("research", research(), "svc-cli")
    waiting = asyncio.create_task(run("requests", "wait", str(view.id), "--database-url", url))
    await asyncio.sleep(0.5)
    assert not waiting.done()
    await run_until_idle(services)
    result = await asyncio.wait_for(waiting, 30)
    assert result.code == 4, result
    assert "awaiting_approval" in result.out


async def test_wait_exits_5_when_the_timeout_runs_out(
    run: Run, url: str, services: Services
) -> None:
    view = await services.orchestrator.submit("research", research(), "svc-cli")
    began = time.monotonic()
    result = await run("requests", "wait", str(view.id), "--timeout", "0.5", "--database-url", url)
    assert result.code == 5, result
    assert "pending" in result.out
    assert time.monotonic() - began >= 0.5


async def test_wait_refuses_bad_input_with_exit_2(run: Run, url: str, services: Services) -> None:
    unknown = await run("requests", "wait", "abcdef12", "--database-url", url)
    assert unknown.code == 2, unknown
    assert "no request" in unknown.err
    view = await services.orchestrator.submit("research", research(), "svc-cli")
    negative = await run("requests", "wait", str(view.id), "--timeout", "-1", "--database-url", url)
    assert negative.code == 2, negative
    assert "--timeout" in negative.err
