"""Console sessions end: after the idle timeout, at their absolute lifetime, when the key is
revoked; a wrong key is refused beside the field and recorded. Short timeouts, so these
tests run against their own ``ledgerflow serve``."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy.engine import make_url

from tests.browser.conftest import (
    WIDE,
    ConsoleServer,
    start_console,
    stop_console,
)
from tests.support.serve import run_cli

pytestmark = pytest.mark.slow

IDLE_SECONDS = 2
LIFETIME_SECONDS = 6


@pytest.fixture(scope="module")
def short_console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleServer]:
    tmp = tmp_path_factory.mktemp("short-sessions")
    started = start_console(
        tmp,
        make_url(f"sqlite+aiosqlite:///{tmp / 'ledgerflow.db'}"),
        {
            "CONSOLE_IDLE_SECONDS": str(IDLE_SECONDS),
            "CONSOLE_SESSION_SECONDS": str(LIFETIME_SECONDS),
        },
        seed=False,
    )
    yield started
    stop_console(started)


def sign_in_page(console: ConsoleServer, browser: Browser, label: str) -> Page:
    page = browser.new_context(viewport=WIDE).new_page()
    page.goto(f"{console.base}/sign-in")
    page.get_by_label("API key").fill(console.keys[label])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{console.base}/")
    return page


def ended(console: ConsoleServer, label: str) -> list[str]:
    return [
        str(r[0])
        for r in console.rows(
            "SELECT event_data FROM audit_logs WHERE event_type = 'session_ended' "
            "AND actor = :who ORDER BY seq",
            who=console.name(label),
        )
    ]


def test_an_idle_session_expires_and_signing_in_again_returns_to_the_page(
    short_console: ConsoleServer, browser: Browser
) -> None:
    console = short_console
    page = sign_in_page(console, browser, "reviewer")
    page.goto(f"{console.base}/approvals")
    expect(page.get_by_role("heading", name="Approvals")).to_be_visible()
    time.sleep(IDLE_SECONDS + 0.5)

    page.goto(f"{console.base}/escalations")
    assert "/console/sign-in" in page.url and "ended=idle" in page.url
    expect(page.get_by_role("status")).to_contain_text("without activity")
    assert not console.rows("SELECT 1 FROM console_sessions")  # the first test of the module
    assert any('"idle"' in e for e in ended(console, "reviewer"))

    page.get_by_label("API key").fill(console.keys["reviewer"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{console.base}/escalations")
    page.context.close()


def test_an_active_session_still_ends_at_its_lifetime(
    short_console: ConsoleServer, browser: Browser
) -> None:
    console = short_console
    page = sign_in_page(console, browser, "auditor")
    deadline = time.monotonic() + LIFETIME_SECONDS + 3
    while "/sign-in" not in page.url:
        assert time.monotonic() < deadline, "the session outlived CONSOLE_SESSION_SECONDS"
        time.sleep(IDLE_SECONDS / 2)
        page.goto(f"{console.base}/")
    assert "ended=expired" in page.url
    expect(page.get_by_role("status")).to_contain_text("time limit")
    assert any('"expired"' in e for e in ended(console, "auditor"))
    page.context.close()


def test_a_revoked_key_ends_its_session_at_the_next_page(
    short_console: ConsoleServer, browser: Browser
) -> None:
    console = short_console
    page = sign_in_page(console, browser, "submitter")
    run_cli(
        [sys.executable, "-m", "app.cli", "clients", "revoke", console.name("submitter")],
        console.env,
    )
    page.goto(f"{console.base}/requests")
    assert "ended=revoked" in page.url
    assert any('"revoked"' in e for e in ended(console, "submitter"))
    page.context.close()


def test_a_wrong_key_is_refused_beside_the_field_and_recorded(
    short_console: ConsoleServer, browser: Browser
) -> None:
    console = short_console
    [(sessions_before,)] = console.rows("SELECT count(*) FROM console_sessions")
    page = browser.new_context(viewport=WIDE).new_page()
    page.goto(f"{console.base}/sign-in")
    key = page.get_by_label("API key")
    key.fill("lf_00000000_" + "x" * 43)
    with page.expect_response(lambda r: r.url.endswith("/sign-in")) as answer:
        page.get_by_role("button", name="Sign in").click()
    assert answer.value.status == 401
    expect(key).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#api_key-error")).to_contain_text("not accepted (unknown key)")
    refusals = console.rows(
        "SELECT event_data FROM audit_logs WHERE event_type = 'access_denied' "
        "AND event_data LIKE '%/console/sign-in%'"
    )
    assert any("unknown key" in str(r[0]) and "lf_00000000" in str(r[0]) for r in refusals)
    assert console.rows("SELECT count(*) FROM console_sessions")[0][0] <= sessions_before
    page.context.close()
