"""Retrying database work that met a restart, a lost connection, a lock or a deadlock.

:data:`TRANSIENT` is the one list of errors worth retrying; every other ``DatabaseError``
(no such database, login refused, no tables, permission denied, read-only) is permanent
and reaches the caller at once. :func:`transient_retry` is the one policy (exponential
backoff with jitter, logged). The Orchestrator's calls use it through two decorators: a
read is retried on any transient error; a write only when nothing of it can have been
written: SQLite stayed locked past ``busy_timeout`` (``DatabaseBusy``), or PostgreSQL
rolled the transaction back for a deadlock or a serialization failure
(``DatabaseConflict``). A connection lost during a write may have lost it before or after
COMMIT, so that error goes to the caller (the API answers 503 and the client retries with
its ``Idempotency-Key``).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import structlog
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from app.database import DatabaseBusy, DatabaseConflict, DatabaseUnavailable

log = structlog.get_logger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

#: Transient database trouble: retried (with backoff) before the caller hears of it.
TRANSIENT: tuple[type[Exception], ...] = (DatabaseUnavailable, DatabaseBusy, DatabaseConflict)
#: What a write may retry: errors that guarantee nothing of the transaction was written.
WRITE_RETRYABLE: tuple[type[Exception], ...] = (DatabaseBusy, DatabaseConflict)


def transient_retry(
    attempts: int = 5, on: tuple[type[Exception], ...] = TRANSIENT
) -> AsyncRetrying:
    """Tenacity policy for database calls that may meet one of the errors ``on``."""
    return AsyncRetrying(
        retry=retry_if_exception_type(on),
        stop=stop_after_attempt(attempts),
        wait=wait_exponential_jitter(multiplier=0.05, max=2.0),
        reraise=True,
        before_sleep=lambda state: log.warning(
            "database_retry",
            attempt=state.attempt_number,
            error=str(state.outcome.exception()) if state.outcome else None,
        ),
    )


def _retrying(
    on: tuple[type[Exception], ...],
) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Awaitable[T]]]:
    def decorate(method: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        @functools.wraps(method)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            async for attempt in transient_retry(on=on):
                with attempt:
                    return await method(*args, **kwargs)
            raise AssertionError("unreachable: tenacity reraises")

        return wrapper

    return decorate


#: Retry a read with backoff on any transient database error.
retrying_read = _retrying(TRANSIENT)
#: Retry a write with backoff while SQLite stays locked by another process, or after a
#: deadlock or serialization failure rolled it back (at most ``transient_retry``'s attempts).
retrying_write = _retrying(WRITE_RETRYABLE)
