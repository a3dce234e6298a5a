"""The console in a real browser: reviewers approve and resolve with required notes and the
trail names them; auditors search, export, verify and checkpoint; refused pages, forged
forms and unknown ids are answered with pages, and recorded where the API records them."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import sys
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from app.console.render import short_id
from tests.browser.conftest import ConsoleServer, SignIn, submit_research, upload_recording
from tests.support.serve import run_cli

pytestmark = pytest.mark.slow


def nav(page: Page, section: str) -> None:
    """Follow a link of the header's section navigation."""
    page.get_by_role("navigation", name="Sections").get_by_role("link", name=section).click()


def approval_of(console: ConsoleServer, request_id: str) -> str:
    """The id of the request's pending approval (waiting for the gate first)."""
    console.wait_state(request_id, {"awaiting_approval"})
    [row] = console.rows(
        "SELECT id FROM approvals WHERE request_id = :rid AND status = 'pending'",
        rid=request_id.replace("-", ""),
    )
    return str(row[0])


def test_reviewer_approves_with_a_note_and_the_trail_names_them(
    console: ConsoleServer, sign_in: SignIn, tmp_path: Path
) -> None:
    request_id = submit_research(console)
    approval_of(console, request_id)
    page = sign_in("reviewer")

    nav(page, "Approvals")
    expect(page.get_by_role("heading", name="Approvals")).to_be_visible()
    page.locator(f"tr:has-text('{short_id(request_id)}')").get_by_role("link").click()
    expect(page.get_by_role("heading", name="What the step produced")).to_be_visible()
    # The normalised criteria are shown readably, not as JSON.
    expect(page.get_by_text("inclusion codes")).to_be_visible()
    expect(page.get_by_text("E11", exact=True)).to_be_visible()

    # An empty note is refused beside the field, and nothing is written.
    page.get_by_role("button", name="Approve").click()
    note = page.get_by_label("Note")
    expect(note).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#note-error")).to_contain_text("required")
    assert (
        console.rows(
            "SELECT status FROM approvals WHERE request_id = :rid", rid=request_id.replace("-", "")
        )[0][0]
        == "pending"
    )

    note.fill("Criteria match the IRB protocol.")
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status")).to_contain_text("Approved")
    assert re.search(rf"/console/requests/{request_id}\?done=approved$", page.url)

    assert console.wait_state(request_id, {"completed", "failed", "escalated"}) == "completed"
    page.reload()
    expect(page.locator(".facts")).to_contain_text("completed")
    decided = page.locator("tr", has_text="approval approved")
    expect(decided).to_contain_text(console.name("reviewer"))
    expect(decided).to_contain_text("Criteria match the IRB protocol.")

    # The delivery's files download, each matching the manifest's SHA-256.
    files = page.get_by_role("region", name="Delivery files").locator("tbody tr")
    expect(files.first).to_be_visible()
    row = page.get_by_role("region", name="Delivery files").locator("tr", has_text="conditions")
    listed = row.locator("code").get_attribute("title")
    with page.expect_download() as download:
        row.get_by_role("link").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == listed
    downloads = console.rows(
        "SELECT actor, event_data FROM audit_logs WHERE event_type = 'data_accessed' "
        "AND request_id = :rid",
        rid=request_id.replace("-", ""),
    )
    assert [a for a, _ in downloads] == [console.name("reviewer")]

    # The auditor's trail page shows the reviewer as the decision's actor.
    auditor = sign_in("auditor")
    auditor.goto(f"{console.base}/audit/trail/{request_id}")
    row = auditor.locator("tr", has_text="approval decided")
    expect(row).to_contain_text(console.name("reviewer"))
    expect(auditor.locator("tr", has_text="request completed")).to_have_count(1)

    [(actor, data)] = console.rows(
        "SELECT actor, event_data FROM audit_logs WHERE event_type = 'approval_decided' "
        "AND request_id = :rid",
        rid=request_id.replace("-", ""),
    )
    assert actor == console.name("reviewer")
    assert '"approve"' in data and "IRB protocol" in data
    # Opening the trail page was itself audited, like the API's trail read.
    reads = console.rows(
        "SELECT event_data FROM audit_logs WHERE event_type = 'audit_accessed' AND actor = :who",
        who=console.name("auditor"),
    )
    assert any('"trail"' in r[0] and request_id in r[0] for r in reads), reads


def test_reviewer_resolves_an_escalation_with_a_required_note(
    console: ConsoleServer, sign_in: SignIn
) -> None:
    request_id = submit_research(console, "cystic_fibrosis_under_40")
    page = sign_in("reviewer")
    gate = approval_of(console, request_id)
    page.goto(f"{console.base}/approvals/{gate}")
    page.get_by_label("Note").fill("Small cohort expected.")
    page.get_by_role("button", name="Approve").click()
    assert console.wait_state(request_id, {"escalated", "completed", "failed"}) == "escalated"

    nav(page, "Escalations")
    page.locator(f"tr:has-text('{short_id(request_id)}')").get_by_role("link").click()
    expect(page.get_by_role("heading", name=re.compile("cohort below minimum"))).to_be_visible()
    expect(page.get_by_text("cohort size", exact=False).first).to_be_visible()
    page.get_by_role("button", name="Skip the step").click()
    expect(page.locator("#note-error")).to_be_visible()
    assert (
        console.rows(
            "SELECT status FROM escalations WHERE request_id = :rid",
            rid=request_id.replace("-", ""),
        )[0][0]
        == "open"
    )

    page.get_by_label("Note").fill("Deliver the small cohort; the PI accepted it.")
    page.get_by_role("button", name="Skip the step").click()
    expect(page.get_by_role("status")).to_contain_text("skipped")
    assert console.wait_state(request_id, {"completed", "failed"}) == "completed"
    [(actor, resolution)] = console.rows(
        "SELECT resolved_by, resolution FROM escalations WHERE request_id = :rid",
        rid=request_id.replace("-", ""),
    )
    assert (actor, resolution) == (console.name("reviewer"), "skip")


def test_a_submitter_cannot_open_the_approvals_page_and_the_refusal_is_recorded(
    console: ConsoleServer, sign_in: SignIn
) -> None:
    page = sign_in("submitter")
    expect(page.get_by_role("link", name="Approvals")).to_have_count(0)
    response = page.goto(f"{console.base}/approvals")
    assert response is not None and response.status == 403
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    expect(page.locator(".error-message")).to_contain_text("submitter")

    refusals = console.rows(
        "SELECT actor, event_data FROM audit_logs WHERE event_type = 'access_denied' "
        "AND actor = :who",
        who=console.name("submitter"),
    )
    assert any('"/console/approvals"' in data and "403" in data for _, data in refusals), refusals

    # The audit pages too: refused, recorded, and recorded as a refused audit read.
    response = page.goto(f"{console.base}/audit")
    assert response is not None and response.status == 403
    denied_reads = console.rows(
        "SELECT event_data FROM audit_logs WHERE event_type = 'audit_accessed' AND actor = :who",
        who=console.name("submitter"),
    )
    assert any('"denied": true' in r[0] or '"denied":true' in r[0] for r in denied_reads)


def test_a_form_posted_without_its_csrf_token_is_refused_and_changes_nothing(
    console: ConsoleServer, sign_in: SignIn
) -> None:
    request_id = submit_research(console)
    gate = approval_of(console, request_id)
    page = sign_in("reviewer")
    page.goto(f"{console.base}/approvals/{gate}")
    page.get_by_label("Note").fill("Looks fine.")
    page.locator("form[action$='/decision'] input[name=csrf_token]").evaluate("e => e.remove()")
    with page.expect_response(re.compile(r"/decision$")) as answer:
        page.get_by_role("button", name="Approve").click()
    assert answer.value.status == 403
    expect(page.locator(".error-message")).to_contain_text("not sent from a current console page")

    # A wrong token, sent with the browser's own session cookie, is refused the same way.
    forged = page.context.request.post(
        f"{console.base}/approvals/{gate}/decision",
        form={"decision": "approve", "note": "forged", "csrf_token": "0" * 64},
    )
    assert forged.status == 403

    rid = request_id.replace("-", "")
    assert (
        console.rows("SELECT status FROM approvals WHERE id = :id", id=gate.replace("-", ""))[0][0]
        == "pending"
    )
    assert not console.rows(
        "SELECT 1 FROM audit_logs WHERE event_type = 'approval_decided' AND request_id = :rid",
        rid=rid,
    )
    refusals = console.rows(
        "SELECT event_data FROM audit_logs WHERE event_type = 'access_denied' AND actor = :who",
        who=console.name("reviewer"),
    )
    assert sum("CSRF" in r[0] for r in refusals) >= 2


def test_unknown_ids_answer_a_404_page_not_a_traceback(
    console: ConsoleServer, sign_in: SignIn
) -> None:
    page = sign_in("admin")
    for path in (
        "/requests/00000000-0000-4000-8000-000000000000",
        "/requests/not-an-id",
        "/approvals/00000000-0000-4000-8000-000000000000",
        "/escalations/12345",
        "/audit/trail/00000000-0000-4000-8000-000000000000",
        "/audit/checkpoints/" + "ab" * 32 + ".json",
        "/no-such-page",
    ):
        response = page.goto(f"{console.base}{path}")
        assert response is not None and response.status == 404, path
        expect(page.get_by_role("heading", name="Not found")).to_be_visible()
        assert "Traceback" not in page.content()


def test_pages_carry_a_strict_content_security_policy_and_session_cookies_are_guarded(
    console: ConsoleServer, sign_in: SignIn
) -> None:
    page = sign_in("reviewer")
    response = page.goto(f"{console.base}/approvals")
    assert response is not None
    headers = response.headers
    policy = headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"] == "no-store"
    assert page.locator("script:not([src])").count() == 0
    assert page.locator("[style]").count() == 0

    [cookie] = [c for c in page.context.cookies() if c["name"] == "lf_console"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
    assert cookie["secure"] is False  # plain http here; https sets Secure
    assert console.keys["reviewer"] not in cookie["value"]
    assert page.evaluate("() => document.cookie") == ""
    assert page.evaluate("() => localStorage.length + sessionStorage.length") == 0
    # Only the token's SHA-256 is kept on the server.
    stored = [r[0] for r in console.rows("SELECT token_hash FROM console_sessions")]
    assert cookie["value"] not in stored and len(stored[0]) == 64

    # Signing out deletes the session row and records why; the old cookie is worthless.
    before = len(stored)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_contain_text("signed out")
    assert len(console.rows("SELECT 1 FROM console_sessions")) == before - 1
    ended = console.rows(
        "SELECT event_data FROM audit_logs WHERE event_type = 'session_ended' AND actor = :who",
        who=console.name("reviewer"),
    )
    assert any("signed_out" in r[0] for r in ended)
    replay = page.context.request.get(
        f"{console.base}/approvals",
        headers={"Cookie": f"lf_console={cookie['value']}"},
        max_redirects=0,
    )
    assert replay.status == 303 and "/console/sign-in" in replay.headers["location"]


def test_auditor_filters_exports_a_csv_that_verifies_offline_runs_verify_and_checkpoints(
    console: ConsoleServer, sign_in: SignIn, tmp_path: Path
) -> None:
    page = sign_in("auditor")
    nav(page, "Audit")
    expect(page.get_by_role("heading", name="Audit log")).to_be_visible()

    page.get_by_label("Event types").select_option(["session_started"])
    page.get_by_label("Actor").fill(console.name("auditor"))
    page.get_by_role("button", name="Search").click()
    assert "event_type=session_started" in page.url
    rows = page.locator("table.audit tbody tr")
    expect(rows.first).to_be_visible()
    for index in range(rows.count()):
        expect(rows.nth(index)).to_contain_text("session started")
        expect(rows.nth(index)).to_contain_text(console.name("auditor"))

    # The whole log as CSV: every chain complete, so it verifies offline.
    page.get_by_role("link", name="Clear").click()
    [(before,)] = console.rows("SELECT count(*) FROM audit_logs")
    with page.expect_download() as download:
        page.get_by_role("link", name="CSV", exact=True).click()
    export = tmp_path / "audit.csv"
    download.value.save_as(export)
    assert download.value.suggested_filename.endswith(".csv")
    with export.open(encoding="utf-8", newline="") as handle:
        assert len(list(csv.DictReader(handle))) >= before
    offline = run_cli(
        [sys.executable, "-m", "app.cli", "audit", "verify", "--file", str(export)], console.env
    )
    assert "OK" in offline

    page.get_by_role("button", name="Run verify").click()
    expect(page.get_by_role("status")).to_contain_text("Verified: no problem found")

    page.get_by_role("link", name="Audit log").click()
    page.get_by_role("button", name="Create a checkpoint").click()
    expect(page.get_by_role("heading", name="Checkpoint created")).to_be_visible()
    digest = page.locator("#digest").inner_text().strip()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the checkpoint file").click()
    saved = tmp_path / "checkpoint.json"
    download.value.save_as(saved)
    assert json.loads(saved.read_text())["digest"] == digest
    held = run_cli(
        [sys.executable, "-m", "app.cli", "audit", "verify", "--checkpoint", str(saved)],
        console.env,
    )
    assert "OK" in held

    actions = {
        (data["action"], data.get("format"))
        for (raw,) in console.rows(
            "SELECT event_data FROM audit_logs WHERE event_type = 'audit_accessed' "
            "AND actor = :who",
            who=console.name("auditor"),
        )
        for data in [json.loads(raw) if isinstance(raw, str) else raw]
    }
    assert {("query", "html"), ("export", "csv"), ("verify", None), ("checkpoint", None)} <= actions

    # The overview now says when the last checkpoint was taken and by whom.
    nav(page, "Overview")
    card = page.locator("section.card", has_text="Audit trail")
    expect(card).to_contain_text("Last verify passed")
    expect(card).to_contain_text(console.name("auditor"))
    expect(card).to_contain_text(digest[:8])


def test_clinician_plays_corrects_and_approves_a_transcript_and_both_versions_are_kept(
    console: ConsoleServer, sign_in: SignIn
) -> None:
    request_id = upload_recording(console, "noisy_speech.wav")
    assert console.wait_state(request_id, {"awaiting_approval", "completed", "failed"}) == (
        "awaiting_approval"
    )
    page = sign_in("clinician")
    nav(page, "Approvals")
    page.locator(f"tr:has-text('{short_id(request_id)}')").get_by_role("link").click()
    page.get_by_role("link", name="review the transcript").click()
    expect(page.get_by_role("heading", name=re.compile("^Recording"))).to_be_visible()

    # The audio element loads and seeks (range requests, each a recorded PHI read).
    page.wait_for_function("() => document.querySelector('audio').readyState >= 1")
    duration = page.evaluate("() => document.querySelector('audio').duration")
    assert 3 < duration < 5, duration
    seeked = page.evaluate(
        """(target) => new Promise(resolve => {
            const audio = document.querySelector('audio');
            audio.addEventListener('seeked', () => resolve(audio.currentTime), {once: true});
            audio.currentTime = target;
        })""",
        duration / 2,
    )
    assert abs(seeked - duration / 2) < 0.1
    # What a seek past the buffered part asks for: one byte range, answered 206.
    part = page.context.request.get(
        f"{console.base}/recordings/{request_id}/audio", headers={"Range": "bytes=1000-1999"}
    )
    assert part.status == 206 and len(part.body()) == 1000
    assert part.headers["content-range"].startswith("bytes 1000-1999/")
    expect(page.locator("mark.low").first).to_be_visible()

    original = page.get_by_role("textbox", name="Transcript").input_value()
    corrected = "The patient reports chest pain on exertion since Monday."
    page.get_by_role("textbox", name="Transcript").fill(corrected)
    page.get_by_role("button", name="Save correction").click()
    expect(page.get_by_role("status")).to_contain_text("Saved as a new version")
    versions = page.get_by_role("region", name="Transcript versions").locator("tbody tr")
    expect(versions).to_have_count(2)
    expect(versions.nth(1)).to_contain_text(console.name("clinician"))
    expect(versions.nth(1)).to_contain_text("current")

    page.locator("#gate-h ~ form").get_by_label("Note").fill("Corrected from the audio.")
    page.get_by_role("button", name="Approve transcript").click()
    expect(page.get_by_role("status")).to_contain_text("Approved")
    assert console.wait_state(request_id, {"completed", "failed"}) == "completed"

    rid = request_id.replace("-", "")
    kept = console.rows(
        "SELECT version, source, created_by, text FROM transcript_versions "
        "WHERE recording_id = :rid ORDER BY version",
        rid=rid,
    )
    assert [(v, s, t) for v, s, _, t in kept] == [(1, "asr", original), (2, "clinician", corrected)]
    assert kept[1][2] == console.name("clinician")
    trail = console.rows(
        "SELECT event_type, actor, event_data FROM audit_logs WHERE request_id = :rid", rid=rid
    )
    kinds = {(kind, actor) for kind, actor, _ in trail}
    assert ("transcript_corrected", console.name("clinician")) in kinds
    assert ("approval_decided", console.name("clinician")) in kinds
    reads = [json.loads(data) for kind, actor, data in trail if kind == "phi_accessed"]
    assert {r["resource"] for r in reads} == {"transcript", "audio"}
    assert all(r["channel"] == "console" for r in reads)
    assert any((r.get("byte_range") or "").startswith("1000-1999/") for r in reads), reads
    # The audit trail holds digests, never the text.
    assert not any("chest pain" in str(data) for _, _, data in trail)


def test_a_correction_of_a_stale_version_is_not_saved_and_both_texts_are_shown(
    console: ConsoleServer, sign_in: SignIn
) -> None:
    request_id = upload_recording(console, "noisy_speech.wav")
    console.wait_state(request_id, {"awaiting_approval"})
    url = f"{console.base}/recordings/{request_id}"
    clinician, reviewer = sign_in("clinician"), sign_in("reviewer")
    clinician.goto(url)
    reviewer.goto(url)

    clinician.get_by_role("textbox", name="Transcript").fill(
        "Blood pressure is one forty over ninety."
    )
    clinician.get_by_role("button", name="Save correction").click()
    expect(clinician.get_by_role("status")).to_contain_text("Saved as a new version")

    reviewer.get_by_role("textbox", name="Transcript").fill(
        "Blood pressure one fifty over ninety five."
    )
    with reviewer.expect_response(re.compile(r"/transcript$")) as answer:
        reviewer.get_by_role("button", name="Save correction").click()
    assert answer.value.status == 409
    alert = reviewer.get_by_role("alert")
    expect(alert).to_contain_text("Someone else changed this transcript")
    expect(alert).to_contain_text("one forty over ninety")
    expect(alert).to_contain_text("one fifty over ninety five")
    expect(alert).to_contain_text(console.name("clinician"))
    kept = console.rows(
        "SELECT version, created_by FROM transcript_versions WHERE recording_id = :rid "
        "ORDER BY version",
        rid=request_id.replace("-", ""),
    )
    assert [v for v, _ in kept] == [1, 2] and kept[1][1] == console.name("clinician")

    # Having compared, the reviewer saves over the version now current.
    reviewer.get_by_role("button", name="Save correction").click()
    expect(reviewer.get_by_role("status")).to_contain_text("Saved as a new version")
    assert (
        len(
            console.rows(
                "SELECT 1 FROM transcript_versions WHERE recording_id = :rid",
                rid=request_id.replace("-", ""),
            )
        )
        == 3
    )
