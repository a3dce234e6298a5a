"""``/v1/requests``: submit, read, list, history, cancel, and who may do which."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import func, select

from app.database import Database
from app.database.models import AuditLog
from tests.api.conftest import bearer, denials, research_body


async def test_submit_then_read_list_history_and_cancel(
    client: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    headers = bearer(keys["submitter"])
    created = await client.post("/v1/requests", json=research_body(), headers=headers)
    assert created.status_code == 201, created.text
    request = created.json()
    assert request["state"] == "pending" and request["submitted_by"] == "svc-research"
    assert created.headers["location"] == f"/v1/requests/{request['id']}"

    got = await client.get(f"/v1/requests/{request['id']}", headers=headers)
    assert got.status_code == 200 and got.json()["id"] == request["id"]

    listed = await client.get("/v1/requests", params={"state": "pending"}, headers=headers)
    assert listed.status_code == 200
    assert [r["id"] for r in listed.json()["items"]] == [request["id"]]

    history = await client.get(f"/v1/requests/{request['id']}/history", headers=headers)
    assert history.status_code == 200
    assert [t["to_state"] for t in history.json()["transitions"]] == ["pending"]

    cancelled = await client.post(
        f"/v1/requests/{request['id']}/cancel", json={"reason": "duplicate"}, headers=headers
    )
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"


async def test_idempotent_submission_returns_the_same_request(
    client: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    headers = {**bearer(keys["submitter"]), "Idempotency-Key": "order-42"}
    first = await client.post("/v1/requests", json=research_body(), headers=headers)
    again = await client.post("/v1/requests", json=research_body(), headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]


async def test_list_pages_with_a_cursor(client: httpx.AsyncClient, keys: dict[str, str]) -> None:
    headers = bearer(keys["admin"])
    ids = set()
    for _ in range(3):
        ids.add(
            (await client.post("/v1/requests", json=research_body(), headers=headers)).json()["id"]
        )
    first = (await client.get("/v1/requests", params={"limit": 2}, headers=headers)).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    second = (
        await client.get(
            "/v1/requests", params={"limit": 2, "cursor": first["next_cursor"]}, headers=headers
        )
    ).json()
    assert second["next_cursor"] is None
    assert {r["id"] for r in first["items"] + second["items"]} == ids


async def test_another_submitters_request_is_answered_as_missing_and_the_refusal_is_audited(
    client: httpx.AsyncClient, keys: dict[str, str], database: Database
) -> None:
    mine = (
        await client.post("/v1/requests", json=research_body(), headers=bearer(keys["submitter"]))
    ).json()
    missing = str(uuid.uuid4())
    other = bearer(keys["other"])
    listed = await client.get("/v1/requests", headers=other)
    assert listed.status_code == 200 and listed.json()["items"] == []
    routes = (
        ("GET", "/v1/requests/{}"),
        ("GET", "/v1/requests/{}/history"),
        ("POST", "/v1/requests/{}/cancel"),
    )
    for method, path in routes:
        hidden = await client.request(method, path.format(mine["id"]), headers=other)
        absent = await client.request(method, path.format(missing), headers=other)
        assert hidden.status_code == absent.status_code == 404, (path, hidden.text)
        assert hidden.headers["content-type"] == absent.headers["content-type"]
        assert hidden.headers["content-type"] == "application/problem+json"
        # Byte for byte the same answer, the id apart.
        assert hidden.content.replace(mine["id"].encode(), missing.encode()) == absent.content
        assert hidden.json()["title"] == "Not found" and hidden.json()["code"] == "not_found"
    spying = await client.get(
        "/v1/requests", params={"submitted_by": "svc-research"}, headers=other
    )
    assert spying.status_code == 403
    recorded = await denials(database)
    assert [(actor, e.method, e.route, e.status) for actor, e in recorded] == [
        ("svc-other", "GET", "/v1/requests/{request_id}", 404),
        ("svc-other", "GET", "/v1/requests/{request_id}/history", 404),
        ("svc-other", "POST", "/v1/requests/{request_id}/cancel", 404),
        ("svc-other", "GET", "/v1/requests", 403),
    ]
    assert all(e.role == "submitter" for _, e in recorded)
    assert {e.reason for _, e in recorded[:3]} == {"belongs to another submitter"}
    # The refusals are on the request's trail too; the request itself is untouched.
    async with database.read_session() as session:
        on_trail = (
            await session.execute(
                select(func.count())
                .select_from(AuditLog)
                .where(
                    AuditLog.event_type == "access_denied",
                    AuditLog.request_id == uuid.UUID(mine["id"]),
                )
            )
        ).scalar_one()
    assert on_trail == 3
    owner = await client.get(f"/v1/requests/{mine['id']}", headers=bearer(keys["submitter"]))
    assert owner.json()["state"] == "pending"


async def test_reviewers_read_any_request_but_cannot_submit_or_cancel(
    client: httpx.AsyncClient, keys: dict[str, str], database: Database
) -> None:
    mine = (
        await client.post("/v1/requests", json=research_body(), headers=bearer(keys["submitter"]))
    ).json()
    reviewer = bearer(keys["reviewer"])
    assert (await client.get(f"/v1/requests/{mine['id']}", headers=reviewer)).status_code == 200
    assert (await client.get("/v1/requests", headers=reviewer)).json()["items"][0]["id"] == mine[
        "id"
    ]
    assert (
        await client.post("/v1/requests", json=research_body(), headers=reviewer)
    ).status_code == 403
    assert (
        await client.post(f"/v1/requests/{mine['id']}/cancel", headers=reviewer)
    ).status_code == 403
    auditor = bearer(keys["auditor"])
    assert (await client.get(f"/v1/requests/{mine['id']}", headers=auditor)).status_code == 403
    recorded = [(actor, e.method, e.route) for actor, e in await denials(database)]
    assert recorded == [
        ("dr-review", "POST", "/v1/requests"),
        ("dr-review", "POST", "/v1/requests/{request_id}/cancel"),
        ("compliance-1", "GET", "/v1/requests/{request_id}"),
    ]
