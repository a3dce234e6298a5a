"""The console over HTTP on both backends: sessions, anti-forgery tokens, role refusals,
required notes and audited reads, each checked in the database."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from app.audit import parse_event
from app.audit.events import AccessDenied, AuditAccessed
from app.auth import Principal, Role, SessionStore, check_key, revoke_client
from app.bootstrap import Services
from app.database import Database
from app.database.models import Approval, AuditLog, ConsoleSession
from tests.api.conftest import CLIENTS, bearer, research_body, run_workers_until_idle

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')

Browser = Callable[..., Awaitable[httpx.AsyncClient]]


def csrf_of(html: str) -> str:
    """The anti-forgery token of the first form on a page."""
    found = _CSRF.search(html)
    assert found, html[:2000]
    return found.group(1)


@pytest.fixture
async def browser(app: FastAPI, keys: dict[str, str]) -> AsyncIterator[Browser]:
    """``await browser(label, scheme="http")``: a cookie-keeping client signed in as ``label``."""
    opened: list[httpx.AsyncClient] = []

    async def signed_in(label: str | None, scheme: str = "http") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        client = httpx.AsyncClient(transport=transport, base_url=f"{scheme}://ledgerflow.test")
        opened.append(client)
        if label is None:
            return client
        form = await client.get("/console/sign-in")
        answer = await client.post(
            "/console/sign-in",
            data={"api_key": keys[label], "csrf_token": csrf_of(form.text), "next": ""},
        )
        assert answer.status_code == 303, answer.text
        return client

    yield signed_in
    for opened_client in opened:
        await opened_client.aclose()


async def events(database: Database, event_type: str, actor: str | None = None) -> list[object]:
    query = select(AuditLog).where(AuditLog.event_type == event_type).order_by(AuditLog.seq)
    if actor is not None:
        query = query.where(AuditLog.actor == actor)
    async with database.read_session() as session:
        rows = (await session.execute(query)).scalars()
        return [parse_event(r.event_type, r.event_data) for r in rows]


async def waiting_gate(client: httpx.AsyncClient, keys: dict[str, str], services: Services) -> str:
    made = await client.post(
        "/v1/requests", json=research_body(), headers=bearer(keys["submitter"])
    )
    await run_workers_until_idle(services)
    [gate] = (await client.get("/v1/approvals", headers=bearer(keys["reviewer"]))).json()
    assert gate["request_id"] == made.json()["id"]
    return str(gate["id"])


async def test_sign_in_keeps_only_a_hash_of_the_session_token_and_is_audited(
    browser: Browser, services: Services
) -> None:
    client = await browser("reviewer")
    token = client.cookies["lf_console"]
    async with services.database.read_session() as session:
        [row] = (await session.execute(select(ConsoleSession))).scalars()
    assert row.token_hash != token and len(row.token_hash) == 64
    [started] = await events(services.database, "session_started", CLIENTS["reviewer"][0])
    assert started.role == "reviewer"  # type: ignore[attr-defined]
    page = await client.get("/console/")
    assert page.status_code == 200 and "dr-review" in page.text


async def test_cookies_are_secure_over_https(browser: Browser) -> None:
    client = await browser("auditor", scheme="https")
    cookie = next(c for c in client.cookies.jar if c.name == "lf_console")
    assert cookie.secure and cookie.path == "/console"
    assert cookie.has_nonstandard_attr("HttpOnly")
    page = await client.get("/console/audit")
    assert page.headers["strict-transport-security"].startswith("max-age=")


async def test_a_wrong_key_is_refused_and_recorded(browser: Browser, services: Services) -> None:
    client = await browser(None)
    form = await client.get("/console/sign-in")
    answer = await client.post(
        "/console/sign-in",
        data={"api_key": "not-a-key", "csrf_token": csrf_of(form.text)},
    )
    assert answer.status_code == 401 and 'aria-invalid="true"' in answer.text
    assert "lf_console" not in client.cookies
    [denied] = await events(services.database, "access_denied")
    assert isinstance(denied, AccessDenied)
    assert (denied.route, denied.status, denied.reason) == (
        "/console/sign-in",
        401,
        "malformed key",
    )


async def test_sign_in_without_the_forms_token_is_refused(
    browser: Browser, keys: dict[str, str], services: Services
) -> None:
    client = await browser(None)
    answer = await client.post("/console/sign-in", data={"api_key": keys["admin"]})
    assert answer.status_code == 403
    async with services.database.read_session() as session:
        assert (await session.execute(select(func.count(ConsoleSession.id)))).scalar_one() == 0
    [denied] = await events(services.database, "access_denied")
    assert isinstance(denied, AccessDenied) and "CSRF" in denied.reason


async def test_approving_needs_a_note_and_the_token_and_records_the_reviewer(
    client: httpx.AsyncClient, browser: Browser, keys: dict[str, str], services: Services
) -> None:
    gate = await waiting_gate(client, keys, services)
    reviewer = await browser("reviewer")
    page = await reviewer.get(f"/console/approvals/{gate}")
    token = csrf_of(page.text)

    empty = await reviewer.post(
        f"/console/approvals/{gate}/decision",
        data={"decision": "approve", "note": "   ", "csrf_token": token},
    )
    assert empty.status_code == 422 and 'id="note-error"' in empty.text
    forged = await reviewer.post(
        f"/console/approvals/{gate}/decision", data={"decision": "approve", "note": "ok"}
    )
    assert forged.status_code == 403
    async with services.database.read_session() as session:
        assert (await session.get(Approval, uuid.UUID(gate))).status == "pending"  # type: ignore[union-attr]
    assert await events(services.database, "approval_decided") == []

    done = await reviewer.post(
        f"/console/approvals/{gate}/decision",
        data={"decision": "approve", "note": "criteria fine", "csrf_token": token},
    )
    assert done.status_code == 303 and done.headers["location"].endswith("?done=approved")
    async with services.database.read_session() as session:
        row = (
            await session.execute(select(AuditLog).where(AuditLog.event_type == "approval_decided"))
        ).scalar_one()
    assert row.actor == CLIENTS["reviewer"][0] and row.event_data["note"] == "criteria fine"


async def test_a_refused_page_is_a_403_page_recorded_like_the_api(
    browser: Browser, services: Services
) -> None:
    submitter = await browser("submitter")
    page = await submitter.get("/console/audit")
    assert page.status_code == 403 and "text/html" in page.headers["content-type"]
    [denied] = await events(services.database, "access_denied", CLIENTS["submitter"][0])
    assert isinstance(denied, AccessDenied)
    assert (denied.route, denied.status, denied.role) == ("/console/audit", 403, "submitter")
    [refused] = await events(services.database, "audit_accessed", CLIENTS["submitter"][0])
    assert isinstance(refused, AuditAccessed) and refused.denied and refused.action == "query"


async def test_each_audit_page_view_is_recorded_with_its_filters(
    browser: Browser, services: Services
) -> None:
    auditor = await browser("auditor")
    page = await auditor.get("/console/audit", params={"event_type": "session_started"})
    assert page.status_code == 200 and "session started" in page.text
    [read] = await events(services.database, "audit_accessed", CLIENTS["auditor"][0])
    assert isinstance(read, AuditAccessed)
    assert read.action == "query" and read.format == "html"
    assert read.filters["event_types"] == ["session_started"] and read.row_count == 1
    bad = await auditor.get("/console/audit", params={"since": "yesterday"})
    assert bad.status_code == 422 and 'id="since-error"' in bad.text


async def test_unknown_ids_are_404_pages(browser: Browser) -> None:
    admin = await browser("admin")
    for path in (f"/console/requests/{uuid.uuid4()}", "/console/approvals/zzz", "/console/nope"):
        page = await admin.get(path)
        assert page.status_code == 404 and "Not found" in page.text, path
        assert "Traceback" not in page.text


async def test_sessions_end_when_idle_when_old_and_when_revoked(
    services: Services, keys: dict[str, str]
) -> None:
    database = services.database
    reviewer = (await check_key(database, keys["reviewer"])).client
    assert reviewer is not None
    idle = SessionStore(database, idle_seconds=0.3, lifetime_seconds=60)
    token, _ = await idle.open(reviewer)
    assert (await idle.find(token)).user is not None
    await asyncio.sleep(0.4)
    assert (await idle.find(token)).ended == "idle"
    assert (await idle.find(token)).ended == "unknown"

    old = SessionStore(database, idle_seconds=60, lifetime_seconds=0.3)
    token, _ = await old.open(reviewer)
    await asyncio.sleep(0.4)
    assert (await old.find(token)).ended == "expired"

    kept = SessionStore(database, idle_seconds=60, lifetime_seconds=60)
    token, user = await kept.open(reviewer)
    await kept.close(user)
    assert (await kept.find(token)).ended == "unknown"

    token, _ = await kept.open(reviewer)
    await revoke_client(database, reviewer.name)
    assert (await kept.find(token)).ended == "revoked"
    reasons = [e.reason for e in await events(database, "session_ended")]  # type: ignore[attr-defined]
    assert reasons == ["idle", "expired", "signed_out", "revoked"]
    async with database.read_session() as session:
        assert (await session.execute(select(func.count(ConsoleSession.id)))).scalar_one() == 0


async def test_cancel_needs_a_reason_and_someone_elses_request_is_a_recorded_404(
    client: httpx.AsyncClient, browser: Browser, keys: dict[str, str], services: Services
) -> None:
    made = await client.post(
        "/v1/requests", json=research_body(), headers=bearer(keys["submitter"])
    )
    request_id = made.json()["id"]
    other = await browser("other")
    hidden = await other.get(f"/console/requests/{request_id}")
    assert hidden.status_code == 404 and f"no request {request_id}" in hidden.text
    [denied] = await events(services.database, "access_denied", CLIENTS["other"][0])
    assert isinstance(denied, AccessDenied) and denied.status == 404

    owner = await browser("submitter")
    page = await owner.get(f"/console/requests/{request_id}")
    token = csrf_of(page.text)
    empty = await owner.post(
        f"/console/requests/{request_id}/cancel", data={"reason": "", "csrf_token": token}
    )
    assert empty.status_code == 422 and 'id="reason-error"' in empty.text
    assert (await services.orchestrator.get(uuid.UUID(request_id))).state == "pending"
    done = await owner.post(
        f"/console/requests/{request_id}/cancel",
        data={"reason": "submitted twice", "csrf_token": token},
    )
    assert done.status_code == 303
    history = await services.orchestrator.history(uuid.UUID(request_id))
    last = history.transitions[-1]
    assert (history.request.state, last.actor, last.reason) == (
        "cancelled",
        CLIENTS["submitter"][0],
        "submitted twice",
    )


async def test_transcript_review_reads_corrects_and_refuses_stale_versions(
    client: httpx.AsyncClient, browser: Browser, keys: dict[str, str], services: Services
) -> None:
    audio = Path(__file__).resolve().parents[1] / "fixtures" / "audio" / "noisy_speech.wav"
    made = await client.post(
        "/v1/recordings",
        data={"patient_id": "P000107", "clinician_id": "C042"},
        files={"file": ("noisy.wav", audio.read_bytes(), "audio/wav")},
        headers=bearer(keys["submitter"]),
    )
    recording = made.json()["id"]
    await run_workers_until_idle(services)

    reviewer = await browser("reviewer")
    page = await reviewer.get(f"/console/recordings/{recording}")
    assert page.status_code == 200 and "<audio" in page.text and 'class="low"' in page.text
    part = await reviewer.get(
        f"/console/recordings/{recording}/audio", headers={"Range": "bytes=0-99"}
    )
    assert part.status_code == 206 and len(part.content) == 100
    outside = await reviewer.get(
        f"/console/recordings/{recording}/audio", headers={"Range": "bytes=999999999-"}
    )
    assert outside.status_code == 416 and outside.headers["content-range"].startswith("bytes */")

    token = csrf_of(page.text)
    first = await reviewer.post(
        f"/console/recordings/{recording}/transcript",
        data={"text": "blood pressure is fine", "version": "1", "csrf_token": token},
    )
    assert first.status_code == 303
    stale = await reviewer.post(
        f"/console/recordings/{recording}/transcript",
        data={"text": "another reading", "version": "1", "csrf_token": token},
    )
    assert stale.status_code == 409
    assert "Someone else changed this transcript" in stale.text
    assert "blood pressure is fine" in stale.text and "another reading" in stale.text
    versions = await services.recordings.versions(
        Principal("dr-review", Role.REVIEWER), uuid.UUID(recording)
    )
    assert [v.version for v in versions] == [1, 2]

    auditor = await browser("auditor")
    metadata = await auditor.get(f"/console/recordings/{recording}")
    assert metadata.status_code == 200 and "<audio" not in metadata.text
    assert "blood pressure is fine" not in metadata.text
    refused = await auditor.get(f"/console/recordings/{recording}/audio")
    assert refused.status_code == 403
    reads = await events(services.database, "phi_accessed", CLIENTS["reviewer"][0])
    assert {(r.resource, r.channel) for r in reads} == {  # type: ignore[attr-defined]
        ("transcript", "console"),
        ("audio", "console"),
    }
