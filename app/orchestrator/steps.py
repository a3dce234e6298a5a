"""Turning what happened to a step into the request change that records it.

Pure functions of the request snapshot, the workflow and the outcome: no I/O, so every
branch (continue, gate, complete, retry, escalate, fail, recover, release) is one place.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.agents.base import AgentError, NeedsHumanReview, StepResult
from app.audit.chain import digest
from app.audit.events import (
    AgentFailed,
    AgentRetryScheduled,
    AgentStarted,
    AgentSucceeded,
    AgentTimedOut,
    ApprovalRequested,
    EscalationOpened,
    StepRecovered,
)
from app.orchestrator.changes import RequestChange, Snapshot, merge_result
from app.orchestrator.engine import complete, enter_step, fail
from app.orchestrator.states import State
from app.orchestrator.workflows import Step, Workflow

_ERROR_TEXT = 500


def input_digest(snap: Snapshot) -> str:
    """Digest of what the current step's agent is given (payload and earlier outputs).

    Cached on the snapshot: the digest recorded in a step's ``agent_started`` event is the
    one its execution row records, computed once.
    """
    if snap.input_digest is None:
        snap.input_digest = digest({"payload": snap.payload, "previous": snap.result or {}})
    return snap.input_digest


def execution_row(
    snap: Snapshot,
    step: Step,
    *,
    status: str,
    worker_id: str,
    started_at: datetime,
    finished_at: datetime,
    output: dict[str, Any] | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """An ``agent_executions`` row for the snapshot's current attempt."""
    return {
        "id": uuid.uuid4(),
        "request_id": snap.id,
        "step": step.name,
        "step_index": snap.step_index,
        "agent_id": step.agent_id,
        "attempt": snap.attempt,
        "status": status,
        "input_digest": input_digest(snap),
        "output_digest": digest(output) if output is not None else None,
        "output": output,
        "error": error[:_ERROR_TEXT] if error else None,
        "worker_id": worker_id,
        "started_at": started_at,
        "finished_at": finished_at,
        "duration_ms": int((finished_at - started_at).total_seconds() * 1000),
    }


def start_attempt(change: RequestChange, workflow: Workflow, worker_id: str) -> None:
    """Record that the request's current step is starting (under ``change``'s lease)."""
    snap = change.committed_snapshot()
    step = workflow.steps[snap.step_index]
    change.next_input_digest = input_digest(snap)
    change.event(
        AgentStarted(
            step=step.name,
            attempt=snap.attempt,
            input_digest=change.next_input_digest,
            worker_id=worker_id,
        ),
        agent_id=step.agent_id,
    )


def escalate(change: RequestChange, step: Step, reason: str, detail: dict[str, Any]) -> None:
    """Stop the request for a person, with an open escalation."""
    escalation_id = uuid.uuid4()
    change.add(
        "escalations",
        {
            "id": escalation_id,
            "request_id": change.snapshot.id,
            "step": step.name,
            "reason": reason,
            "detail": detail,
            "status": "open",
            "opened_at": change.now,
        },
    )
    change.transition(State.ESCALATED, step=step.name, reason=reason)
    change.event(EscalationOpened(escalation_id=str(escalation_id), step=step.name, reason=reason))
    change.set(lease_owner=None, lease_expires_at=None)


@dataclass(frozen=True)
class Lease:
    """Who holds a request and until when."""

    worker_id: str
    seconds: float

    def until(self, now: datetime) -> datetime:
        """When a lease taken or renewed at ``now`` expires."""
        return now + timedelta(seconds=self.seconds)


def claim_change(
    snap: Snapshot,
    row: Any,
    workflow: Workflow,
    lease: Lease,
    now: datetime,
) -> RequestChange:
    """Take the lease on a claimed row: a start, or the recovery of an interrupted attempt."""
    change = RequestChange(snap, actor=lease.worker_id, now=now)
    step = workflow.steps[snap.step_index]
    change.set(lease_owner=lease.worker_id, lease_expires_at=lease.until(now))
    if snap.state == State.RUNNING:
        # The previous holder's lease expired mid-attempt: that attempt is over.
        change.add(
            "agent_executions",
            execution_row(
                snap,
                step,
                status="interrupted",
                worker_id=snap.lease_owner or "unknown",
                started_at=row.updated_at,
                finished_at=now,
                error="lease expired before the attempt finished",
            ),
        )
        attempt = snap.attempt + 1
        change.event(
            StepRecovered(
                step=step.name,
                attempt=attempt,
                previous_attempt=snap.attempt,
                previous_worker=snap.lease_owner,
            ),
            agent_id=step.agent_id,
        )
        change.set(attempt=attempt)
        if attempt > snap.max_attempt:
            escalate(change, step, "attempts_exhausted", {"attempts": snap.attempt})
            return change
    else:
        change.transition(State.RUNNING, step=step.name, reason=f"claimed by {lease.worker_id}")
    start_attempt(change, workflow, lease.worker_id)
    return change


def success_change(
    snap: Snapshot,
    workflow: Workflow,
    outcome: StepResult[Any],
    *,
    lease: Lease,
    started_at: datetime,
    now: datetime,
    stopping: bool,
) -> RequestChange:
    """Record a step's output and move on: next step, a gate, or completion."""
    step = workflow.steps[snap.step_index]
    output = outcome.output.model_dump(mode="json")
    change = RequestChange(snap, actor=lease.worker_id, now=now)
    row = execution_row(
        snap,
        step,
        status="succeeded",
        worker_id=lease.worker_id,
        started_at=started_at,
        finished_at=now,
        output=output,
    )
    change.add("agent_executions", row)
    change.event(
        AgentSucceeded(
            step=step.name,
            attempt=snap.attempt,
            output_digest=row["output_digest"],
            duration_ms=row["duration_ms"],
        ),
        agent_id=step.agent_id,
    )
    change.domain(outcome.writes)
    result = merge_result(snap.result, step.name, output)
    change.set(result=result)
    next_index = snap.step_index + 1
    last = next_index >= len(workflow.steps)
    if step.approval or outcome.review:
        approval_id = uuid.uuid4()
        change.add(
            "approvals",
            {
                "id": approval_id,
                "request_id": snap.id,
                "step": step.name,
                "status": "pending",
                # What the reviewer decides on: the step's output (e.g. the normalised
                # research criteria) and why review was asked for.
                "summary": {"reason": outcome.review, **outcome.review_detail, "output": output},
                "requested_at": now,
            },
        )
        change.transition(State.AWAITING_APPROVAL, step=step.name, reason=outcome.review or "gate")
        change.event(
            ApprovalRequested(approval_id=str(approval_id), step=step.name, reason=outcome.review)
        )
        change.set(lease_owner=None, lease_expires_at=None)
        if last:
            change.set(step_index=next_index, current_step=None)
        else:
            enter_step(change, workflow, next_index)
    elif last:
        complete(change, result, len(workflow.steps))
    else:
        enter_step(change, workflow, next_index)
        if stopping:
            change.transition(State.PENDING, step=step.name, reason="worker shutting down")
            change.set(lease_owner=None, lease_expires_at=None, not_before=now)
        else:
            change.set(lease_expires_at=lease.until(now))
            start_attempt(change, workflow, lease.worker_id)
    return change


def failure_change(
    snap: Snapshot,
    workflow: Workflow,
    error: BaseException,
    *,
    lease: Lease,
    started_at: datetime,
    now: datetime,
    timed_out: bool,
    permanent: bool,
) -> RequestChange:
    """Record a failed attempt: retry later, escalate, or fail the request."""
    step = workflow.steps[snap.step_index]
    text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    change = RequestChange(snap, actor=lease.worker_id, now=now)
    row = execution_row(
        snap,
        step,
        status="timed_out" if timed_out else "failed",
        worker_id=lease.worker_id,
        started_at=started_at,
        finished_at=now,
        error=text,
    )
    change.add("agent_executions", row)
    if timed_out:
        change.event(
            AgentTimedOut(step=step.name, attempt=snap.attempt, timeout_seconds=step.timeout),
            agent_id=step.agent_id,
        )
    else:
        change.event(
            AgentFailed(
                step=step.name,
                attempt=snap.attempt,
                error_type=type(error).__name__,
                error=text[:_ERROR_TEXT],
                retryable=not permanent and not isinstance(error, NeedsHumanReview),
                duration_ms=row["duration_ms"],
            ),
            agent_id=step.agent_id,
        )
    if isinstance(error, AgentError):
        change.domain(error.writes)
    if isinstance(error, NeedsHumanReview):
        escalate(change, step, error.reason, {"message": str(error), **error.detail})
    elif permanent:
        fail(change, step.name, text[:_ERROR_TEXT], {"step": step.name, "error": text})
    elif snap.attempt >= snap.max_attempt:
        escalate(change, step, "attempts_exhausted", {"attempts": snap.attempt, "last_error": text})
    else:
        delay = step.retry.delay(snap.attempt)
        not_before = now + timedelta(seconds=delay)
        change.transition(State.PENDING, step=step.name, reason="retry scheduled")
        change.event(
            AgentRetryScheduled(
                step=step.name,
                next_attempt=snap.attempt + 1,
                not_before=not_before,
                delay_seconds=round(delay, 3),
            ),
            agent_id=step.agent_id,
        )
        change.set(
            attempt=snap.attempt + 1, not_before=not_before, lease_owner=None, lease_expires_at=None
        )
    return change


def release_change(
    snap: Snapshot, workflow: Workflow, lease: Lease, now: datetime
) -> RequestChange:
    """Give a request back at shutdown: its interrupted attempt ends, the next one waits."""
    step = workflow.steps[snap.step_index]
    change = RequestChange(snap, actor=lease.worker_id, now=now)
    change.add(
        "agent_executions",
        execution_row(
            snap,
            step,
            status="interrupted",
            worker_id=lease.worker_id,
            started_at=now,
            finished_at=now,
            error="worker shut down before the attempt finished",
        ),
    )
    change.transition(State.PENDING, step=step.name, reason="released at worker shutdown")
    change.set(
        attempt=snap.attempt + 1,
        max_attempt=snap.max_attempt + 1,
        lease_owner=None,
        lease_expires_at=None,
        not_before=now,
    )
    return change
