"""Retries: a full queue (429 with ``Retry-After``) against a real server, the policy's
arithmetic, and an ``Idempotency-Key`` kept across a connection error's retry."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from app.agents.research import sample_research_payloads
from app.client import Client, RateLimited, RetryPolicy
from app.client.retry import retry_after_seconds
from tests.client.conftest import Served, start, stop


@pytest.fixture
def queue_of_one(tmp_path: Path) -> Iterator[Served]:
    """An API without workers that refuses a second pending request for 1 s."""
    url = make_url(f"sqlite+aiosqlite:///{tmp_path / 'ledgerflow.db'}")
    extra = {"MAX_QUEUED_REQUESTS": "1", "QUEUE_FULL_RETRY_AFTER_SECONDS": "1"}
    served = start(tmp_path, url, extra, "--no-workers")
    try:
        yield served
    finally:
        stop(served)


@pytest.mark.slow
def test_a_full_queue_is_retried_after_retry_after_until_it_has_room(
    queue_of_one: Served,
) -> None:
    payload = sample_research_payloads()["type2_diabetes_adults"]
    no_retry = RetryPolicy(attempts=1)
    with Client(queue_of_one.base_url, queue_of_one.keys["submitter"], retry=no_retry) as lf:
        first = lf.submit("research", payload)
        with pytest.raises(RateLimited) as refused:
            lf.submit("research", payload)
        assert refused.value.status == 429 and refused.value.retry_after == 1
        assert "MAX_QUEUED_REQUESTS=1" in refused.value.detail

    headers = {"Authorization": f"Bearer {queue_of_one.keys['submitter']}"}
    cancel = threading.Timer(
        0.3,
        lambda: httpx.post(
            f"{queue_of_one.base_url}/v1/requests/{first.id}/cancel", headers=headers, timeout=30
        ),
    )
    with Client(queue_of_one.base_url, queue_of_one.keys["submitter"]) as lf:
        started = time.monotonic()
        cancel.start()
        second = lf.submit("research", payload)
        elapsed = time.monotonic() - started
        cancel.join()
    assert second.state == "pending" and second.id != first.id
    assert elapsed >= 1.0  # refused once, then sent again no sooner than Retry-After said


def test_retry_after_is_read_as_seconds_or_a_date() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_the_policy_backs_off_with_jitter_honours_retry_after_and_stops() -> None:
    top = RetryPolicy(attempts=4, backoff=0.5, max_backoff=1.5, uniform=lambda _a, b: b)
    busy = httpx.Response(503)
    assert [top.delay(n, busy) for n in range(4)] == [0.5, 1.0, 1.5, None]
    limited = httpx.Response(429, headers={"Retry-After": "2"})
    assert top.delay(0, limited) == pytest.approx(2.2)  # at least 2 s, jittered by up to 10 %
    assert top.delay(0, httpx.Response(429, headers={"Retry-After": "3600"})) is None
    assert top.delay(0, httpx.Response(404)) is None
    assert top.delay(0, httpx.ConnectError("refused")) == 0.5
    assert top.delay(0, httpx.UnsupportedProtocol("ftp")) is None


def test_a_submission_keeps_its_idempotency_key_across_a_connection_error() -> None:
    keys: list[str] = []
    body = {
        "id": "0190b7b2-8d3c-7c4e-9c35-6a2f3c1b2a10",
        "kind": "research",
        "state": "pending",
        "current_step": None,
        "step_index": 0,
        "attempt": 0,
        "priority": 0,
        "submitted_by": "svc",
        "idempotency_key": None,
        "payload": {},
        "result": None,
        "error": None,
        "created_at": "2025-01-01T00:00:00Z",
        "updated_at": "2025-01-01T00:00:00Z",
        "completed_at": None,
    }

    def answer(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers["Idempotency-Key"])
        if len(keys) == 1:
            raise httpx.ConnectError("connection reset", request=request)
        return httpx.Response(201, json=body)

    fast, fake = RetryPolicy(backoff=0.01), httpx.MockTransport(answer)
    with Client("http://ledgerflow.test", "k", retry=fast, transport=fake) as lf:
        lf.submit("research", {"researcher": "x"})
        lf.submit("research", {"researcher": "x"})
    assert len(keys) == 3 and keys[0] == keys[1] != keys[2]
