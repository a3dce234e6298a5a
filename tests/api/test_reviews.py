"""``/v1/approvals`` and ``/v1/escalations``, driven by the real research workflow."""

from __future__ import annotations

import httpx

from app.bootstrap import Services
from tests.api.conftest import bearer, research_body, run_workers_until_idle


async def test_reviewer_lists_and_approves_a_gate(
    client: httpx.AsyncClient, keys: dict[str, str], services: Services
) -> None:
    request = (
        await client.post("/v1/requests", json=research_body(), headers=bearer(keys["submitter"]))
    ).json()
    await run_workers_until_idle(services)
    reviewer = bearer(keys["reviewer"])
    approvals = (await client.get("/v1/approvals", headers=reviewer)).json()
    [gate] = [a for a in approvals if a["request_id"] == request["id"]]
    assert gate["step"] == "requirements" and gate["status"] == "pending"
    decided = await client.post(
        f"/v1/approvals/{gate['id']}/decision",
        json={"decision": "approve", "note": "criteria fine"},
        headers=reviewer,
    )
    assert decided.status_code == 200 and decided.json()["state"] == "pending"
    again = await client.post(
        f"/v1/approvals/{gate['id']}/decision", json={"decision": "reject"}, headers=reviewer
    )
    assert again.status_code == 409 and again.json()["code"] == "illegal_transition"
    listed = (await client.get("/v1/approvals", params={"status": "all"}, headers=reviewer)).json()
    assert [a["status"] for a in listed] == ["approved"]


async def test_reviewer_resolves_an_escalation(
    client: httpx.AsyncClient, keys: dict[str, str], services: Services
) -> None:
    body = research_body(irb_number=None)
    request = (await client.post("/v1/requests", json=body, headers=bearer(keys["admin"]))).json()
    await run_workers_until_idle(services)
    reviewer = bearer(keys["reviewer"])
    [escalation] = (await client.get("/v1/escalations", headers=reviewer)).json()
    assert escalation["request_id"] == request["id"]
    resolved = await client.post(
        f"/v1/escalations/{escalation['id']}/resolve",
        json={"resolution": "fail", "note": "no IRB approval"},
        headers=reviewer,
    )
    assert resolved.status_code == 200 and resolved.json()["state"] == "failed"
    assert (await client.get("/v1/escalations", headers=reviewer)).json() == []
