"""When to send a call again: 429 and 503 answers and connection errors, with exponential
backoff and jitter, honouring ``Retry-After``, a bounded number of times.

Pure: :meth:`RetryPolicy.delay` looks at the attempt number and what came back and says how
long to sleep before the next attempt, or ``None`` to stop. Every call the client makes is
safe to send twice: reads, ``PUT`` of a transcript (a replay is recognised by the server),
and submissions and uploads, which carry an ``Idempotency-Key`` kept across their retries.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

#: Connection errors that say nothing was (or may have been) done: worth another try.
#: ``UnsupportedProtocol``, ``LocalProtocolError`` and ``ProxyError`` would fail again.
_FATAL = (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.ProxyError)


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """A ``Retry-After`` header in seconds: delta-seconds or an HTTP date (RFC 9110)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass(frozen=True)
class RetryPolicy:
    """How many times, and how long apart, a call is sent again.

    Attempt ``n`` (0-based) that failed waits ``b/2 + uniform(0, b/2)`` with
    ``b = min(max_backoff, backoff * 2**n)`` ("equal jitter"); a ``Retry-After`` is honoured
    as the least wait (plus up to 10 % jitter, so refused callers do not return together).
    A ``Retry-After`` longer than ``max_retry_after`` is not waited for: the error is raised.
    """

    #: Attempts in all, the first included (1: never retry).
    attempts: int = 5
    #: The first backoff, in seconds; doubled on each attempt.
    backoff: float = 0.5
    #: The longest backoff, in seconds.
    max_backoff: float = 8.0
    #: The longest ``Retry-After`` the client waits for, in seconds.
    max_retry_after: float = 60.0
    #: HTTP statuses worth another attempt.
    statuses: frozenset[int] = frozenset({429, 503})
    #: ``uniform(a, b)``; replace it for deterministic tests.
    uniform: Callable[[float, float], float] = field(default=random.uniform, repr=False)

    def delay(self, attempt: int, outcome: httpx.Response | httpx.TransportError) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or ``None``: use ``outcome``."""
        if attempt + 1 >= self.attempts:
            return None
        if isinstance(outcome, httpx.TransportError):
            return None if isinstance(outcome, _FATAL) else self._backoff(attempt)
        if outcome.status_code not in self.statuses:
            return None
        asked = retry_after_seconds(outcome.headers.get("Retry-After"))
        if asked is None:
            return self._backoff(attempt)
        if asked > self.max_retry_after:
            return None
        return asked + self.uniform(0.0, asked / 10)

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.max_backoff, self.backoff * 2.0**attempt)
        return ceiling / 2 + self.uniform(0.0, ceiling / 2)


__all__ = ["RetryPolicy", "retry_after_seconds"]
