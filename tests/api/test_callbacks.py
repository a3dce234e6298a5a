"""``callback_url`` over HTTP: refused unless https (422 naming the field, nothing written),
taken from the API client when the submit has none, and owed on each terminal state."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import func, select

from app.auth.keys import set_webhook
from app.database import Database
from app.database.models import CallbackOutbox, Request
from tests.api.conftest import CLIENTS, bearer, research_body

OWNER = CLIENTS["submitter"][0]


async def stored_url(database: Database, request_id: str) -> str | None:
    async with database.read_session() as session:
        row = await session.get(Request, uuid.UUID(request_id))
        assert row is not None
        return row.callback_url


async def count(database: Database, model: type) -> int:
    async with database.read_session() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.org/in",
        "http://127.0.0.1:8080/in",  # loopback needs WEBHOOK_ALLOW_HTTP_LOOPBACK
        "ftp://hooks.example.org/in",
        "/relative/path",
        "https://user:secret@hooks.example.org/in",
    ],
)
async def test_a_callback_url_that_is_not_https_is_refused_naming_it(
    client: httpx.AsyncClient, keys: dict[str, str], database: Database, url: str
) -> None:
    body = {**research_body(), "callback_url": url}
    response = await client.post("/v1/requests", json=body, headers=bearer(keys["submitter"]))
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "callback_url"
    assert await count(database, Request) == 0
    batch = {"requests": [{**body, "idempotency_key": "one"}]}
    response = await client.post(
        "/v1/requests/batch", json=batch, headers=bearer(keys["submitter"])
    )
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "requests.0.callback_url"
    assert await count(database, Request) == 0


async def test_an_https_callback_url_is_kept_and_a_cancel_owes_its_callback(
    client: httpx.AsyncClient, keys: dict[str, str], database: Database
) -> None:
    body = {**research_body(), "callback_url": "https://hooks.example.org/in?t=1"}
    created = await client.post("/v1/requests", json=body, headers=bearer(keys["submitter"]))
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]
    assert await stored_url(database, request_id) == "https://hooks.example.org/in?t=1"
    assert "callback_url" not in created.json()  # not echoed: it may carry a token
    cancelled = await client.post(
        f"/v1/requests/{request_id}/cancel", headers=bearer(keys["submitter"])
    )
    assert cancelled.status_code == 200
    async with database.read_session() as session:
        [row] = (await session.execute(select(CallbackOutbox))).scalars()
    assert (str(row.request_id), row.state, row.client) == (request_id, "cancelled", OWNER)


async def test_the_clients_default_callback_url_applies_when_the_submit_has_none(
    client: httpx.AsyncClient, keys: dict[str, str], database: Database
) -> None:
    await set_webhook(database, OWNER, url="https://hooks.example.org/default")
    plain = await client.post(
        "/v1/requests", json=research_body(), headers=bearer(keys["submitter"])
    )
    own = await client.post(
        "/v1/requests",
        json={
            **research_body("hypertension_older_adults"),
            "callback_url": "https://other.example.org/mine",
        },
        headers=bearer(keys["submitter"]),
    )
    assert await stored_url(database, plain.json()["id"]) == "https://hooks.example.org/default"
    assert await stored_url(database, own.json()["id"]) == "https://other.example.org/mine"
    # Another client's requests never get it.
    theirs = await client.post("/v1/requests", json=research_body(), headers=bearer(keys["other"]))
    assert await stored_url(database, theirs.json()["id"]) is None
