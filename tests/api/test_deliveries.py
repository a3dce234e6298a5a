"""``/v1/requests/{id}/delivery`` over HTTP on both backends: a research request driven to
completed by the real agents, its manifest read, every file downloaded and checked against
the manifest's SHA-256 (and the ``Digest`` header), each download recorded, the role rules,
and a purged delivery answering 410 with when and why."""

from __future__ import annotations

import base64
import hashlib
import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from app.agents.research import seed_warehouse
from app.audit.events import AccessDenied, DataAccessed
from app.bootstrap import Services
from app.database import Database
from app.database.models import Request
from app.database.types import utcnow
from app.ops.retention import purge
from tests.api.conftest import CLIENTS, bearer, research_body, run_workers_until_idle
from tests.api.test_errors import assert_problem
from tests.support.results import audit_events


@pytest.fixture
async def delivered(
    client: httpx.AsyncClient, keys: dict[str, str], services: Services, database: Database
) -> str:
    """A research request submitted over HTTP, approved by a reviewer, and delivered."""
    await seed_warehouse(database, 300, seed=42)
    made = await client.post(
        "/v1/requests", json=research_body(), headers=bearer(keys["submitter"])
    )
    request_id = str(made.json()["id"])
    await run_workers_until_idle(services)
    reviewer = bearer(keys["reviewer"])
    [gate] = [
        a
        for a in (await client.get("/v1/approvals", headers=reviewer)).json()
        if a["request_id"] == request_id
    ]
    decided = await client.post(
        f"/v1/approvals/{gate['id']}/decision", json={"decision": "approve"}, headers=reviewer
    )
    assert decided.status_code == 200, decided.text
    await run_workers_until_idle(services)
    shown = await client.get(f"/v1/requests/{request_id}", headers=bearer(keys["submitter"]))
    assert shown.json()["state"] == "completed", shown.text
    return request_id


def digest_header(sha256_hex: str) -> str:
    """``sha-256=<base64>`` of a hex SHA-256 (RFC 3230)."""
    return "sha-256=" + base64.b64encode(bytes.fromhex(sha256_hex)).decode()


async def test_every_file_downloads_with_the_manifests_sha256_and_is_recorded(
    client: httpx.AsyncClient, keys: dict[str, str], delivered: str, database: Database
) -> None:
    owner = bearer(keys["submitter"])
    answer = await client.get(f"/v1/requests/{delivered}/delivery", headers=owner)
    assert answer.status_code == 200, answer.text
    manifest = answer.json()
    names = [f["name"] for f in manifest["files"]]
    assert "data_dictionary.csv" in names and len(names) >= 2
    assert manifest["data_dictionary"] and manifest["phi_level"] == "deidentified"

    for listed in manifest["files"]:
        assert listed["url"] == f"/v1/requests/{delivered}/delivery/{listed['name']}"
        got = await client.get(listed["url"], headers=owner)
        assert got.status_code == 200, got.text
        assert hashlib.sha256(got.content).hexdigest() == listed["sha256"]
        assert len(got.content) == listed["bytes"]
        assert got.headers["etag"] == f'"{listed["sha256"]}"'
        assert got.headers["digest"] == digest_header(listed["sha256"])
        assert got.headers["content-type"].startswith("text/csv")
        assert f'filename="{listed["name"]}"' in got.headers["content-disposition"]
    whole = await client.get(f"/v1/requests/{delivered}/delivery/manifest.json", headers=owner)
    assert hashlib.sha256(whole.content).hexdigest() == manifest["manifest_sha256"]
    assert whole.headers["digest"] == digest_header(manifest["manifest_sha256"])

    first = manifest["files"][0]
    part = await client.get(first["url"], headers={**owner, "Range": "bytes=0-9"})
    assert part.status_code == 206 and len(part.content) == 10
    assert part.headers["content-range"] == f"bytes 0-9/{first['bytes']}"

    reads = await audit_events(database, "data_accessed")
    assert [(actor, str(rid)) for actor, rid, _ in reads] == [
        (CLIENTS["submitter"][0], delivered)
    ] * (len(names) + 2)
    events = [e for _, _, e in reads]
    assert all(isinstance(e, DataAccessed) and e.channel == "http" for e in events)
    assert [e.file for e in events] == [*names, "manifest.json", first["name"]]  # type: ignore[attr-defined]
    assert events[-1].byte_range == f"0-9/{first['bytes']}"  # type: ignore[attr-defined]


#: Who may read a delivery (``other`` is a second submitter: not theirs, so not there).
ROLES = {"submitter": 200, "other": 404, "reviewer": 200, "auditor": 403, "admin": 200}


async def test_role_rules_hold_on_both_delivery_routes(
    client: httpx.AsyncClient, keys: dict[str, str], delivered: str, database: Database
) -> None:
    missing = uuid.uuid4()
    for tail in ("", "/data_dictionary.csv"):
        for label, status in ROLES.items():
            headers = bearer(keys[label])
            answer = await client.get(f"/v1/requests/{delivered}/delivery{tail}", headers=headers)
            assert answer.status_code == status, (tail, label, answer.text)
            if status == 404:
                absent = await client.get(f"/v1/requests/{missing}/delivery{tail}", headers=headers)
                hidden = assert_problem(answer, 404, "not_found")["detail"]
                assert str(hidden).replace(delivered, "ID") == absent.json()["detail"].replace(
                    str(missing), "ID"
                )
    denied = [
        (actor, e.route, e.status)
        for actor, _, e in await audit_events(database, "access_denied")
        if isinstance(e, AccessDenied)
    ]
    routes = ["/v1/requests/{request_id}/delivery", "/v1/requests/{request_id}/delivery/{name}"]
    assert sorted(denied) == sorted(
        (CLIENTS[label][0], route, status)
        for route in routes
        for label, status in ROLES.items()
        if status != 200
    )
    reads = await audit_events(database, "data_accessed")
    assert sorted(actor for actor, _, _ in reads) == sorted(
        CLIENTS[label][0] for label, status in ROLES.items() if status == 200
    )


async def test_unknown_files_and_requests_without_a_delivery(
    client: httpx.AsyncClient, keys: dict[str, str], delivered: str
) -> None:
    owner = bearer(keys["submitter"])
    for name in ("nothing.csv", "..%2Fmanifest.json", "staging"):
        answer = await client.get(f"/v1/requests/{delivered}/delivery/{name}", headers=owner)
        assert_problem(answer, 404, "not_found")
    outside = await client.get(
        f"/v1/requests/{delivered}/delivery/data_dictionary.csv",
        headers={**owner, "Range": "bytes=999999-"},
    )
    assert_problem(outside, 416, "range_not_satisfiable")
    pending = await client.post(
        "/v1/requests", json=research_body(), headers=owner
    )  # not run: no delivery yet
    early = await client.get(f"/v1/requests/{pending.json()['id']}/delivery", headers=owner)
    assert "no delivery" in assert_problem(early, 409, "not_ready")["detail"]


async def test_a_purged_delivery_answers_410_with_when_and_why(
    client: httpx.AsyncClient,
    keys: dict[str, str],
    delivered: str,
    database: Database,
    services: Services,
) -> None:
    async with database.session() as session:
        await session.execute(
            update(Request)
            .where(Request.id == uuid.UUID(delivered))
            .values(completed_at=utcnow() - timedelta(days=200))
        )
    report = await purge(
        database, services.settings, actor="ops:retention", categories=["delivery"]
    )
    assert report.count("delivery") == 1
    owner = bearer(keys["submitter"])
    for tail in ("", "/data_dictionary.csv"):
        answer = await client.get(f"/v1/requests/{delivered}/delivery{tail}", headers=owner)
        problem = assert_problem(answer, 410, "gone")
        assert problem["purged_at"] and "kept 180 days" in str(problem["reason"])
        assert "ops:retention" in str(problem["detail"])
    assert await audit_events(database, "data_accessed") == []
