"""Request states and the one table of allowed transitions (pure Python, no database)."""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    """Where a request is in its life."""

    #: Waiting for a worker: new, a retry scheduled for ``not_before``, approved or resumed.
    PENDING = "pending"
    #: A worker holds the lease and runs ``current_step`` (or the lease expired: claimable).
    RUNNING = "running"
    #: A planned human gate: a reviewer must approve or reject before the next step.
    AWAITING_APPROVAL = "awaiting_approval"
    #: An unplanned stop (retries exhausted, agent asked for a person): resolve to go on.
    ESCALATED = "escalated"
    #: Every step succeeded. Terminal.
    COMPLETED = "completed"
    #: A permanent error, a rejection or an escalation resolved as failed. Terminal.
    FAILED = "failed"
    #: Cancelled by a person or a service. Terminal.
    CANCELLED = "cancelled"


TERMINAL: frozenset[State] = frozenset({State.COMPLETED, State.FAILED, State.CANCELLED})
#: A person must act before the request goes on: a reviewer decides the gate or escalation.
WAITING_FOR_PERSON: frozenset[State] = frozenset({State.AWAITING_APPROVAL, State.ESCALATED})
#: Where a caller waiting for a request stops waiting: it finished, or a person must act.
SETTLED: frozenset[State] = TERMINAL | WAITING_FOR_PERSON

#: Every allowed change of state. Advancing from one step to the next while ``running`` is
#: not a change of state (it is recorded by agent events), nor is a crashed worker's lease
#: being taken over (``step_recovered``).
ALLOWED: dict[State, frozenset[State]] = {
    State.PENDING: frozenset({State.RUNNING, State.CANCELLED}),
    State.RUNNING: frozenset(
        {
            State.PENDING,
            State.AWAITING_APPROVAL,
            State.ESCALATED,
            State.COMPLETED,
            State.FAILED,
            State.CANCELLED,
        }
    ),
    State.AWAITING_APPROVAL: frozenset(
        {State.PENDING, State.COMPLETED, State.FAILED, State.CANCELLED}
    ),
    State.ESCALATED: frozenset({State.PENDING, State.COMPLETED, State.FAILED, State.CANCELLED}),
    State.COMPLETED: frozenset(),
    State.FAILED: frozenset(),
    State.CANCELLED: frozenset(),
}

#: States a worker may claim from (``running`` only once its lease has expired).
CLAIMABLE: frozenset[State] = frozenset({State.PENDING, State.RUNNING})


def can_transition(source: State, target: State) -> bool:
    """True when ``source -> target`` is in :data:`ALLOWED`."""
    return target in ALLOWED[source]
