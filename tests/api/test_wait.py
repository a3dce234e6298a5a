"""Knowing when a request is done, over HTTP: the long poll (``GET /v1/requests/{id}?wait=``)
and the event stream (``GET /v1/requests/{id}/events``), on both backends.

Requests are submitted through the Python API as the ``svc-research`` client (the small
engine workflows of ``tests.support.agents``: a gate after ``second``) and read over HTTP
with its key; real workers run them in the same event loop.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.bootstrap import Services, build_services
from app.config import Settings
from app.database import Database
from app.orchestrator.worker import Worker
from tests.api.conftest import CLIENTS, bearer
from tests.support.agents import engine_agents, engine_workflows

OWNER = CLIENTS["submitter"][0]


@pytest.fixture
def settings(database: Database, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database.url.render_as_string(hide_password=False),
        poll_seconds=0.02,
        metrics_cache_seconds=0,
        watch_poll_seconds=0.05,
        sse_heartbeat_seconds=0.2,
    )


@pytest.fixture
async def services(settings: Settings, database: Database) -> AsyncIterator[Services]:
    built = build_services(
        settings,
        database=database,
        workflows=engine_workflows(timeout=5.0, gate_after="second"),
        agents=engine_agents(),
    )
    yield built
    built.watcher.close()


async def submit(services: Services, kind: str = "test", **payload: Any) -> uuid.UUID:
    view = await services.orchestrator.submit(kind, {"numbers": [1, 2], **payload}, OWNER)
    return view.id


async def run_workers(services: Services) -> None:
    worker = Worker(services.orchestrator, services.agents, settings=services.settings)
    await worker.run(until_idle=True)


async def approve(services: Services, request_id: uuid.UUID) -> None:
    [gate] = [a for a in await services.orchestrator.approvals() if a.request_id == request_id]
    await services.orchestrator.decide_approval(gate.id, "dr-review", "approve")


async def timed_get(
    client: httpx.AsyncClient, key: str, request_id: uuid.UUID, wait: float
) -> tuple[httpx.Response, float]:
    began = time.monotonic()
    response = await client.get(
        f"/v1/requests/{request_id}", params={"wait": wait}, headers=bearer(key)
    )
    return response, time.monotonic() - began


# -- the long poll ----------------------------------------------------------------------


@pytest.mark.parametrize("wait", ["61", "-1", "soon", "60.5"])
async def test_wait_outside_0_to_60_is_refused_naming_wait(
    client: httpx.AsyncClient, keys: dict[str, str], services: Services, wait: str
) -> None:
    request_id = await submit(services)
    response = await client.get(
        f"/v1/requests/{request_id}", params={"wait": wait}, headers=bearer(keys["submitter"])
    )
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "wait"


async def test_wait_answers_at_once_when_the_request_waits_for_a_person(
    client: httpx.AsyncClient, keys: dict[str, str], services: Services
) -> None:
    request_id = await submit(services)
    await run_workers(services)
    response, took = await timed_get(client, keys["submitter"], request_id, 30)
    assert response.status_code == 200
    assert response.json()["state"] == "awaiting_approval"
    assert took < 2


async def test_wait_answers_at_once_when_the_request_has_finished(
    client: httpx.AsyncClient, keys: dict[str, str], services: Services
) -> None:
    request_id = await submit(services, kind="single")
    await run_workers(services)
    response, took = await timed_get(client, keys["submitter"], request_id, 30)
    assert response.json()["state"] == "completed"
    assert took < 2


async def test_wait_answers_when_the_state_changes(
    client: httpx.AsyncClient, keys: dict[str, str], services: Services
) -> None:
    request_id = await submit(services)
    poll = asyncio.create_task(timed_get(client, keys["submitter"], request_id, 30))
    await asyncio.sleep(0.3)
    assert not poll.done()  # pending, nobody runs it: the poll waits
    await run_workers(services)
    response, took = await asyncio.wait_for(poll, 10)
    assert response.status_code == 200
    assert response.json()["state"] != "pending"
    assert took < 10


async def test_wait_answers_with_the_request_as_it_is_when_the_time_is_up(
    client: httpx.AsyncClient, keys: dict[str, str], services: Services
) -> None:
    request_id = await submit(services)
    response, took = await timed_get(client, keys["submitter"], request_id, 0.5)
    assert response.status_code == 200
    assert response.json()["state"] == "pending"
    assert 0.45 <= took < 5
    assert services.watcher.waiters == 0


async def test_wait_follows_the_same_owner_rule_as_get(
    client: httpx.AsyncClient, keys: dict[str, str], services: Services
) -> None:
    request_id = await submit(services)
    plain = await client.get(f"/v1/requests/{request_id}", headers=bearer(keys["other"]))
    response, took = await timed_get(client, keys["other"], request_id, 5)
    assert plain.status_code != 200
    assert (response.status_code, response.json()["code"]) == (
        plain.status_code,
        plain.json()["code"],
    )
    assert took < 2  # refused before any waiting
    missing = await client.get(
        f"/v1/requests/{uuid.uuid4()}", params={"wait": 5}, headers=bearer(keys["submitter"])
    )
    assert missing.status_code == 404


async def test_waiters_share_one_poller_and_past_the_cap_get_503(
    client: httpx.AsyncClient, keys: dict[str, str], services: Services
) -> None:
    ids = [await submit(services) for _ in range(3)]
    services.watcher.max_waiters = 3
    polls = [
        asyncio.create_task(timed_get(client, keys["submitter"], request_id, 1))
        for request_id in ids
    ]

    async def registered() -> None:
        while services.watcher.waiters < 3:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(registered(), 5)
    before = services.watcher.polls
    refused = await client.get(
        f"/v1/requests/{ids[0]}", params={"wait": 1}, headers=bearer(keys["submitter"])
    )
    assert refused.status_code == 503
    assert refused.json()["code"] == "too_many_waiters"
    assert int(refused.headers["Retry-After"]) >= 1
    for response, _ in await asyncio.gather(*polls):
        assert response.json()["state"] == "pending"
    # Three callers for about a second: one query per 0.05 s interval for all of them.
    assert services.watcher.polls - before <= 1 / 0.05 + 3


# -- the event stream -------------------------------------------------------------------


def parse_stream(text: str) -> tuple[list[tuple[int, dict[str, Any]]], list[str]]:
    """(id, data) of each event and the comment lines of a ``text/event-stream`` body."""
    events, comments = [], []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith(":"):
                comments.append(line)
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if "data" in fields:
            events.append((int(fields["id"]), json.loads(fields["data"])))
    return events, comments


async def stream(
    client: httpx.AsyncClient, key: str, request_id: uuid.UUID, last: str | None = None
) -> httpx.Response:
    headers = bearer(key)
    if last is not None:
        headers["Last-Event-ID"] = last
    return await client.get(f"/v1/requests/{request_id}/events", headers=headers)


EVERY_STATE = [
    (None, "pending"),
    ("pending", "running"),
    ("running", "awaiting_approval"),
    ("awaiting_approval", "pending"),
    ("pending", "running"),
    ("running", "completed"),
]


async def test_event_stream_sees_every_state_in_order_then_closes(
    client: httpx.AsyncClient, keys: dict[str, str], services: Services
) -> None:
    request_id = await submit(services)
    # The ASGI transport hands the body over once the stream has ended: at the terminal state.
    watching = asyncio.create_task(stream(client, keys["submitter"], request_id))
    await asyncio.sleep(0.3)
    await run_workers(services)
    await approve(services, request_id)
    await run_workers(services)
    response = await asyncio.wait_for(watching, 15)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events, _ = parse_stream(response.text)
    assert [e[0] for e in events] == [1, 2, 3, 4, 5, 6]
    assert [(e[1]["from_state"], e[1]["state"]) for e in events] == EVERY_STATE
    assert {e[1]["request_id"] for e in events} == {str(request_id)}
    history = (
        await client.get(f"/v1/requests/{request_id}/history", headers=bearer(keys["submitter"]))
    ).json()
    assert [(t["from_state"], t["to_state"]) for t in history["transitions"]] == EVERY_STATE
    assert services.watcher.waiters == 0


async def test_event_stream_resumes_after_last_event_id(
    client: httpx.AsyncClient, keys: dict[str, str], services: Services
) -> None:
    request_id = await submit(services)
    await run_workers(services)
    await approve(services, request_id)
    await run_workers(services)
    key = keys["submitter"]
    whole, _ = parse_stream((await stream(client, key, request_id)).text)
    assert [n for n, _ in whole] == [1, 2, 3, 4, 5, 6]
    rest, _ = parse_stream((await stream(client, key, request_id, last="3")).text)
    assert rest == whole[3:]
    done = await stream(client, key, request_id, last="6")
    assert done.status_code == 204  # an EventSource stops reconnecting


async def test_event_stream_sends_heartbeats_and_ends_after_its_lifetime(
    client: httpx.AsyncClient, keys: dict[str, str], services: Services
) -> None:
    services.settings.sse_max_seconds = 0.9
    request_id = await submit(services)
    response = await asyncio.wait_for(stream(client, keys["submitter"], request_id), 10)
    events, comments = parse_stream(response.text)
    assert [(n, e["state"]) for n, e in events] == [(1, "pending")]
    assert ": keep-alive" in comments
    assert services.watcher.waiters == 0


async def test_event_stream_refuses_a_bad_last_event_id_and_follows_the_owner_rule(
    client: httpx.AsyncClient, keys: dict[str, str], services: Services
) -> None:
    request_id = await submit(services, kind="single")
    await run_workers(services)
    bad = await stream(client, keys["submitter"], request_id, last="three")
    assert bad.status_code == 422
    assert bad.json()["field"].lower() == "last-event-id"
    plain = await client.get(f"/v1/requests/{request_id}", headers=bearer(keys["other"]))
    other = await stream(client, keys["other"], request_id)
    assert plain.status_code != 200
    assert other.status_code == plain.status_code
    missing = await stream(client, keys["submitter"], uuid.uuid4())
    assert missing.status_code == 404
