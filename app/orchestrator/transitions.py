"""State changes as pure functions: a request snapshot and an event in, a typed change out.

One function per event — :func:`submitted`, :func:`claimed`, :func:`recovered`,
:func:`succeeded`, :func:`failed`, :func:`retry_scheduled`, :func:`released`,
:func:`cancelled`, :func:`approved`, :func:`rejected`, :func:`resolved` — plus
:func:`attempt_failed`, which picks between failing, escalating and retrying by the step's
policy. No I/O, no clock, no randomness beyond the retry jitter's ``rng``: the engine and
the worker read snapshots, call these, and write the result through
:mod:`app.orchestrator.changes`.

Every change that moves the request to another state carries exactly one
``state_transitions`` row and one ``state_changed`` audit event, and the move is checked
against :data:`app.orchestrator.states.ALLOWED`; advancing to the next step while
``running`` is not a change of state and carries neither. A move into a terminal or
waiting-for-a-person state (:data:`~app.orchestrator.states.SETTLED`) of a request with a
``callback_url`` also carries its ``callback_outbox`` row, so the callback is owed exactly
when the change commits.
"""

from __future__ import annotations

import dataclasses
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from app.agents.base import DomainWrite
from app.audit.chain import ChainHead, chain_key_for, digest
from app.audit.events import (
    AgentFailed,
    AgentRetryScheduled,
    AgentStarted,
    AgentSucceeded,
    AgentTimedOut,
    ApprovalDecided,
    ApprovalRequested,
    AuditEvent,
    EscalationOpened,
    EscalationResolved,
    RequestCancelled,
    RequestCompleted,
    RequestFailed,
    RequestSubmitted,
    StateChanged,
    StepRecovered,
)
from app.ids import uuid7
from app.orchestrator.exceptions import IllegalTransition
from app.orchestrator.records import (
    ApprovalRow,
    Change,
    CleanupRow,
    EscalationRow,
    ExecutionRow,
    Gate,
    GateClosed,
    OutboxRow,
    RequestRow,
    RequestUpdate,
    Snapshot,
    TransitionRow,
)
from app.orchestrator.states import SETTLED, TERMINAL, State, can_transition
from app.orchestrator.workflows import Step, Workflow

#: Longest error text kept in an execution row or an ``agent_failed`` event.
ERROR_TEXT = 500
#: Fields of a snapshot that a request update may change.
_SNAPSHOT_FIELDS = ("step_index", "current_step", "attempt", "max_attempt", "result", "lease_owner")


@dataclass(frozen=True, slots=True)
class Lease:
    """Who holds a request and until when."""

    worker_id: str
    seconds: float

    def until(self, now: datetime) -> datetime:
        """When a lease taken or renewed at ``now`` expires."""
        return now + timedelta(seconds=self.seconds)


@dataclass(frozen=True, slots=True)
class Success:
    """An agent's finished attempt: its output (JSON), domain rows and optional review."""

    output: dict[str, Any]
    writes: tuple[DomainWrite, ...] = ()
    #: When set, a reviewer must approve (reason shown to them) before the next step.
    review: str | None = None
    review_detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Failure:
    """An agent's failed attempt, as the worker classified it."""

    error_type: str
    message: str
    timed_out: bool = False
    #: Retrying cannot help: the request fails now.
    permanent: bool = False
    #: The agent asked for a person (``NeedsHumanReview``): escalate with this reason.
    review: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)
    writes: tuple[DomainWrite, ...] = ()

    @property
    def text(self) -> str:
        """``Type: message`` (or the type alone), cut to :data:`ERROR_TEXT`."""
        text = f"{self.error_type}: {self.message}" if self.message else self.error_type
        return text[:ERROR_TEXT]


@dataclass(frozen=True, slots=True)
class Attempt:
    """When the attempt a result belongs to started, and who ran it."""

    lease: Lease
    started_at: datetime
    now: datetime


def input_digest(snap: Snapshot) -> str:
    """Digest of what the current step's agent is given (payload and earlier outputs).

    Cached on the snapshot: the digest recorded in a step's ``agent_started`` event is the
    one its execution row records, computed once.
    """
    if snap.input_digest is None:
        snap.input_digest = digest({"payload": snap.payload, "previous": snap.result or {}})
    return snap.input_digest


def merge_result(previous: Mapping[str, Any] | None, step: str, output: Any) -> dict[str, Any]:
    """The request's accumulated step outputs with ``step``'s added."""
    return {**(previous or {}), step: output}


class _Draft:
    """A change being built: the chain head moves and the state is checked as events are added."""

    def __init__(self, snap: Snapshot, actor: str, now: datetime) -> None:
        self.snap = snap
        self.actor = actor
        self.now = now
        self.state = snap.state
        self.head = ChainHead(chain_key_for(snap.id), snap.audit_seq, snap.audit_head)
        self.change = Change(
            request_id=snap.id, expected_version=snap.version, after=snap, actor=actor, now=now
        )
        self._next_input_digest: str | None = None
        self.interrupted = False

    @property
    def update(self) -> RequestUpdate:
        return self.change.update

    def event(self, event: AuditEvent, *, agent_id: str | None = None) -> None:
        self.change.audit.append(
            self.head.append(
                event,
                actor=self.actor,
                occurred_at=self.now,
                request_id=self.snap.id,
                agent_id=agent_id,
            )
        )

    def transition(self, target: State, *, step: str | None, reason: str | None) -> None:
        if not can_transition(self.state, target):
            raise IllegalTransition(
                f"request {self.snap.id} is {self.state}; it cannot become {target}"
            )
        self.change.transitions.append(
            TransitionRow(
                id=uuid7(),
                request_id=self.snap.id,
                from_state=str(self.state),
                to_state=str(target),
                step=step,
                actor=self.actor,
                reason=reason,
                created_at=self.now,
            )
        )
        self.event(StateChanged(from_state=self.state, to_state=target, step=step, reason=reason))
        self.state = target
        self.update["state"] = str(target)
        if target in SETTLED and self.snap.callback_url:
            self.owe_callback(target, self.snap.callback_url)

    def owe_callback(self, state: State, url: str) -> None:
        """The request reached a state its submitter is told of: a callback is owed."""
        self.change.outbox.append(
            OutboxRow(
                id=uuid7(),
                request_id=self.snap.id,
                kind=self.snap.kind,
                state=str(state),
                client=self.snap.submitted_by,
                url=url,
                created_at=self.now,
                attempts=0,
                not_before=self.now,
            )
        )

    def enter_step(self, workflow: Workflow, index: int) -> None:
        """Point the request at step ``index`` with a fresh attempt budget."""
        step = workflow.steps[index]
        self.update.update(
            RequestUpdate(
                step_index=index,
                current_step=step.name,
                attempt=1,
                max_attempt=step.retry.max_attempts,
            )
        )

    def release_lease(self) -> None:
        self.update.update(RequestUpdate(lease_owner=None, lease_expires_at=None))

    def current(self) -> Snapshot:
        """The snapshot as it will be once what is drafted so far commits."""
        snap = self.snap
        values: dict[str, Any] = {k: self.update[k] for k in _SNAPSHOT_FIELDS if k in self.update}  # type: ignore[literal-required]  # keys come from _SNAPSHOT_FIELDS, all RequestUpdate keys
        if self._next_input_digest is not None:
            values["input_digest"] = self._next_input_digest
        elif "result" in values or "step_index" in values:
            values["input_digest"] = None
        return dataclasses.replace(
            snap,
            state=self.state,
            version=snap.version + 1,
            audit_seq=self.head.seq,
            audit_head=self.head.hash,
            updated_at=self.now,
            interrupted=self.interrupted,
            **values,
        )

    def start_attempt(self, workflow: Workflow, worker_id: str) -> None:
        """Record that the request's (new) current step is starting under this change."""
        upcoming = self.current()
        step = workflow.steps[upcoming.step_index]
        self._next_input_digest = input_digest(upcoming)
        self.event(
            AgentStarted(
                step=step.name,
                attempt=upcoming.attempt,
                input_digest=self._next_input_digest,
                worker_id=worker_id,
            ),
            agent_id=step.agent_id,
        )

    def complete(self, result: Mapping[str, Any] | None, steps: int) -> None:
        self.transition(State.COMPLETED, step=None, reason="all steps done")
        self.event(RequestCompleted(steps=steps, result_digest=digest(result or {})))
        self.release_lease()
        self.update.update(RequestUpdate(current_step=None, completed_at=self.now))

    def fail(self, step: str | None, reason: str, error: dict[str, Any]) -> None:
        self.transition(State.FAILED, step=step, reason=reason)
        self.event(RequestFailed(step=step, reason=reason))
        self.release_lease()
        self.update.update(RequestUpdate(error=error, completed_at=self.now))
        self.owe_cleanup("failed")

    def escalate(self, step: Step, reason: str, detail: dict[str, Any]) -> None:
        escalation_id = uuid.uuid4()
        self.change.escalations.append(
            EscalationRow(
                id=escalation_id,
                request_id=self.snap.id,
                step=step.name,
                reason=reason,
                detail=detail,
                status="open",
                opened_at=self.now,
            )
        )
        self.transition(State.ESCALATED, step=step.name, reason=reason)
        self.event(
            EscalationOpened(escalation_id=str(escalation_id), step=step.name, reason=reason)
        )
        self.release_lease()

    def owe_cleanup(self, reason: str) -> None:
        """The request ended without a delivery: its steps' files are owed a removal."""
        self.change.cleanups.append(
            CleanupRow(
                id=uuid7(),
                request_id=self.snap.id,
                reason=reason,
                created_at=self.now,
                attempts=0,
                not_before=self.now,
            )
        )

    def execution(
        self,
        step: Step,
        *,
        status: str,
        worker_id: str | None,
        started_at: datetime,
        output: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> ExecutionRow:
        snap = self.snap
        row = ExecutionRow(
            id=uuid7(),
            request_id=snap.id,
            step=step.name,
            step_index=snap.step_index,
            agent_id=step.agent_id,
            attempt=snap.attempt,
            status=status,
            input_digest=input_digest(snap),
            output_digest=digest(output) if output is not None else None,
            output=output,
            error=error[:ERROR_TEXT] if error else None,
            worker_id=worker_id,
            started_at=started_at,
            finished_at=self.now,
            duration_ms=int((self.now - started_at).total_seconds() * 1000),
        )
        self.change.executions.append(row)
        return row

    def done(self) -> Change:
        self.change.after = self.current()
        return self.change


# -- submit and claim ---------------------------------------------------------------------


def submitted(
    *,
    request_id: uuid.UUID,
    workflow: Workflow,
    payload: dict[str, Any],
    payload_digest: str,
    submitted_by: str,
    idempotency_key: str | None,
    priority: int,
    now: datetime,
    callback_url: str | None = None,
) -> Change:
    """A new request, ``pending`` at its first step, with its chain's first two events
    (and, with ``callback_url``, callbacks owed at each terminal or waiting state)."""
    first = workflow.steps[0]
    snap = Snapshot(
        id=request_id,
        kind=workflow.kind,
        state=State.PENDING,
        step_index=0,
        current_step=first.name,
        attempt=1,
        max_attempt=first.retry.max_attempts,
        version=-1,
        audit_seq=0,
        audit_head="",
        payload=payload,
        result=None,
        submitted_by=submitted_by,
        priority=priority,
        callback_url=callback_url,
    )
    draft = _Draft(snap, submitted_by, now)
    draft.event(
        RequestSubmitted(
            kind=workflow.kind,
            priority=priority,
            payload_digest=payload_digest,
            idempotency_key=idempotency_key,
        )
    )
    draft.change.transitions.append(
        TransitionRow(
            id=uuid7(),
            request_id=request_id,
            from_state=None,
            to_state=str(State.PENDING),
            step=None,
            actor=submitted_by,
            reason="submitted",
            created_at=now,
        )
    )
    draft.event(StateChanged(from_state=None, to_state=State.PENDING, reason="submitted"))
    if workflow.on_submit is not None:
        draft.change.domain.extend(workflow.on_submit(request_id, payload))
    change = draft.done()
    change.expected_version = None
    change.insert = RequestRow(
        id=request_id,
        kind=workflow.kind,
        state=str(State.PENDING),
        step_index=0,
        current_step=first.name,
        attempt=1,
        max_attempt=first.retry.max_attempts,
        priority=priority,
        submitted_by=submitted_by,
        idempotency_key=idempotency_key,
        payload_digest=payload_digest,
        payload=payload,
        not_before=now,
        version=0,
        audit_seq=change.after.audit_seq,
        audit_head=change.after.audit_head,
        created_at=now,
        updated_at=now,
        callback_url=callback_url,
    )
    change.after.version = 0
    return change


def claimed(snap: Snapshot, workflow: Workflow, lease: Lease, now: datetime) -> Change:
    """A worker takes a ``pending`` request: it becomes ``running`` and its step starts."""
    if snap.state != State.PENDING:
        raise IllegalTransition(f"request {snap.id} is {snap.state}, not pending")
    step = workflow.steps[snap.step_index]
    draft = _Draft(snap, lease.worker_id, now)
    draft.update.update(
        RequestUpdate(lease_owner=lease.worker_id, lease_expires_at=lease.until(now))
    )
    draft.transition(State.RUNNING, step=step.name, reason=f"claimed by {lease.worker_id}")
    draft.start_attempt(workflow, lease.worker_id)
    return draft.done()


def recovered(snap: Snapshot, workflow: Workflow, lease: Lease, now: datetime) -> Change:
    """A worker takes a ``running`` request whose lease expired: the interrupted attempt is
    recorded and the next one starts (or, with no attempts left, the request escalates)."""
    if snap.state != State.RUNNING:
        raise IllegalTransition(f"request {snap.id} is {snap.state}, not running")
    step = workflow.steps[snap.step_index]
    draft = _Draft(snap, lease.worker_id, now)
    draft.update.update(
        RequestUpdate(lease_owner=lease.worker_id, lease_expires_at=lease.until(now))
    )
    draft.execution(
        step,
        status="interrupted",
        worker_id=snap.lease_owner or "unknown",
        started_at=snap.updated_at or now,
        error="lease expired before the attempt finished",
    )
    attempt = snap.attempt + 1
    draft.event(
        StepRecovered(
            step=step.name,
            attempt=attempt,
            previous_attempt=snap.attempt,
            previous_worker=snap.lease_owner,
        ),
        agent_id=step.agent_id,
    )
    draft.update["attempt"] = attempt
    draft.interrupted = True
    if attempt > snap.max_attempt:
        draft.escalate(step, "attempts_exhausted", {"attempts": snap.attempt})
    else:
        draft.start_attempt(workflow, lease.worker_id)
    return draft.done()


def taken(snap: Snapshot, workflow: Workflow, lease: Lease, now: datetime) -> Change:
    """A claim of a runnable row: :func:`claimed` when pending, :func:`recovered` when running."""
    if snap.state == State.RUNNING:
        return recovered(snap, workflow, lease, now)
    return claimed(snap, workflow, lease, now)


# -- a step's outcome ---------------------------------------------------------------------


def _running_step(snap: Snapshot, workflow: Workflow) -> Step:
    if snap.state != State.RUNNING:
        raise IllegalTransition(f"request {snap.id} is {snap.state}, not running")
    return workflow.steps[snap.step_index]


def succeeded(
    snap: Snapshot, workflow: Workflow, success: Success, attempt: Attempt, *, stopping: bool
) -> Change:
    """Record a step's output and move on: the next step, a gate, or completion.

    ``stopping`` (the worker is shutting down) hands the next step back as ``pending``
    instead of starting it.
    """
    step = _running_step(snap, workflow)
    worker_id = attempt.lease.worker_id
    draft = _Draft(snap, worker_id, attempt.now)
    row = draft.execution(
        step,
        status="succeeded",
        worker_id=worker_id,
        started_at=attempt.started_at,
        output=success.output,
    )
    draft.event(
        AgentSucceeded(
            step=step.name,
            attempt=snap.attempt,
            output_digest=row["output_digest"] or "",
            duration_ms=row["duration_ms"],
        ),
        agent_id=step.agent_id,
    )
    draft.change.domain.extend(success.writes)
    result = merge_result(snap.result, step.name, success.output)
    draft.update["result"] = result
    next_index = snap.step_index + 1
    last = next_index >= len(workflow.steps)
    if step.approval or success.review:
        _open_approval(draft, step, success)
        if last:
            draft.update.update(RequestUpdate(step_index=next_index, current_step=None))
        else:
            draft.enter_step(workflow, next_index)
    elif last:
        draft.complete(result, len(workflow.steps))
    else:
        draft.enter_step(workflow, next_index)
        if stopping:
            draft.transition(State.PENDING, step=step.name, reason="worker shutting down")
            draft.release_lease()
            draft.update["not_before"] = attempt.now
        else:
            draft.update["lease_expires_at"] = attempt.lease.until(attempt.now)
            draft.start_attempt(workflow, worker_id)
    return draft.done()


def _open_approval(draft: _Draft, step: Step, success: Success) -> None:
    approval_id = uuid.uuid4()
    draft.change.approvals.append(
        ApprovalRow(
            id=approval_id,
            request_id=draft.snap.id,
            step=step.name,
            status="pending",
            # What the reviewer decides on: the step's output (e.g. the normalised research
            # criteria) and why review was asked for.
            summary={"reason": success.review, **success.review_detail, "output": success.output},
            requested_at=draft.now,
        )
    )
    draft.transition(State.AWAITING_APPROVAL, step=step.name, reason=success.review or "gate")
    draft.event(
        ApprovalRequested(approval_id=str(approval_id), step=step.name, reason=success.review)
    )
    draft.release_lease()


def _record_failure(draft: _Draft, step: Step, failure: Failure, attempt: Attempt) -> None:
    row = draft.execution(
        step,
        status="timed_out" if failure.timed_out else "failed",
        worker_id=attempt.lease.worker_id,
        started_at=attempt.started_at,
        error=failure.text,
    )
    if failure.timed_out:
        draft.event(
            AgentTimedOut(step=step.name, attempt=draft.snap.attempt, timeout_seconds=step.timeout),
            agent_id=step.agent_id,
        )
    else:
        draft.event(
            AgentFailed(
                step=step.name,
                attempt=draft.snap.attempt,
                error_type=failure.error_type,
                error=failure.text,
                retryable=not failure.permanent and failure.review is None,
                duration_ms=row["duration_ms"],
            ),
            agent_id=step.agent_id,
        )
    draft.change.domain.extend(failure.writes)


def failed(snap: Snapshot, workflow: Workflow, failure: Failure, attempt: Attempt) -> Change:
    """An attempt failed and the request cannot go on by itself: it escalates when the agent
    asked for a person or the attempts are used up, and fails on a permanent error."""
    step = _running_step(snap, workflow)
    draft = _Draft(snap, attempt.lease.worker_id, attempt.now)
    _record_failure(draft, step, failure, attempt)
    if failure.review is not None:
        draft.escalate(step, failure.review, {"message": failure.message, **failure.detail})
    elif failure.permanent:
        draft.fail(step.name, failure.text, {"step": step.name, "error": failure.text})
    else:
        draft.escalate(
            step, "attempts_exhausted", {"attempts": snap.attempt, "last_error": failure.text}
        )
    return draft.done()


def retry_scheduled(
    snap: Snapshot,
    workflow: Workflow,
    failure: Failure,
    attempt: Attempt,
    rng: random.Random | None = None,
) -> Change:
    """An attempt failed with a retryable error: the next attempt waits out its backoff."""
    step = _running_step(snap, workflow)
    if snap.attempt >= snap.max_attempt:
        raise IllegalTransition(f"request {snap.id} has no attempts left at step {step.name}")
    draft = _Draft(snap, attempt.lease.worker_id, attempt.now)
    _record_failure(draft, step, failure, attempt)
    delay = step.retry.delay(snap.attempt, rng)
    not_before = attempt.now + timedelta(seconds=delay)
    draft.transition(State.PENDING, step=step.name, reason="retry scheduled")
    draft.event(
        AgentRetryScheduled(
            step=step.name,
            next_attempt=snap.attempt + 1,
            not_before=not_before,
            delay_seconds=round(delay, 3),
        ),
        agent_id=step.agent_id,
    )
    draft.update.update(RequestUpdate(attempt=snap.attempt + 1, not_before=not_before))
    draft.release_lease()
    return draft.done()


def attempt_failed(
    snap: Snapshot,
    workflow: Workflow,
    failure: Failure,
    attempt: Attempt,
    rng: random.Random | None = None,
) -> Change:
    """Retry when the error allows it and attempts remain; otherwise :func:`failed`."""
    if failure.permanent or failure.review is not None or snap.attempt >= snap.max_attempt:
        return failed(snap, workflow, failure, attempt)
    return retry_scheduled(snap, workflow, failure, attempt, rng)


def released(snap: Snapshot, workflow: Workflow, lease: Lease, now: datetime) -> Change:
    """A worker shutting down gives a request back: its interrupted attempt ends and the
    next one (one more in the budget) waits for any worker."""
    step = _running_step(snap, workflow)
    draft = _Draft(snap, lease.worker_id, now)
    draft.execution(
        step,
        status="interrupted",
        worker_id=lease.worker_id,
        started_at=now,
        error="worker shut down before the attempt finished",
    )
    draft.transition(State.PENDING, step=step.name, reason="released at worker shutdown")
    draft.update.update(
        RequestUpdate(attempt=snap.attempt + 1, max_attempt=snap.max_attempt + 1, not_before=now)
    )
    draft.release_lease()
    return draft.done()


# -- people steering ----------------------------------------------------------------------


def cancelled(snap: Snapshot, actor: str, reason: str | None, now: datetime) -> Change:
    """Cancel a request that has not finished; its open gates close and its files are owed a
    removal. The lease is left as it is: a worker still running the step keeps it until its
    agent returns (its result is then discarded), so nobody removes files under a live agent.
    """
    if snap.state in TERMINAL:
        raise IllegalTransition(f"request {snap.id} is already {snap.state}")
    draft = _Draft(snap, actor, now)
    draft.transition(State.CANCELLED, step=snap.current_step, reason=reason)
    draft.event(RequestCancelled(reason=reason, step=snap.current_step))
    draft.update["completed_at"] = now
    draft.change.gates.extend(
        (
            GateClosed("approvals", snap.id, None, "cancelled", by=actor, at=now),
            GateClosed("escalations", snap.id, None, "cancelled", by=actor, at=now),
        )
    )
    draft.owe_cleanup("cancelled")
    return draft.done()


def _decidable(snap: Snapshot, gate: Gate, state: State, open_status: str, noun: str) -> None:
    if gate.request_id != snap.id:
        raise IllegalTransition(f"{noun} {gate.id} belongs to request {gate.request_id}")
    if gate.status != open_status:
        raise IllegalTransition(f"{noun} {gate.id} is already {gate.status}")
    if snap.state != state:
        raise IllegalTransition(f"request {snap.id} is {snap.state}, not {state}")


def _decision(
    draft: _Draft, gate: Gate, decision: Literal["approve", "reject"], note: str | None
) -> None:
    draft.event(
        ApprovalDecided(approval_id=str(gate.id), step=gate.step, decision=decision, note=note)
    )
    draft.change.gates.append(
        GateClosed(
            table="approvals",
            request_id=gate.request_id,
            gate_id=gate.id,
            status="approved" if decision == "approve" else "rejected",
            by=draft.actor,
            at=draft.now,
            note=note,
        )
    )


def approved(
    snap: Snapshot, workflow: Workflow, gate: Gate, actor: str, note: str | None, now: datetime
) -> Change:
    """A reviewer approves the gate: the next step waits for a worker (or, after the last
    step, the request completes)."""
    _decidable(snap, gate, State.AWAITING_APPROVAL, "pending", "approval")
    draft = _Draft(snap, actor, now)
    _decision(draft, gate, "approve", note)
    if snap.step_index >= len(workflow.steps):
        draft.complete(snap.result, len(workflow.steps))
    else:
        draft.transition(State.PENDING, step=gate.step, reason="approved")
        draft.update["not_before"] = now
    return draft.done()


def rejected(
    snap: Snapshot, workflow: Workflow, gate: Gate, actor: str, note: str | None, now: datetime
) -> Change:
    """A reviewer rejects the gate: the request fails with the reviewer's note."""
    _decidable(snap, gate, State.AWAITING_APPROVAL, "pending", "approval")
    draft = _Draft(snap, actor, now)
    _decision(draft, gate, "reject", note)
    draft.fail(gate.step, f"rejected by {actor}", {"rejected": note or ""})
    return draft.done()


def resolved(
    snap: Snapshot,
    workflow: Workflow,
    gate: Gate,
    resolution: Literal["retry", "skip", "fail"],
    actor: str,
    note: str | None,
    now: datetime,
) -> Change:
    """A reviewer decides an escalated request: retry the step (with a fresh budget), skip
    it (its output records the skip), or fail the request."""
    _decidable(snap, gate, State.ESCALATED, "open", "escalation")
    step = workflow.steps[snap.step_index]
    draft = _Draft(snap, actor, now)
    draft.event(
        EscalationResolved(
            escalation_id=str(gate.id), step=gate.step, resolution=resolution, note=note
        )
    )
    draft.change.gates.append(
        GateClosed(
            table="escalations",
            request_id=gate.request_id,
            gate_id=gate.id,
            status="resolved",
            by=actor,
            at=now,
            note=note,
            resolution=resolution,
        )
    )
    if resolution == "fail":
        draft.fail(step.name, f"failed by {actor}", {"escalation": gate.reason})
    elif resolution == "retry":
        draft.transition(State.PENDING, step=step.name, reason="escalation: retry")
        attempt = snap.attempt + 1
        draft.update.update(
            RequestUpdate(
                attempt=attempt, max_attempt=attempt + step.retry.max_attempts - 1, not_before=now
            )
        )
    else:
        result = merge_result(snap.result, step.name, {"skipped": True, "by": actor})
        draft.update["result"] = result
        if snap.step_index + 1 >= len(workflow.steps):
            draft.complete(result, len(workflow.steps))
        else:
            draft.transition(State.PENDING, step=step.name, reason="escalation: skip")
            draft.enter_step(workflow, snap.step_index + 1)
            draft.update["not_before"] = now
    return draft.done()


def discarded_execution(
    snap: Snapshot,
    workflow: Workflow,
    *,
    worker_id: str,
    started_at: datetime,
    now: datetime,
    reason: str,
) -> ExecutionRow:
    """The ``agent_executions`` row of a result that lost its fence (recorded, not applied)."""
    step = workflow.steps[snap.step_index]
    return _Draft(snap, worker_id, now).execution(
        step, status="discarded", worker_id=worker_id, started_at=started_at, error=reason
    )


__all__ = [
    "ERROR_TEXT",
    "Attempt",
    "Failure",
    "Lease",
    "Success",
    "approved",
    "attempt_failed",
    "cancelled",
    "claimed",
    "discarded_execution",
    "failed",
    "input_digest",
    "merge_result",
    "recovered",
    "rejected",
    "released",
    "resolved",
    "retry_scheduled",
    "submitted",
    "succeeded",
    "taken",
]
