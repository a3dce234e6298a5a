"""Every error status as RFC 9457 problem+json, naming the field where there is one."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.bootstrap import Services
from app.database import Database
from tests.api.conftest import bearer, research_body

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status and body["code"] == code
    assert body["type"] == f"urn:ledgerflow:problem:{code}" and body["title"] and body["detail"]
    assert "Traceback" not in response.text
    return dict(body)


async def test_malformed_json_is_400(client: httpx.AsyncClient, keys: dict[str, str]) -> None:
    response = await client.post(
        "/v1/requests",
        content=b'{"kind": "research", ',
        headers={**bearer(keys["submitter"]), "Content-Type": "application/json"},
    )
    assert assert_problem(response, 400, "malformed_body")["field"] == "body"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (research_body(age_range={"min": "old", "max": 80}), "payload.age_range.min"),
        ({"kind": "research", "payload": {}}, "payload.researcher"),
        ({"kind": "astrology", "payload": {}}, "kind"),
        ({**research_body(), "priority": 1000}, "priority"),
        (research_body(researcher="Dr \x00 Null"), "payload.researcher"),
        (
            research_body(time_window={"start": "soon", "end": "2024-12-31"}),
            "payload.time_window.start",
        ),
    ],
)
async def test_invalid_input_is_422_naming_the_field(
    client: httpx.AsyncClient, keys: dict[str, str], database: Database, body: object, field: str
) -> None:
    response = await client.post("/v1/requests", json=body, headers=bearer(keys["submitter"]))
    problem = assert_problem(response, 422, "invalid_request")
    assert problem["field"] == field, problem
    listed = await client.get("/v1/requests", headers=bearer(keys["admin"]))
    assert listed.json()["items"] == []


async def test_bad_query_parameter_is_422(client: httpx.AsyncClient, keys: dict[str, str]) -> None:
    response = await client.get(
        "/v1/requests", params={"cursor": "not-a-cursor"}, headers=bearer(keys["admin"])
    )
    assert assert_problem(response, 422, "invalid_request")["field"] == "cursor"
    response = await client.get(
        "/v1/audit-logs", params={"since": "yesterday"}, headers=bearer(keys["auditor"])
    )
    assert assert_problem(response, 422, "invalid_filter")["field"] == "since"


async def test_unknown_ids_are_404(client: httpx.AsyncClient, keys: dict[str, str]) -> None:
    missing = uuid.uuid4()
    admin = bearer(keys["admin"])
    assert_problem(await client.get(f"/v1/requests/{missing}", headers=admin), 404, "not_found")
    decision = await client.post(
        f"/v1/approvals/{missing}/decision", json={"decision": "approve"}, headers=admin
    )
    assert_problem(decision, 404, "not_found")
    trail = await client.get(f"/v1/requests/{missing}/audit-trail", headers=admin)
    assert_problem(trail, 404, "not_found")
    assert_problem(await client.get("/v1/nothing-here", headers=admin), 404, "not_found")


async def test_idempotency_conflict_and_illegal_transition_are_409(
    client: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    headers = {**bearer(keys["submitter"]), "Idempotency-Key": "k-1"}
    first = await client.post("/v1/requests", json=research_body(), headers=headers)
    other = research_body("hypertension_older_adults")
    assert_problem(
        await client.post("/v1/requests", json=other, headers=headers), 409, "idempotency_conflict"
    )
    path = f"/v1/requests/{first.json()['id']}/cancel"
    assert (await client.post(path, headers=headers)).status_code == 200
    assert_problem(await client.post(path, headers=headers), 409, "illegal_transition")


async def test_oversize_body_is_413(
    client: httpx.AsyncClient, keys: dict[str, str], services: Services
) -> None:
    limit = services.settings.api_max_body_bytes
    body = research_body(study_title="x" * (limit + 10))
    response = await client.post("/v1/requests", json=body, headers=bearer(keys["submitter"]))
    assert_problem(response, 413, "content_too_large")


async def test_oversize_chunked_body_is_413_and_creates_nothing(
    client: httpx.AsyncClient, keys: dict[str, str], services: Services
) -> None:
    # No Content-Length: the limit is found while the body streams, inside FastAPI's own
    # body reading, which would otherwise answer 400 "error parsing the body".
    limit = services.settings.api_max_body_bytes

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"kind": "research", "payload": {"study_title": "'
        for _ in range(limit // 4096 + 2):
            yield b"x" * 4096
        yield b'"}}'

    headers = {**bearer(keys["submitter"]), "Content-Type": "application/json"}
    response = await client.post("/v1/requests", content=chunks(), headers=headers)
    assert "content-length" not in response.request.headers
    assert assert_problem(response, 413, "content_too_large")["field"] == "body"
    listed = await client.get("/v1/requests", headers=bearer(keys["admin"]))
    assert listed.json()["items"] == []


async def test_full_queue_is_429_with_retry_after(
    client: httpx.AsyncClient, keys: dict[str, str], services: Services
) -> None:
    services.orchestrator.max_queued_requests = 1
    headers = bearer(keys["submitter"])
    assert (await client.post("/v1/requests", json=research_body(), headers=headers)).is_success
    response = await client.post("/v1/requests", json=research_body(), headers=headers)
    problem = assert_problem(response, 429, "queue_full")
    assert int(response.headers["retry-after"]) == problem["retry_after"] > 0


async def test_database_down_is_503_without_details(
    client: httpx.AsyncClient,
    keys: dict[str, str],
    services: Services,
    backend: str,
    tmp_path: Path,
) -> None:
    admin = bearer(keys["admin"])
    assert (await client.get("/v1/requests", headers=admin)).status_code == 200
    # A real outage of the database behind the service: its engine is disposed and
    # pointed nowhere reachable (a closed port, or a file that is not there).
    from app.database import Database

    dead_url = (
        "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere"
        if backend == "postgresql"
        else f"sqlite+aiosqlite:///{tmp_path / 'gone' / 'ledgerflow.db'}"
    )
    healthy = services.database
    services.orchestrator.database = Database.from_url(dead_url)
    try:
        response = await client.get(f"/v1/requests/{uuid.uuid4()}", headers=admin)
    finally:
        await services.orchestrator.database.dispose()
        services.orchestrator.database = healthy
    code = "database_unavailable" if backend == "postgresql" else "database_missing"
    problem = assert_problem(response, 503, code)
    assert "127.0.0.1" not in str(problem["detail"]) and response.headers["retry-after"]
    assert "gone" not in str(problem["detail"])
    assert not (tmp_path / "gone").exists()
