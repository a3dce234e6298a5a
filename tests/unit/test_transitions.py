"""The pure state-change functions, without a database: examples and a property test."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.audit.chain import GENESIS, row_hash
from app.orchestrator import transitions
from app.orchestrator.exceptions import IllegalTransition
from app.orchestrator.records import Change, Gate, Snapshot
from app.orchestrator.states import ALLOWED, TERMINAL, State
from app.orchestrator.transitions import Attempt, Failure, Lease, Success
from app.orchestrator.workflows import RetryPolicy, Step, Workflow

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
LEASE = Lease("worker-a", 30)


def workflow(gate_after: str | None = None) -> Workflow:
    return Workflow(
        kind="test",
        steps=tuple(
            Step(
                name=name,
                agent_id=f"test.{name}",
                retry=RetryPolicy(max_attempts=2, base_delay=1, max_delay=2),
                approval=name == gate_after,
            )
            for name in ("first", "second", "third")
        ),
    )


def submit(wf: Workflow, now: datetime = T0) -> Change:
    return transitions.submitted(
        request_id=uuid.uuid4(),
        workflow=wf,
        payload={"numbers": [1]},
        payload_digest="d" * 64,
        submitted_by="svc",
        idempotency_key=None,
        priority=0,
        now=now,
    )


def check_change(before: Snapshot | None, change: Change) -> None:
    """What every change must satisfy, whatever the event."""
    from_state = before.state if before is not None else None
    moved = change.after.state != from_state
    assert len(change.transitions) == (1 if moved else 0)
    state_events = [r for r in change.audit if r["event_type"] == "state_changed"]
    assert len(state_events) == len(change.transitions)
    for row, event in zip(change.transitions, state_events, strict=True):
        assert row["from_state"] == (str(from_state) if from_state is not None else None)
        assert row["to_state"] == str(change.after.state)
        assert event["event_data"]["from_state"] == row["from_state"]
        assert event["event_data"]["to_state"] == row["to_state"]
        if from_state is not None:
            assert State(row["to_state"]) in ALLOWED[from_state]
    # The chain grows from the snapshot's head, row by row.
    seq = before.audit_seq if before is not None else 0
    prev = (before.audit_head if before is not None else "") or GENESIS
    for row in change.audit:
        seq += 1
        assert row["seq"] == seq and row["prev_hash"] == prev
        assert row["hash"] == row_hash(row)
        prev = row["hash"]
    assert (change.after.audit_seq, change.after.audit_head) == (seq, prev)
    if before is not None:
        assert change.expected_version == before.version
        assert change.after.version == before.version + 1
    if change.after.state in TERMINAL and change.after.state != State.COMPLETED:
        assert len(change.cleanups) == 1


def test_submitted_inserts_a_pending_request_with_its_first_events() -> None:
    change = submit(workflow())
    check_change(None, change)
    assert change.insert is not None and change.expected_version is None
    assert change.after.state == State.PENDING and change.after.version == 0
    assert [r["event_type"] for r in change.audit] == ["request_submitted", "state_changed"]


def test_claimed_starts_the_first_attempt_under_the_lease() -> None:
    snap = submit(workflow()).after
    change = transitions.claimed(snap, workflow(), LEASE, T0)
    check_change(snap, change)
    assert change.after.state == State.RUNNING
    assert change.update["lease_owner"] == "worker-a"
    assert [r["event_type"] for r in change.audit] == ["state_changed", "agent_started"]


def test_success_moves_to_the_next_step_without_a_transition() -> None:
    wf = workflow()
    running = transitions.claimed(submit(wf).after, wf, LEASE, T0).after
    change = transitions.succeeded(
        running, wf, Success({"total": 1}), Attempt(LEASE, T0, T0), stopping=False
    )
    check_change(running, change)
    assert change.after.state == State.RUNNING and change.after.step_index == 1
    assert change.after.result == {"first": {"total": 1}}
    assert [r["event_type"] for r in change.audit] == ["agent_succeeded", "agent_started"]


def test_retryable_failure_schedules_the_next_attempt_after_its_backoff() -> None:
    wf = workflow()
    running = transitions.claimed(submit(wf).after, wf, LEASE, T0).after
    failure = Failure("RetryableError", "flaky")
    change = transitions.attempt_failed(running, wf, failure, Attempt(LEASE, T0, T0))
    check_change(running, change)
    assert change.after.state == State.PENDING and change.after.attempt == 2
    assert T0 + timedelta(seconds=0.5) <= change.update["not_before"] <= T0 + timedelta(seconds=1)


def test_last_attempt_failing_escalates_and_a_permanent_error_fails() -> None:
    wf = workflow()
    running = transitions.claimed(submit(wf).after, wf, LEASE, T0).after
    running.attempt = running.max_attempt
    escalated = transitions.attempt_failed(running, wf, Failure("E", "x"), Attempt(LEASE, T0, T0))
    assert escalated.after.state == State.ESCALATED and len(escalated.escalations) == 1
    failed = transitions.attempt_failed(
        running, wf, Failure("E", "x", permanent=True), Attempt(LEASE, T0, T0)
    )
    check_change(running, failed)
    assert failed.after.state == State.FAILED and failed.cleanups


def test_retry_scheduled_refuses_when_no_attempt_is_left() -> None:
    wf = workflow()
    running = transitions.claimed(submit(wf).after, wf, LEASE, T0).after
    running.attempt = running.max_attempt
    with pytest.raises(IllegalTransition):
        transitions.retry_scheduled(running, wf, Failure("E", "x"), Attempt(LEASE, T0, T0))


def test_cancel_keeps_the_lease_closes_gates_and_owes_a_cleanup() -> None:
    wf = workflow()
    running = transitions.claimed(submit(wf).after, wf, LEASE, T0).after
    change = transitions.cancelled(running, "alice", "no longer needed", T0)
    check_change(running, change)
    assert "lease_owner" not in change.update  # a live agent keeps it until it returns
    assert {g.table for g in change.gates} == {"approvals", "escalations"}
    with pytest.raises(IllegalTransition):
        transitions.cancelled(change.after, "alice", None, T0)


def test_approval_of_someone_elses_or_a_decided_gate_is_refused() -> None:
    wf = workflow(gate_after="first")
    running = transitions.claimed(submit(wf).after, wf, LEASE, T0).after
    waiting = transitions.succeeded(
        running, wf, Success({"total": 1}), Attempt(LEASE, T0, T0), stopping=False
    )
    row = waiting.approvals[0]
    gate = Gate(row["id"], row["request_id"], row["step"], "pending")
    with pytest.raises(IllegalTransition):
        transitions.approved(waiting.after, wf, Gate(gate.id, uuid.uuid4(), "first", "pending"),
                             "bob", None, T0)  # fmt: skip
    with pytest.raises(IllegalTransition):
        transitions.approved(waiting.after, wf, Gate(gate.id, gate.request_id, "first", "approved"),
                             "bob", None, T0)  # fmt: skip
    change = transitions.approved(waiting.after, wf, gate, "bob", "ok", T0)
    check_change(waiting.after, change)
    assert change.after.state == State.PENDING and change.gates[0].status == "approved"


def test_recovered_records_the_interrupted_attempt_and_starts_the_next() -> None:
    wf = workflow()
    running = transitions.claimed(submit(wf).after, wf, LEASE, T0).after
    other = Lease("worker-b", 30)
    change = transitions.recovered(running, wf, other, T0 + timedelta(minutes=1))
    check_change(running, change)
    assert change.executions[0]["status"] == "interrupted"
    assert change.after.attempt == 2 and change.update["lease_owner"] == "worker-b"
    assert [r["event_type"] for r in change.audit] == ["step_recovered", "agent_started"]


# -- property: random events from random states ----------------------------------------------

EVENTS = (
    "take",
    "succeed",
    "succeed_review",
    "fail_retryable",
    "fail_permanent",
    "fail_review",
    "timeout",
    "release",
    "cancel",
    "approve",
    "reject",
    "retry",
    "skip",
    "fail",
)


def apply(
    event: str, snap: Snapshot, wf: Workflow, gates: dict[str, Gate], rng: random.Random
) -> Change:
    now = T0 + timedelta(seconds=rng.random() * 1000)
    attempt = Attempt(LEASE, now, now)
    if event == "take":
        return transitions.taken(snap, wf, LEASE, now)
    if event in ("succeed", "succeed_review"):
        review = "check" if event == "succeed_review" else None
        success = Success({"total": rng.randint(0, 9)}, review=review)
        return transitions.succeeded(snap, wf, success, attempt, stopping=rng.random() < 0.2)
    if event.startswith("fail_") or event == "timeout":
        failure = Failure(
            "E",
            "boom",
            timed_out=event == "timeout",
            permanent=event == "fail_permanent",
            review="needs_a_person" if event == "fail_review" else None,
        )
        return transitions.attempt_failed(snap, wf, failure, attempt, rng)
    if event == "release":
        return transitions.released(snap, wf, LEASE, now)
    if event == "cancel":
        return transitions.cancelled(snap, "alice", None, now)
    if event in ("approve", "reject"):
        gate = gates.get("approvals") or Gate(uuid.uuid4(), snap.id, "first", "pending")
        decide = transitions.approved if event == "approve" else transitions.rejected
        return decide(snap, wf, gate, "bob", None, now)
    gate = gates.get("escalations") or Gate(uuid.uuid4(), snap.id, "first", "open", "why")
    return transitions.resolved(snap, wf, gate, event, "bob", None, now)  # type: ignore[arg-type]  # retry/skip/fail


@settings(max_examples=300, deadline=None)
@given(
    gate_after=st.sampled_from([None, "first", "second", "third"]),
    events=st.lists(st.sampled_from(EVENTS), min_size=1, max_size=40),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_events_never_leave_allowed_and_record_each_move_once(
    gate_after: str | None, events: list[str], seed: int
) -> None:
    rng = random.Random(seed)
    wf = workflow(gate_after)
    change = submit(wf)
    check_change(None, change)
    snap = change.after
    gates: dict[str, Gate] = {}
    for event in events:
        try:
            change = apply(event, snap, wf, gates, rng)
        except IllegalTransition:
            continue  # the event does not apply in this state: nothing was built
        check_change(snap, change)
        for row in change.approvals:
            gates["approvals"] = Gate(row["id"], row["request_id"], row["step"], "pending")
        for esc in change.escalations:
            gates["escalations"] = Gate(
                esc["id"], esc["request_id"], esc["step"], "open", esc["reason"]
            )
        for closed in change.gates:
            if closed.gate_id is not None:
                gates.pop(closed.table, None)
        snap = change.after
        if snap.state in TERMINAL:
            for late in EVENTS:
                with pytest.raises(IllegalTransition):
                    apply(late, snap, wf, gates, rng)
            break
