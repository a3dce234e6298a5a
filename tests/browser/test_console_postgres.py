"""The console smoke test on PostgreSQL: sign in, approve a research request to completion,
read its trail, run verify, sign out — against ``ledgerflow serve`` on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from app.console.render import short_id
from tests.browser.conftest import (
    ConsoleServer,
    SignIn,
    in_thread,
    start_console,
    stop_console,
    submit_research,
)
from tests.databases import BACKENDS, PostgresFactory

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif("postgresql" not in BACKENDS, reason="LEDGERFLOW_TEST_BACKENDS"),
]


@pytest.fixture(scope="module")
def console(
    tmp_path_factory: pytest.TempPathFactory, postgres_factory: PostgresFactory
) -> Iterator[ConsoleServer]:
    """Overrides the SQLite console of conftest for this module."""
    url = in_thread(postgres_factory.create())
    try:
        started = start_console(tmp_path_factory.mktemp("console-pg"), url)
        yield started
        stop_console(started)
    finally:
        in_thread(postgres_factory.drop(url))


def test_console_smoke_on_postgresql(console: ConsoleServer, sign_in: SignIn) -> None:
    request_id = submit_research(console)
    console.wait_state(request_id, {"awaiting_approval"})

    page = sign_in("reviewer")
    expect(page.locator("section.card", has_text="Approvals")).to_contain_text("1")
    page.get_by_role("link", name="Approval queue").click()
    page.locator(f"tr:has-text('{short_id(request_id)}')").get_by_role("link").click()
    page.get_by_label("Note").fill("Checked on PostgreSQL.")
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status")).to_contain_text("Approved")
    assert console.wait_state(request_id, {"completed", "failed", "escalated"}) == "completed"

    auditor = sign_in("auditor")
    auditor.goto(f"{console.base}/audit/trail/{request_id}")
    expect(auditor.locator("tr", has_text="approval decided")).to_contain_text(
        console.name("reviewer")
    )
    auditor.get_by_role("button", name="Verify this request's chain").click()
    expect(auditor.get_by_role("status")).to_contain_text("Verified: no problem found")
    auditor.get_by_role("button", name="Sign out").click()
    expect(auditor.get_by_role("status")).to_contain_text("signed out")

    [(actor,)] = console.rows(
        "SELECT actor FROM audit_logs WHERE event_type = 'approval_decided' "
        "AND request_id = CAST(:rid AS uuid)",
        rid=request_id,
    )
    assert actor == console.name("reviewer")
    assert console.rows(
        "SELECT 1 FROM audit_logs WHERE event_type = 'session_ended' AND actor = :who",
        who=console.name("auditor"),
    )
