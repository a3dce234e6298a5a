"""API keys: stored as hashes, 401 without a live key, 403 for the wrong role; all audited."""

from __future__ import annotations

import hashlib

import httpx
import pytest
from sqlalchemy import select

from app.api import create_client, list_clients, revoke_client
from app.audit import AuditAccess, AuditFilter
from app.database import Database
from app.database.models import ApiClient
from tests.api.conftest import bearer, denials, research_body


async def test_keys_are_stored_only_as_sha256(database: Database) -> None:
    made = await create_client(database, "svc-hash", "submitter")
    async with database.read_session() as session:
        row = (await session.execute(select(ApiClient))).scalar_one()
    assert row.key_hash == hashlib.sha256(made.key.encode()).hexdigest()
    assert made.key not in (row.key_hash, row.key_prefix) and made.key.startswith(row.key_prefix)


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (None, "missing bearer token"),
        ("Basic dXNlcjpwYXNz", "missing bearer token"),
        ("Bearer not-a-key", "malformed key"),
        ("Bearer lf_00000000_" + "A" * 43, "unknown key"),
    ],
)
async def test_calls_without_a_live_key_get_401_and_are_audited(
    client: httpx.AsyncClient, database: Database, authorization: str | None, reason: str
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = await client.get("/v1/requests", headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["code"] == "unauthorized"
    [(actor, event)] = await denials(database)
    assert (actor, event.status, event.reason, event.route) == (
        "anonymous",
        401,
        reason,
        "/v1/requests",
    )


async def test_a_revoked_key_is_refused_and_the_refusal_names_the_client(
    client: httpx.AsyncClient, keys: dict[str, str], database: Database
) -> None:
    headers = bearer(keys["submitter"])
    assert (await client.get("/v1/requests", headers=headers)).status_code == 200
    await revoke_client(database, "svc-research")
    assert (await client.get("/v1/requests", headers=headers)).status_code == 401
    [(actor, event)] = await denials(database)
    assert (actor, event.reason, event.key_prefix) == (
        "svc-research",
        "revoked key",
        keys["submitter"][:11],
    )
    listed = {c.name: c for c in await list_clients(database)}
    assert listed["svc-research"].revoked_at is not None
    assert listed["svc-research"].last_used_at is not None


@pytest.mark.parametrize(
    ("role", "method", "path", "allowed"),
    [
        ("submitter", "GET", "/v1/approvals", False),
        ("submitter", "GET", "/v1/escalations", False),
        ("submitter", "GET", "/v1/audit-logs", False),
        ("submitter", "POST", "/v1/audit/verify", False),
        ("reviewer", "GET", "/v1/approvals", True),
        ("reviewer", "GET", "/v1/escalations", True),
        ("reviewer", "GET", "/v1/audit-logs", False),
        ("reviewer", "POST", "/v1/audit/checkpoints", False),
        ("auditor", "GET", "/v1/audit-logs", True),
        ("auditor", "POST", "/v1/audit/verify", True),
        ("auditor", "POST", "/v1/audit/checkpoints", True),
        ("auditor", "GET", "/v1/approvals", False),
        ("auditor", "GET", "/v1/requests", False),
        ("auditor", "POST", "/v1/requests", False),
        ("admin", "GET", "/v1/approvals", True),
        ("admin", "GET", "/v1/escalations", True),
        ("admin", "GET", "/v1/audit-logs", True),
        ("admin", "POST", "/v1/audit/verify", True),
        ("admin", "GET", "/v1/requests", True),
    ],
)
async def test_role_matrix(
    client: httpx.AsyncClient,
    keys: dict[str, str],
    database: Database,
    role: str,
    method: str,
    path: str,
    allowed: bool,
) -> None:
    body = research_body() if (method, path) == ("POST", "/v1/requests") else None
    response = await client.request(method, path, json=body, headers=bearer(keys[role]))
    recorded = await denials(database)
    if allowed:
        assert response.status_code in (200, 201), response.text
        assert recorded == []
    else:
        assert response.status_code == 403, response.text
        assert response.json()["code"] == "forbidden"
        [(_, event)] = recorded
        assert (event.method, event.route, event.role) == (method, path, role)


async def test_refused_audit_reads_also_show_as_denied_accesses(
    client: httpx.AsyncClient, keys: dict[str, str], database: Database
) -> None:
    await client.get("/v1/audit-logs", headers=bearer(keys["reviewer"]))
    page = await AuditAccess(database, "test").query(AuditFilter(event_types=("audit_accessed",)))
    [denied] = [r for r in page.items if r.event_data.get("denied")]
    assert denied.actor == "dr-review" and denied.event_data["action"] == "query"
