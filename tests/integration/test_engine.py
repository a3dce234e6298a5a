"""The engine on real databases: steps, retries, timeouts, gates, escalations, cancel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from app.config import Settings
from app.database import Database
from app.database.models import AuditLog, Request, StateTransition
from app.orchestrator.engine import Orchestrator
from app.orchestrator.exceptions import IdempotencyConflict, IllegalTransition, InvalidRequest
from app.orchestrator.views import RequestView
from app.orchestrator.worker import Worker
from app.orchestrator.workflows import RetryPolicy, Step, Workflow, WorkflowRegistry
from tests.support.agents import EnginePayload, engine_agents, engine_workflows
from tests.support.checks import (
    assert_ledger_consistent,
    drive_until_settled,
    event_types,
    executions,
)

SETTINGS = Settings(poll_seconds=0.02, lease_seconds=5, heartbeat_seconds=1)

Run = Callable[..., Awaitable[None]]


@pytest.fixture
async def orchestrator(database: Database) -> AsyncIterator[Orchestrator]:
    orch = Orchestrator(database, engine_workflows(timeout=1.0, gate_after="second"))
    yield orch
    await assert_ledger_consistent(database)


@pytest.fixture
def run(orchestrator: Orchestrator) -> Run:
    """Run a worker until nothing is left to claim (waiting out retry backoffs)."""

    async def go(concurrency: int = 4) -> None:
        await drive_until_settled(
            lambda: Worker(
                orchestrator, engine_agents(), settings=SETTINGS, concurrency=concurrency
            ),
            orchestrator.database,
        )

    return go


async def submit(orch: Orchestrator, kind: str = "single", **payload: Any) -> RequestView:
    return await orch.submit(kind, {"numbers": [1, 2, 3], **payload}, "svc-a")


async def _count(database: Database, model: Any) -> int:
    async with database.read_session() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


async def test_single_step_request_completes_with_its_output(
    orchestrator: Orchestrator, run: Run
) -> None:
    request = await submit(orchestrator)
    await run()
    done = await orchestrator.get(request.id)
    assert done.state == "completed"
    assert done.result is not None and done.result["only"]["total"] == 6
    assert done.completed_at is not None
    assert await event_types(orchestrator.database, request.id) == [
        "request_submitted",
        "state_changed",
        "state_changed",
        "agent_started",
        "agent_succeeded",
        "state_changed",
        "request_completed",
    ]


async def test_retry_then_success(orchestrator: Orchestrator, run: Run) -> None:
    request = await submit(orchestrator, fail_times={"only": 2})
    await run()
    assert (await orchestrator.get(request.id)).state == "completed"
    assert await executions(orchestrator.database, request.id) == [
        ("only", 1, "failed"),
        ("only", 2, "failed"),
        ("only", 3, "succeeded"),
    ]
    types = await event_types(orchestrator.database, request.id)
    assert types.count("agent_retry_scheduled") == 2


async def test_exhausted_retries_escalate_and_resolve_retry_completes(
    orchestrator: Orchestrator, run: Run
) -> None:
    request = await submit(orchestrator, fail_times={"only": 3})
    await run()
    assert (await orchestrator.get(request.id)).state == "escalated"
    [escalation] = await orchestrator.escalations()
    assert escalation.reason == "attempts_exhausted" and escalation.request_id == request.id

    await orchestrator.resolve_escalation(escalation.id, "dr-reviewer", "retry", "try once more")
    await run()
    done = await orchestrator.get(request.id)
    assert done.state == "completed"
    assert [e[1:] for e in await executions(orchestrator.database, request.id)] == [
        (1, "failed"),
        (2, "failed"),
        (3, "failed"),
        (4, "succeeded"),
    ]
    assert "escalation_resolved" in await event_types(orchestrator.database, request.id)


async def test_permanent_error_fails_without_retries(orchestrator: Orchestrator, run: Run) -> None:
    request = await submit(orchestrator, permanent=["only"])
    await run()
    failed = await orchestrator.get(request.id)
    assert failed.state == "failed"
    assert failed.error is not None and "can never work" in failed.error["error"]
    assert await executions(orchestrator.database, request.id) == [("only", 1, "failed")]


async def test_timeout_counts_as_a_failed_attempt(orchestrator: Orchestrator, run: Run) -> None:
    # The step times out after 1 s; sleeping 2 s fails every attempt.
    request = await submit(orchestrator, sleep={"only": 2.0})
    await run()
    assert (await orchestrator.get(request.id)).state == "escalated"
    statuses = [e[2] for e in await executions(orchestrator.database, request.id)]
    assert statuses == ["timed_out", "timed_out", "timed_out"]
    assert (await event_types(orchestrator.database, request.id)).count("agent_timed_out") == 3


async def test_agent_asking_for_a_person_escalates_and_skip_moves_on(
    orchestrator: Orchestrator, run: Run
) -> None:
    request = await submit(orchestrator, kind="test", review=["first"])
    await run()
    assert (await orchestrator.get(request.id)).state == "escalated"
    [escalation] = await orchestrator.escalations()
    assert escalation.reason == "needs_a_person"
    await orchestrator.resolve_escalation(escalation.id, "dr-reviewer", "skip")
    await run()
    # "second" has an approval gate after it.
    assert (await orchestrator.get(request.id)).state == "awaiting_approval"


async def test_approval_gate_waits_then_approve_continues(
    orchestrator: Orchestrator, run: Run
) -> None:
    request = await submit(orchestrator, kind="test")
    await run()
    waiting = await orchestrator.get(request.id)
    assert waiting.state == "awaiting_approval" and waiting.current_step == "third"
    [approval] = await orchestrator.approvals()
    assert approval.step == "second"

    await orchestrator.decide_approval(approval.id, "dr-reviewer", "approve", "looks right")
    await run()
    done = await orchestrator.get(request.id)
    assert done.state == "completed"
    assert done.result is not None and done.result["third"]["total"] == (6 + 12) + 6
    with pytest.raises(IllegalTransition):
        await orchestrator.decide_approval(approval.id, "dr-reviewer", "approve")


async def test_reject_fails_the_request_with_the_note_in_the_audit_trail(
    orchestrator: Orchestrator, run: Run
) -> None:
    request = await submit(orchestrator, kind="test")
    await run()
    [approval] = await orchestrator.approvals()
    await orchestrator.decide_approval(approval.id, "dr-reviewer", "reject", "IRB scope exceeded")
    assert (await orchestrator.get(request.id)).state == "failed"
    async with orchestrator.database.read_session() as session:
        decided = (
            await session.execute(
                select(AuditLog).where(
                    AuditLog.request_id == request.id, AuditLog.event_type == "approval_decided"
                )
            )
        ).scalar_one()
    assert decided.actor == "dr-reviewer"
    assert decided.event_data["decision"] == "reject"
    assert decided.event_data["note"] == "IRB scope exceeded"


async def test_soft_review_from_an_agent_opens_an_approval(
    orchestrator: Orchestrator, run: Run
) -> None:
    request = await submit(orchestrator, soft_review=["only"])
    await run()
    assert (await orchestrator.get(request.id)).state == "awaiting_approval"
    [approval] = await orchestrator.approvals()
    assert approval.summary is not None and approval.summary["reason"] == "please_check"
    await orchestrator.decide_approval(approval.id, "dr-clinician", "approve")
    # Last step: approving completes the request without another worker pass.
    assert (await orchestrator.get(request.id)).state == "completed"


async def test_cancel_while_running_discards_the_late_result(
    orchestrator: Orchestrator, tmp_path: Any
) -> None:
    request = await submit(orchestrator, block={"only": str(tmp_path)})
    worker = Worker(orchestrator, engine_agents(), settings=SETTINGS, concurrency=2)
    running = asyncio.create_task(worker.run())
    for _ in range(200):
        if list(tmp_path.glob("started-*")):
            break
        await asyncio.sleep(0.05)
    cancelled = await orchestrator.cancel(request.id, "ops-alice", "duplicate of another request")
    assert cancelled.state == "cancelled"
    (tmp_path / "go").touch()
    for _ in range(200):
        if "stale_result_discarded" in await _system_events(orchestrator.database, request.id):
            break
        await asyncio.sleep(0.05)
    worker.stop()
    await running
    final = await orchestrator.get(request.id)
    assert final.state == "cancelled" and final.result is None
    types = await event_types(orchestrator.database, request.id)
    assert "agent_succeeded" not in types
    async with orchestrator.database.read_session() as session:
        event = (
            await session.execute(
                select(AuditLog).where(
                    AuditLog.request_id == request.id, AuditLog.event_type == "request_cancelled"
                )
            )
        ).scalar_one()
    assert event.actor == "ops-alice"
    assert event.event_data["reason"] == "duplicate of another request"
    assert ("only", 1, "discarded") in await executions(orchestrator.database, request.id)


async def _system_events(database: Database, request_id: Any) -> list[str]:
    async with database.read_session() as session:
        return list(
            (
                await session.execute(
                    select(AuditLog.event_type).where(
                        AuditLog.chain_key == "system", AuditLog.request_id == request_id
                    )
                )
            ).scalars()
        )


async def test_idempotent_submit_returns_the_same_request(orchestrator: Orchestrator) -> None:
    first = await orchestrator.submit("single", {"numbers": [1]}, "svc-a", idempotency_key="k-1")
    again = await orchestrator.submit("single", {"numbers": [1]}, "svc-a", idempotency_key="k-1")
    assert again.id == first.id
    other = await orchestrator.submit("single", {"numbers": [1]}, "svc-b", idempotency_key="k-1")
    assert other.id != first.id
    assert await _count(orchestrator.database, Request) == 2


async def test_conflicting_payload_for_a_key_is_refused_and_writes_nothing(
    orchestrator: Orchestrator,
) -> None:
    await orchestrator.submit("single", {"numbers": [1]}, "svc-a", idempotency_key="k-1")
    before = [await _count(orchestrator.database, m) for m in (Request, StateTransition, AuditLog)]
    with pytest.raises(IdempotencyConflict, match="k-1"):
        await orchestrator.submit("single", {"numbers": [2]}, "svc-a", idempotency_key="k-1")
    after = [await _count(orchestrator.database, m) for m in (Request, StateTransition, AuditLog)]
    assert after == before


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"kind": "nope"}, "kind"),
        ({"payload": {"numbers": "x"}}, "payload.numbers"),
        ({"submitted_by": " "}, "submitted_by"),
        ({"priority": 1000}, "priority"),
    ],
)
async def test_bad_submissions_name_the_field_and_write_nothing(
    orchestrator: Orchestrator, kwargs: dict[str, Any], field: str
) -> None:
    args: dict[str, Any] = {"kind": "single", "payload": {"numbers": [1]}, "submitted_by": "svc"}
    args.update(kwargs)
    with pytest.raises(InvalidRequest) as info:
        await orchestrator.submit(**args)
    assert info.value.field == field
    assert await _count(orchestrator.database, Request) == 0
    assert await _count(orchestrator.database, AuditLog) == 0


async def test_cancelling_a_finished_request_is_illegal_and_changes_nothing(
    orchestrator: Orchestrator, run: Run
) -> None:
    request = await submit(orchestrator)
    await run()
    before = await _count(orchestrator.database, AuditLog)
    with pytest.raises(IllegalTransition):
        await orchestrator.cancel(request.id, "ops", "too late")
    assert await _count(orchestrator.database, AuditLog) == before
    assert (await orchestrator.get(request.id)).state == "completed"


async def test_many_requests_at_high_concurrency_all_complete_once(
    orchestrator: Orchestrator, run: Run
) -> None:
    ids = [(await submit(orchestrator, kind="single")).id for _ in range(60)]
    await run(concurrency=16)
    page = await orchestrator.list(state="completed", limit=100)
    assert {r.id for r in page.items} == set(ids)


async def test_a_retry_claimed_again_at_once_is_driven_to_the_end(database: Database) -> None:
    # With no backoff, a failed attempt's request is claimable in the very transaction that
    # records the failure, so the refill (or the claim loop) starts a new task for the same
    # id while the old task is still finishing. The old task must not unregister the new one.
    no_backoff = RetryPolicy(max_attempts=5, base_delay=0.0, max_delay=0.0)
    workflows = WorkflowRegistry(
        [
            Workflow(
                kind="single",
                steps=(Step(name="only", agent_id="test.only", timeout=5, retry=no_backoff),),
                payload_model=EnginePayload,
            )
        ]
    )
    orch = Orchestrator(database, workflows)
    views = [
        await orch.submit("single", {"numbers": [n], "fail_times": {"only": 3}}, "svc-a")
        for n in range(8)
    ]
    worker = Worker(orch, engine_agents(), settings=SETTINGS, concurrency=4)
    await asyncio.wait_for(worker.run(until_idle=True), timeout=60)

    for view in views:
        assert (await orch.get(view.id)).state == "completed"
        statuses = [e[2] for e in await executions(database, view.id)]
        assert statuses == ["failed", "failed", "failed", "succeeded"]
    await assert_ledger_consistent(database)
