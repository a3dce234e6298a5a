"""``/v1/audit-logs``, ``/v1/requests/{id}/audit-trail``, ``/v1/audit/verify|checkpoints``."""

from __future__ import annotations

import csv
import io
import json
import uuid

import httpx

from tests.api.conftest import bearer, research_body


async def _submit(client: httpx.AsyncClient, keys: dict[str, str]) -> str:
    response = await client.post(
        "/v1/requests", json=research_body(), headers=bearer(keys["submitter"])
    )
    return str(response.json()["id"])


async def test_audit_log_page_filters_and_formats(
    client: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    request_id = await _submit(client, keys)
    auditor = bearer(keys["auditor"])
    page = await client.get(
        "/v1/audit-logs", params={"request_id": request_id, "limit": 1}, headers=auditor
    )
    assert page.status_code == 200
    body = page.json()
    assert len(body["items"]) == 1
    assert body["next_cursor"] and page.headers["x-next-cursor"] == body["next_cursor"]
    rest = await client.get(
        "/v1/audit-logs",
        params={"request_id": request_id, "limit": 1, "cursor": body["next_cursor"]},
        headers=auditor,
    )
    # Both rows share one timestamp; the keyset order among them is by id.
    events = {r["event_type"] for r in body["items"] + rest.json()["items"]}
    assert events == {"request_submitted", "state_changed"}
    as_csv = await client.get(
        "/v1/audit-logs", params={"request_id": request_id, "format": "csv"}, headers=auditor
    )
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert {r["event_type"] for r in rows} == events and len(rows) == 2


async def test_audit_log_export_streams_every_row(
    client: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    for _ in range(3):
        await _submit(client, keys)
    response = await client.get(
        "/v1/audit-logs",
        params={"stream": "true", "format": "jsonl", "event_type": "request_submitted"},
        headers=bearer(keys["auditor"]),
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert len(lines) == 3 and {line["event_type"] for line in lines} == {"request_submitted"}


async def test_trail_verify_and_checkpoint(client: httpx.AsyncClient, keys: dict[str, str]) -> None:
    request_id = await _submit(client, keys)
    auditor = bearer(keys["auditor"])
    trail = await client.get(f"/v1/requests/{request_id}/audit-trail", headers=auditor)
    assert [r["event_type"] for r in trail.json()] == ["request_submitted", "state_changed"]
    made = await client.post("/v1/audit/checkpoints", json={"sign": False}, headers=auditor)
    assert made.status_code == 201 and len(made.json()["digest"]) == 64
    report = await client.post(
        "/v1/audit/verify", json={"checkpoint": made.json()["digest"]}, headers=auditor
    )
    assert report.status_code == 200
    assert report.json()["ok"] is True and report.json()["rows"] > 2
    one = await client.post("/v1/audit/verify", json={"request_id": request_id}, headers=auditor)
    assert one.json()["ok"] is True and one.json()["rows"] == 2


async def test_checkpoints_are_chained_and_verify_says_which_it_used(
    client: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    await _submit(client, keys)
    auditor = bearer(keys["auditor"])
    status = (await client.get("/v1/audit/status", headers=auditor)).json()
    assert status["last_checkpoint"] is None and status["last_verify_ok"] is None
    first = (await client.post("/v1/audit/checkpoints", headers=auditor)).json()
    second = (await client.post("/v1/audit/checkpoints", headers=auditor)).json()
    assert (first["seq"], second["seq"]) == (1, 2) and first["prev_digest"] is None
    assert second["prev_digest"] == first["digest"]
    listed = (await client.get("/v1/audit/checkpoints", headers=auditor)).json()
    assert [c["digest"] for c in listed] == [second["digest"], first["digest"]]

    report = (await client.post("/v1/audit/verify", headers=auditor)).json()
    assert report["ok"] is True
    assert report["checkpoint"]["seq"] == 2 and report["checkpoint"]["digest"] == second["digest"]
    status = (await client.get("/v1/audit/status", headers=auditor)).json()
    assert status["last_checkpoint"]["seq"] == 2
    assert status["last_verify_ok"] is True
    assert status["last_verify_by"] == "compliance-1"
    # A verification of one request is not "the last verify" of the ledger.
    await client.post("/v1/audit/verify", json={"request_id": str(uuid.uuid4())}, headers=auditor)
    assert (await client.get("/v1/audit/status", headers=auditor)).json() == status


async def test_audit_reads_are_recorded_as_the_calling_client(
    client: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    await client.get("/v1/audit-logs", headers=bearer(keys["auditor"]))
    seen = await client.get(
        "/v1/audit-logs",
        params={"event_type": "audit_accessed", "actor": "compliance-1"},
        headers=bearer(keys["admin"]),
    )
    [record] = seen.json()["items"]
    assert record["event_data"]["action"] == "query" and record["actor"] == "compliance-1"
