"""Orchestrator errors.

Tree::

    OrchestratorError
    ├── IllegalTransition      the request is not in a state that allows this
    ├── LeaseLost              a worker's lease was taken over; its result is discarded
    ├── NotFound               no such request, approval or escalation
    ├── IdempotencyConflict    same idempotency key, different payload
    ├── InvalidRequest         the payload or a field is invalid (names the field)
    ├── QueueFull              too many pending requests; retry after a while (HTTP 429)
    ├── TooManyWaiters         too many long polls and event streams at once (HTTP 503)
    └── UnknownAgent           a workflow names an agent nobody registered
"""

from __future__ import annotations

from collections.abc import Sequence

from app.exceptions import LedgerflowError
from app.validation import FieldProblem, describe


class OrchestratorError(LedgerflowError):
    """The orchestrator refused the operation."""

    code = "orchestrator_error"


class IllegalTransition(OrchestratorError):
    """The request is not in a state that allows this."""

    code = "illegal_transition"


class LeaseLost(OrchestratorError):
    """The lease was taken over by another worker; the late result was discarded."""

    code = "lease_lost"


class NotFound(OrchestratorError):
    """No such object."""

    code = "not_found"


class IdempotencyConflict(OrchestratorError):
    """The idempotency key was already used with a different payload."""

    code = "idempotency_conflict"


class InvalidRequest(OrchestratorError):
    """The request is invalid.

    Raised for one field (``message`` and ``field``) or for several at once (``problems``,
    every one named; the message lists them all and ``field`` is the first one's).
    """

    code = "invalid_request"

    def __init__(
        self,
        message: str | None = None,
        *,
        field: str | None = None,
        problems: Sequence[FieldProblem] = (),
    ) -> None:
        if problems and message is None:
            field = field or problems[0].field
            super().__init__(describe(problems))
        else:
            super().__init__(f"{field}: {message}" if field and message else message)
        self.field = field
        #: Every invalid field with its message (one entry for a single-field error).
        self.problems: tuple[FieldProblem, ...] = tuple(problems) or (
            (FieldProblem(field, message),) if field and message else ()
        )


class QueueFull(OrchestratorError):
    """Too many requests are waiting; submit again later."""

    code = "queue_full"

    def __init__(
        self, message: str | None = None, *, retry_after: int = 30, limit: int | None = None
    ) -> None:
        super().__init__(message)
        #: Seconds the caller should wait before submitting again (HTTP ``Retry-After``).
        self.retry_after = retry_after
        #: The ``MAX_QUEUED_REQUESTS`` limit that was reached.
        self.limit = limit


class TooManyWaiters(OrchestratorError):
    """Too many callers are waiting for requests in this process; try again shortly."""

    code = "too_many_waiters"

    def __init__(self, message: str | None = None, *, retry_after: int = 2) -> None:
        super().__init__(message)
        #: Seconds the caller should wait before trying again (HTTP ``Retry-After``).
        self.retry_after = retry_after


class UnknownAgent(OrchestratorError):
    """A workflow names an agent that is not registered."""

    code = "unknown_agent"
