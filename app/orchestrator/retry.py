"""Retrying the Orchestrator's calls when the database is briefly unavailable or locked.

A read is retried on any transient error (:data:`app.orchestrator.commit.TRANSIENT`). A
write is retried only when SQLite stayed locked past ``busy_timeout`` (``DatabaseBusy``):
then nothing was written. A connection lost during a write may have lost it before or
after COMMIT, so that error goes to the caller (the API answers 503 and the client
retries with its ``Idempotency-Key``).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from tenacity import retry_if_exception_type

from app.database import DatabaseBusy
from app.orchestrator.commit import transient_retry

P = ParamSpec("P")
T = TypeVar("T")


def retrying_read(method: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Retry ``method`` with backoff on a transient database error."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        async for attempt in transient_retry():
            with attempt:
                return await method(*args, **kwargs)
        raise AssertionError("unreachable: tenacity reraises")

    return wrapper


def retrying_write(method: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Retry ``method`` with backoff while SQLite stays locked by another process."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        retrying = transient_retry()
        retrying.retry = retry_if_exception_type(DatabaseBusy)
        async for attempt in retrying:
            with attempt:
                return await method(*args, **kwargs)
        raise AssertionError("unreachable: tenacity reraises")

    return wrapper
