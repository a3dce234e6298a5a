"""Webhook callbacks on real databases: the outbox row commits with its change of state (or
not at all), workers send each signed callback to a real receiver on 127.0.0.1 exactly as
docs/webhooks.md documents, retry with backoff while it is down, and record each attempt;
a failing receiver never changes the request's outcome."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from app.audit.events import CallbackFailed, CallbackSent, parse_event
from app.auth.keys import create_client, set_webhook
from app.config import Settings
from app.database import Database
from app.database.models import AuditLog, CallbackOutbox, Request
from app.database.types import utcnow
from app.orchestrator import transitions
from app.orchestrator.changes import lock_snapshot, write_changes
from app.orchestrator.engine import Orchestrator
from app.orchestrator.exceptions import InvalidRequest
from app.orchestrator.worker import Worker
from app.webhooks import WebhookVerificationError, verify_webhook
from app.webhooks.sender import CallbackSender
from tests.support.agents import engine_agents, engine_workflows
from tests.support.checks import assert_ledger_consistent
from tests.support.receiver import Receiver

CLIENT = "svc-hooks"


def settings_for(**changes: Any) -> Settings:
    values: dict[str, Any] = {
        "poll_seconds": 0.02,
        "lease_seconds": 5,
        "heartbeat_seconds": 1,
        "webhook_allow_http_loopback": True,
        "webhook_backoff_seconds": 0.05,
        "webhook_backoff_max_seconds": 0.2,
        "webhook_poll_seconds": 0.05,
        "webhook_timeout_seconds": 2.0,
    }
    return Settings(**{**values, **changes})


@pytest.fixture
async def secret(database: Database) -> str:
    return (await create_client(database, CLIENT, "submitter")).webhook_secret


@pytest.fixture
async def orchestrator(database: Database) -> AsyncIterator[Orchestrator]:
    orch = Orchestrator(
        database, engine_workflows(timeout=5.0, gate_after="second"), settings=settings_for()
    )
    yield orch
    await assert_ledger_consistent(database)


async def run_workers(orchestrator: Orchestrator, settings: Settings | None = None) -> None:
    worker = Worker(orchestrator, engine_agents(), settings=settings or settings_for())
    await worker.run(until_idle=True)


async def to_completion(orchestrator: Orchestrator, url: str) -> uuid.UUID:
    """A request with ``url`` run to its gate, approved, and run to completion."""
    view = await orchestrator.submit("test", {"numbers": [1]}, CLIENT, callback_url=url)
    await run_workers(orchestrator)
    [gate] = await orchestrator.approvals()
    await orchestrator.decide_approval(gate.id, "dr-review", "approve")
    await run_workers(orchestrator)
    assert (await orchestrator.get(view.id)).state == "completed"
    return view.id


async def outbox(database: Database) -> list[CallbackOutbox]:
    async with database.read_session() as session:
        query = select(CallbackOutbox).order_by(CallbackOutbox.created_at)
        return list((await session.execute(query)).scalars())


async def callback_events(database: Database) -> list[tuple[AuditLog, Any]]:
    async with database.read_session() as session:
        rows = (
            await session.execute(
                select(AuditLog)
                .where(AuditLog.event_type.in_(("callback_sent", "callback_failed")))
                .order_by(AuditLog.chain_key, AuditLog.seq)
            )
        ).scalars()
        return [(row, parse_event(row.event_type, row.event_data)) for row in rows]


async def until(check: Callable[[], Any], sender: CallbackSender, timeout: float = 10) -> None:
    """Run the sender's passes until ``check()`` holds (backoffs are tens of milliseconds)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the callbacks did not settle in time"
        await sender.run_once()
        await asyncio.sleep(0.02)


# -- the outbox row and its change of state ----------------------------------------------


async def test_outbox_row_exists_iff_the_state_change_committed(
    orchestrator: Orchestrator, database: Database, secret: str
) -> None:
    view = await orchestrator.submit(
        "test", {"numbers": [1]}, CLIENT, callback_url="https://hooks.example.org/in"
    )
    # The cancel is rolled back: neither the change nor its callback is there.
    with pytest.raises(RuntimeError):
        async with database.session() as session:
            snap = await lock_snapshot(session, view.id)
            change = transitions.cancelled(snap, "svc-hooks", "oops", utcnow())
            assert len(change.outbox) == 1
            await write_changes(session, [change])
            raise RuntimeError("rolled back")
    assert await outbox(database) == []
    assert (await orchestrator.get(view.id)).state == "pending"
    # A change whose fence no longer holds writes nothing, its callback neither.
    stale = transitions.cancelled(snap, "svc-hooks", "stale", utcnow())
    await orchestrator.cancel(view.id, "svc-hooks", "for real")
    async with database.session() as session:
        assert await write_changes(session, [stale]) == set()
    [row] = await outbox(database)
    assert (row.request_id, row.state, row.kind, row.client) == (
        view.id,
        "cancelled",
        "test",
        CLIENT,
    )
    assert row.url == "https://hooks.example.org/in"
    assert (row.attempts, row.sent_at, row.failed_at) == (0, None, None)


async def test_callbacks_are_owed_only_for_terminal_and_waiting_states(
    orchestrator: Orchestrator, database: Database, secret: str
) -> None:
    plain = await orchestrator.submit("single", {"numbers": [1]}, CLIENT)
    await to_completion(orchestrator, "https://hooks.example.org/in")
    await run_workers(orchestrator)
    assert (await orchestrator.get(plain.id)).state == "completed"
    rows = await outbox(database)
    # pending and running are not announced; a request without a URL owes nothing.
    assert [r.state for r in rows] == ["awaiting_approval", "completed"]
    assert plain.id not in {r.request_id for r in rows}


async def test_a_non_https_callback_url_is_refused_naming_the_field(
    orchestrator: Orchestrator, database: Database, secret: str
) -> None:
    orchestrator.settings = settings_for(webhook_allow_http_loopback=False)
    for url in (
        "http://hooks.example.org/in",
        "http://127.0.0.1:9000/in",
        "ftp://hooks.example.org/in",
        "hooks.example.org/in",
        "https://user:pw@hooks.example.org/in",
        "https:///no-host",
    ):
        with pytest.raises(InvalidRequest) as refused:
            await orchestrator.submit("test", {"numbers": [1]}, CLIENT, callback_url=url)
        assert refused.value.field == "callback_url", url
    async with database.read_session() as session:
        assert (await session.execute(select(func.count()).select_from(Request))).scalar() == 0
    orchestrator.settings = settings_for(webhook_allow_http_loopback=True)
    view = await orchestrator.submit(
        "test", {"numbers": [1]}, CLIENT, callback_url="http://127.0.0.1:9000/in"
    )
    with pytest.raises(InvalidRequest):  # loopback only, even when allowed
        await orchestrator.submit(
            "test", {"numbers": [1]}, CLIENT, callback_url="http://hooks.example.org/in"
        )
    assert view.state == "pending"


# -- sending -----------------------------------------------------------------------------


async def test_each_signed_callback_reaches_the_receiver_exactly_as_documented(
    orchestrator: Orchestrator, database: Database, secret: str
) -> None:
    with Receiver() as hooks:
        request_id = await to_completion(orchestrator, hooks.url)
        sender = CallbackSender(database, settings_for(), "worker-test")
        await until(lambda: len(hooks.received) >= 2, sender)
    rows = await outbox(database)
    assert [r.state for r in rows] == ["awaiting_approval", "completed"]
    assert all(r.sent_at is not None and r.attempts == 1 for r in rows)
    for got, row in zip(hooks.received, rows, strict=True):
        assert got.path == "/hooks/ledgerflow"
        headers = {k.lower(): v for k, v in got.headers.items()}
        assert headers["content-type"] == "application/json"
        assert headers["webhook-id"] == str(row.id)
        stamp = headers["webhook-timestamp"]
        assert abs(int(stamp) - time.time()) < 60
        # The signature, computed the way docs/webhooks.md tells a receiver to.
        expected = hmac.new(
            secret.encode(), stamp.encode() + b"." + got.body, hashlib.sha256
        ).hexdigest()
        assert headers["webhook-signature"] == f"v1={expected}"
        event = verify_webhook(secret, got.headers, got.body)
        assert event == json.loads(got.body)
        assert set(event) == {"id", "request_id", "kind", "state", "at"}
        assert (event["id"], event["request_id"], event["kind"], event["state"]) == (
            str(row.id),
            str(request_id),
            "test",
            row.state,
        )
        assert event["at"].endswith("Z")
        with pytest.raises(WebhookVerificationError):
            verify_webhook("whsec_wrong", got.headers, got.body)
    events = await callback_events(database)
    assert [type(e) for _, e in events] == [CallbackSent, CallbackSent]
    for audit, event in events:
        assert (audit.chain_key, audit.request_id) == ("system", request_id)
        assert (event.host, event.status, event.attempt) == ("127.0.0.1", 204, 1)
        assert "hooks/ledgerflow" not in json.dumps(audit.event_data)  # host only, no URL


async def test_workers_send_the_callbacks_themselves(
    orchestrator: Orchestrator, database: Database, secret: str
) -> None:
    with Receiver() as hooks:
        view = await orchestrator.submit("single", {"numbers": [1]}, CLIENT, callback_url=hooks.url)
        worker = Worker(orchestrator, engine_agents(), settings=settings_for())
        running = asyncio.create_task(worker.run())
        deadline = time.monotonic() + 15
        while not hooks.received:
            assert time.monotonic() < deadline, "no callback arrived"
            await asyncio.sleep(0.05)
        worker.stop()
        await running
    [got] = hooks.received
    event = verify_webhook(secret, got.headers, got.body)
    assert (event["request_id"], event["state"]) == (str(view.id), "completed")


async def test_a_receiver_down_for_a_while_still_gets_the_callback(
    orchestrator: Orchestrator, database: Database, secret: str
) -> None:
    hooks = Receiver()  # not listening yet
    request_id = await to_completion(orchestrator, hooks.url)
    sender = CallbackSender(database, settings_for(), "worker-test")
    await sender.run_once()
    await sender.run_once()
    rows = await outbox(database)
    assert all(r.sent_at is None and r.failed_at is None for r in rows)
    assert {r.last_error for r in rows} == {"connect_error"}
    assert all(r.not_before > r.created_at for r in rows)  # backed off
    with hooks:
        await until(lambda: len(hooks.received) >= 2, sender)
    rows = await outbox(database)
    assert all(r.sent_at is not None and r.attempts >= 2 for r in rows)
    assert {verify_webhook(secret, g.headers, g.body)["state"] for g in hooks.received} == {
        "awaiting_approval",
        "completed",
    }
    events = [e for _, e in await callback_events(database)]
    failed = [e for e in events if isinstance(e, CallbackFailed)]
    sent = [e for e in events if isinstance(e, CallbackSent)]
    assert failed and all(
        (e.error_type, e.status, e.final) == ("connect_error", None, False) for e in failed
    )
    assert len(sent) == 2 and all(e.attempt >= 2 for e in sent)
    assert (await orchestrator.get(request_id)).state == "completed"


async def test_a_receiver_answering_500_ends_in_callback_failed_and_the_request_stays_completed(
    orchestrator: Orchestrator, database: Database, secret: str
) -> None:
    settings = settings_for(webhook_max_attempts=3)
    with Receiver(default=500) as hooks:
        view = await orchestrator.submit("single", {"numbers": [1]}, CLIENT, callback_url=hooks.url)
        await run_workers(orchestrator, settings)
        sender = CallbackSender(database, settings, "worker-test")

        async def settled() -> bool:
            return all(r.failed_at is not None for r in await outbox(database))

        deadline = time.monotonic() + 10
        while not await settled():
            assert time.monotonic() < deadline
            await sender.run_once()
            await asyncio.sleep(0.02)
    assert len(hooks.received) == 3
    [row] = await outbox(database)
    assert (row.attempts, row.last_status, row.sent_at) == (3, 500, None)
    events = [e for _, e in await callback_events(database)]
    assert [(e.attempt, e.status, e.final) for e in events] == [
        (1, 500, False),
        (2, 500, False),
        (3, 500, True),
    ]
    assert all(isinstance(e, CallbackFailed) and e.host == "127.0.0.1" for e in events)
    done = await orchestrator.get(view.id)
    assert done.state == "completed" and done.error is None
    assert await sender.run_once() == 0  # nothing owed any more


async def test_redirects_are_not_followed_and_slow_receivers_time_out(
    orchestrator: Orchestrator, database: Database, secret: str
) -> None:
    settings = settings_for(webhook_max_attempts=1, webhook_timeout_seconds=0.3)
    with Receiver(default=307) as moved, Receiver(delay=1.0) as slow:
        for url in (moved.url, slow.url):
            await orchestrator.submit("single", {"numbers": [1]}, CLIENT, callback_url=url)
        await run_workers(orchestrator, settings)
        await CallbackSender(database, settings, "worker-test").run_once()
    events = {e.host + str(e.status): e for _, e in await callback_events(database)}
    assert {(e.status, e.error_type, e.final) for e in events.values()} == {
        (307, "redirect", True),
        (None, "timeout", True),
    }
    assert len(moved.received) == 1  # the Location was never called


async def test_the_clients_default_url_and_rotated_secret_are_used(
    orchestrator: Orchestrator, database: Database, secret: str
) -> None:
    with Receiver() as hooks:
        changed = await set_webhook(
            database, CLIENT, url=hooks.url, rotate_secret=True, allow_http_loopback=True
        )
        assert changed.secret is not None and changed.secret != secret
        assert changed.client.callback_url == hooks.url
        view = await orchestrator.submit(
            "single", {"numbers": [1]}, CLIENT, callback_url=changed.client.callback_url
        )
        await run_workers(orchestrator)
        sender = CallbackSender(database, settings_for(), "worker-test")
        await until(lambda: len(hooks.received) >= 1, sender)
    [got] = hooks.received
    assert verify_webhook(changed.secret, got.headers, got.body)["request_id"] == str(view.id)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(secret, got.headers, got.body)


async def test_a_submitter_without_a_webhook_secret_gets_a_final_failure(
    orchestrator: Orchestrator, database: Database
) -> None:
    await orchestrator.submit(
        "single", {"numbers": [1]}, "not-a-client", callback_url="https://hooks.example.org/in"
    )
    await run_workers(orchestrator)
    await CallbackSender(database, settings_for(), "worker-test").run_once()
    [(_, event)] = await callback_events(database)
    assert isinstance(event, CallbackFailed)
    assert (event.error_type, event.final, event.host) == ("no_secret", True, "hooks.example.org")
