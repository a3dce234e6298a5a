"""``POST /v1/requests/batch``: many requests in one call, all checked before any is written."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from app.database import Database
from app.database.models import AuditLog, Request
from tests.api.conftest import bearer, research_body


def _item(key: str, name: str = "type2_diabetes_adults", **changes: object) -> dict[str, object]:
    return {**research_body(name, **changes), "idempotency_key": key}


async def _count(database: Database, model: type[Request] | type[AuditLog]) -> int:
    async with database.read_session() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


async def test_a_batch_creates_each_request_and_replays_known_keys(
    client: httpx.AsyncClient, keys: dict[str, str], database: Database
) -> None:
    headers = bearer(keys["submitter"])
    first = await client.post(
        "/v1/requests/batch",
        json={"requests": [_item(f"order-{i}") for i in range(120)]},
        headers=headers,
    )
    assert first.status_code == 200, first.text
    items = first.json()["items"]
    assert [i["index"] for i in items] == list(range(120))
    assert {i["status"] for i in items} == {"created"}
    assert len({i["request"]["id"] for i in items}) == 120
    assert all(i["request"]["submitted_by"] == "svc-research" for i in items)

    # The same keys again, one with another payload and one new: each answered on its own.
    again = [_item(f"order-{i}") for i in range(3)]
    again[1] = _item("order-1", "hypertension_older_adults")
    again.append(_item("order-new"))
    second = await client.post("/v1/requests/batch", json={"requests": again}, headers=headers)
    assert second.status_code == 200, second.text
    results = second.json()["items"]
    assert [r["status"] for r in results] == ["replayed", "conflict", "replayed", "created"]
    assert results[0]["request"]["id"] == items[0]["request"]["id"]
    assert "order-1" in results[1]["detail"] and results[1]["request"] is None
    assert await _count(database, Request) == 121

    # Each created request is readable like one submitted alone.
    one = await client.get(f"/v1/requests/{items[7]['request']['id']}", headers=headers)
    assert one.status_code == 200 and one.json()["state"] == "pending"


async def test_one_invalid_request_refuses_the_whole_batch_naming_every_field(
    client: httpx.AsyncClient, keys: dict[str, str], database: Database
) -> None:
    audit_rows = await _count(database, AuditLog)
    batch = [_item("ok-0"), _item("bad-1", age_range={"min": 80, "max": 30}), _item("ok-2")]
    batch.append({"kind": "research", "payload": {}, "idempotency_key": "bad-3"})
    batch.append({"kind": "reserch", "payload": {}, "idempotency_key": "bad-4"})
    answer = await client.post(
        "/v1/requests/batch", json={"requests": batch}, headers=bearer(keys["submitter"])
    )
    assert answer.status_code == 422, answer.text
    fields = {e["field"] for e in answer.json()["errors"]}
    assert "requests.1.payload.age_range" in fields
    assert any(f.startswith("requests.3.payload.") for f in fields)
    assert "requests.4.kind" in fields
    assert not any(f.startswith(("requests.0", "requests.2")) for f in fields)
    assert await _count(database, Request) == 0
    assert await _count(database, AuditLog) == audit_rows


async def test_batch_bounds_keys_and_roles(
    client: httpx.AsyncClient, keys: dict[str, str], database: Database
) -> None:
    submitter = bearer(keys["submitter"])
    empty = await client.post("/v1/requests/batch", json={"requests": []}, headers=submitter)
    assert empty.status_code == 422 and empty.json()["errors"][0]["field"] == "requests"
    many = [_item(f"k{i}") for i in range(501)]
    over = await client.post("/v1/requests/batch", json={"requests": many}, headers=submitter)
    assert over.status_code in (413, 422)
    keyless = await client.post(
        "/v1/requests/batch", json={"requests": [research_body()]}, headers=submitter
    )
    assert keyless.status_code == 422
    assert keyless.json()["errors"][0]["field"] == "requests.0.idempotency_key"
    reviewer = await client.post(
        "/v1/requests/batch", json={"requests": [_item("r")]}, headers=bearer(keys["reviewer"])
    )
    assert reviewer.status_code == 403
    assert await _count(database, Request) == 0
