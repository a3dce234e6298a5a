"""Every main page, as people meet it: no serious or critical axe-core violation, no
horizontal scrolling at 390 px, keyboard reachable with a visible focus. With
``LEDGERFLOW_SCREENSHOTS=1`` the pages are also saved under ``docs/console/`` for the
README (CI never writes them)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from playwright.sync_api import Browser, Page, expect

from app.console.render import short_id
from tests.browser.conftest import (
    NARROW,
    WIDE,
    ConsoleServer,
    SignIn,
    axe_violations,
    screenshot,
    submit_research,
    upload_recording,
)

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Sample:
    """Requests in every state a reviewer meets."""

    waiting: str
    approval: str
    escalated: str
    escalation: str
    recording_request: str
    review: str


def _gate(console: ConsoleServer, table: str, request_id: str) -> str:
    [(found,)] = console.rows(
        f"SELECT id FROM {table} WHERE request_id = :rid AND status IN ('pending', 'open')",
        rid=request_id.replace("-", ""),
    )
    return str(found)


@pytest.fixture(scope="module")
def sample(console: ConsoleServer) -> Sample:
    waiting = submit_research(console, "type2_diabetes_adults")
    small = submit_research(console, "cystic_fibrosis_under_40")
    uploaded = upload_recording(console, "medication.wav")
    review = upload_recording(console, "noisy_speech.wav")
    console.wait_state(small, {"awaiting_approval"})
    with console.api("reviewer") as client:
        decided = client.post(
            f"/v1/approvals/{_gate(console, 'approvals', small)}/decision",
            json={"decision": "approve", "note": "small cohort expected"},
        )
        assert decided.status_code == 200, decided.text
    console.wait_state(small, {"escalated"})
    with console.api("auditor") as client:  # the overview and audit pages show both
        assert client.post("/v1/audit/checkpoints").status_code == 201
        assert client.post("/v1/audit/verify").json()["ok"] is True
    console.wait_state(waiting, {"awaiting_approval"})
    console.wait_state(review, {"awaiting_approval"})
    return Sample(
        waiting=waiting,
        approval=_gate(console, "approvals", waiting),
        escalated=small,
        escalation=_gate(console, "escalations", small),
        recording_request=uploaded,
        review=review,
    )


#: Who checks which pages: (screenshot name or None, path template).
PAGES: dict[str, list[tuple[str | None, str]]] = {
    "admin": [
        ("overview", "/"),
        ("requests", "/requests"),
        ("request", "/requests/{waiting}"),
    ],
    "reviewer": [
        ("approvals", "/approvals"),
        ("approval", "/approvals/{approval}"),
        (None, "/escalations"),
        (None, "/escalations/{escalation}"),
        ("transcript", "/recordings/{review}"),
        (None, "/recordings/{recording_request}"),
    ],
    "auditor": [
        ("audit", "/audit"),
        (None, "/audit/trail/{waiting}"),
        (None, "/recordings"),
        (None, "/recordings/{review}"),
    ],
}


def _fits(page: Page) -> bool:
    return bool(
        page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")
    )


@pytest.mark.parametrize("who", list(PAGES))
def test_main_pages_have_no_serious_accessibility_violations_and_fit_a_phone(
    console: ConsoleServer, sign_in: SignIn, sample: Sample, who: str
) -> None:
    for viewport, suffix in ((WIDE, ""), (NARROW, "-narrow")):
        page = sign_in(who, viewport, "America/Chicago")
        for shot, path in PAGES[who]:
            url = console.base + path.format(**sample.__dict__)
            response = page.goto(url)
            assert response is not None and response.status == 200, url
            # Times are shown in the viewer's zone, with UTC kept in the tooltip.
            stamps = page.locator("time[datetime]")
            if stamps.count():
                expect(stamps.first).to_have_attribute("title", re.compile(r"^\d{4}-.* UTC$"))
                expect(stamps.first).to_contain_text(re.compile(r"CST|CDT"))
            assert axe_violations(page) == [], (url, viewport)
            assert _fits(page), f"{url} scrolls sideways at {viewport['width']} px"
            if shot:
                screenshot(page, shot + suffix)
        page.context.close()


def test_the_sign_in_page_is_accessible_and_fits_a_phone(
    console: ConsoleServer, browser: Browser
) -> None:
    for viewport, suffix in ((WIDE, ""), (NARROW, "-narrow")):
        page = browser.new_context(viewport=viewport).new_page()
        page.goto(f"{console.base}/sign-in")
        assert axe_violations(page) == []
        assert _fits(page)
        screenshot(page, "sign-in" + suffix)
        page.context.close()


def test_an_approval_can_be_decided_with_the_keyboard_alone_with_a_visible_focus(
    console: ConsoleServer, sign_in: SignIn, sample: Sample
) -> None:
    page = sign_in("reviewer")
    page.goto(f"{console.base}/approvals/{sample.approval}")
    reached: list[str] = []
    for _ in range(60):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            """() => {
                const e = document.activeElement;
                const style = getComputedStyle(e);
                return [e.tagName.toLowerCase() + ":" + (e.id || e.textContent.trim()),
                        style.outlineStyle !== "none" && style.outlineWidth !== "0px"];
            }"""
        )
        reached.append(focused[0])
        assert focused[1], f"{focused[0]} has no visible focus"
        if focused[0] == "button:Approve":
            break
    assert "textarea:note" in reached and reached[-1] == "button:Approve", reached
    # Skip link first, then the navigation.
    assert reached[0] == "a:Skip to content"


def test_ids_are_shortened_and_copy_in_full(
    console: ConsoleServer, sign_in: SignIn, sample: Sample
) -> None:
    page = sign_in("admin")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto(f"{console.base}/requests/{sample.waiting}")
    shown = page.locator("h1 code")
    expect(shown).to_have_text(short_id(sample.waiting))
    expect(shown).to_have_attribute("title", sample.waiting)
    page.get_by_role("button", name=f"Copy full request id {sample.waiting}").click()
    assert page.evaluate("() => navigator.clipboard.readText()") == sample.waiting
