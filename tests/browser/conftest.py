"""Browser tests: Playwright driving Debian's Chromium against a real ``ledgerflow serve``.

One server for the session (its own SQLite database, audio and delivery folders; tests that
need other settings start their own), one browser per module, a fresh browser context
(cookies) per signed-in user. Every page a test opens is
watched: a console error (which is how Chromium reports a Content-Security-Policy
violation) or an uncaught script error fails the test.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, sync_playwright
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url

from app.agents.research import sample_research_payloads
from app.auth import create_client
from app.database import Database
from tests.support.serve import ROOT, Server, free_port, run_cli, wait_for

pytestmark = pytest.mark.slow

T = TypeVar("T")
CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE = ROOT / "tests" / "fixtures" / "axe" / "axe.min.js"
SCREENSHOTS = ROOT / "docs" / "console"
#: The people of the tests: label → (client name, role).
PEOPLE = {
    "submitter": ("svc-intake", "submitter"),
    "reviewer": ("dr-reviewer", "reviewer"),
    "clinician": ("dr-clinician", "reviewer"),
    "auditor": ("compliance-officer", "auditor"),
    "admin": ("ops-admin", "admin"),
}
WIDE = {"width": 1280, "height": 800}
NARROW = {"width": 390, "height": 844}


def in_thread(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on its own event loop in another thread (Playwright owns this one)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


@dataclass
class ConsoleServer:
    """A running ``ledgerflow serve`` with a key per person of :data:`PEOPLE`."""

    server: Server
    env: dict[str, str]
    url: URL
    keys: dict[str, str]
    tmp: Path

    @property
    def base(self) -> str:
        """The console's URL."""
        return f"{self.server.base_url}/console"

    def name(self, label: str) -> str:
        """The client name (audit actor) of a person."""
        return PEOPLE[label][0]

    def api(self, label: str) -> httpx.Client:
        """An HTTP API client with the person's key."""
        return httpx.Client(
            base_url=self.server.base_url,
            headers={"Authorization": f"Bearer {self.keys[label]}"},
            timeout=30,
        )

    def rows(self, sql: str, **params: Any) -> list[Any]:
        """Rows of a SQL query on the server's database (read from this test process)."""

        async def read() -> list[Any]:
            database = Database.from_url(self.url)
            try:
                async with database.read_session() as session:
                    return list(await session.execute(text(sql), params))
            finally:
                await database.dispose()

        return in_thread(read())

    def wait_state(self, request_id: str, states: set[str], timeout: float = 90) -> str:
        """Wait until the request is in one of ``states``; return the state."""
        with self.api("admin") as client:

            def state() -> str | None:
                found = str(client.get(f"/v1/requests/{request_id}").json()["state"])
                return found if found in states else None

            return str(wait_for(state, f"request {request_id} to reach {states}", timeout))


def _watch(page: Page, problems: list[str]) -> None:
    def on_console(message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        where = str(message.location.get("url", ""))
        # An error page's own status (403, 404, 422) is reported as a failed load of the
        # document; the page is what the test expects. A failed sub-resource is a problem.
        if message.text.startswith("Failed to load resource") and "/static/" not in where:
            return
        problems.append(f"console {message.type} at {where}: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless (no browser download is possible here).

    Module-scoped: Playwright's sync API keeps its event loop running in this thread while
    it is open, so it must be closed before the next module's async tests run.
    """
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: apt-get install chromium"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} — CI is set, so browser tests must run", pytrace=False)
        pytest.skip(reason)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield launched
        launched.close()


def start_console(
    tmp: Path, database_url: URL, extra_env: dict[str, str] | None = None, *, seed: bool = True
) -> ConsoleServer:
    """Migrate ``database_url`` (and seed its warehouse), create the people's keys, start
    ``serve``."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url.render_as_string(hide_password=False),
        "AUDIO_DIR": str(tmp / "audio"),
        "DELIVERY_DIR": str(tmp / "deliveries"),
        "POLL_SECONDS": "0.1",
        "LOG_FORMAT": "json",
        "PYTHONPATH": str(ROOT),
        **(extra_env or {}),
    }
    run_cli([sys.executable, "-m", "app.cli", "db", "init"], env)
    if seed:
        run_cli([sys.executable, "scripts/seed_db.py", "--patients", "300"], env)

    async def make_keys() -> dict[str, str]:
        database = Database.from_url(database_url)
        try:
            return {
                label: (await create_client(database, name, role)).key
                for label, (name, role) in PEOPLE.items()
            }
        finally:
            await database.dispose()

    keys = in_thread(make_keys())
    server = Server(env, free_port(), tmp / "serve.log")
    server.start().close()
    return ConsoleServer(server, env, database_url, keys, tmp)


def stop_console(console: ConsoleServer) -> None:
    """Stop the server: exit 0 and no traceback in its log."""
    try:
        assert console.server.terminate() == 0, console.server.log.read_text()[-3000:]
    finally:
        console.server.kill()


@pytest.fixture(scope="session")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleServer]:
    """A console on its own SQLite database, shared by the browser tests (one start)."""
    tmp = tmp_path_factory.mktemp("console")
    started = start_console(tmp, make_url(f"sqlite+aiosqlite:///{tmp / 'ledgerflow.db'}"))
    yield started
    stop_console(started)


@pytest.fixture
def page_problems() -> Iterator[list[str]]:
    """Console and script errors of every page opened in the test; the test fails on any."""
    problems: list[str] = []
    yield problems
    assert not problems, problems


SignIn = Callable[..., Page]


@pytest.fixture
def sign_in(console: ConsoleServer, browser: Browser, page_problems: list[str]) -> Iterator[SignIn]:
    """``sign_in(label, viewport=WIDE, timezone=None)``: a fresh browser signed in as them."""
    contexts: list[BrowserContext] = []

    def open_as(
        label: str, viewport: dict[str, int] | None = None, timezone: str | None = None
    ) -> Page:
        context = browser.new_context(
            viewport=viewport or WIDE, accept_downloads=True, timezone_id=timezone
        )
        contexts.append(context)
        page = context.new_page()
        _watch(page, page_problems)
        page.goto(f"{console.base}/sign-in")
        page.get_by_label("API key").fill(console.keys[label])
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{console.base}/")
        return page

    yield open_as
    for context in contexts:
        context.close()


def screenshot(page: Page, name: str) -> None:
    """Save ``docs/console/<name>.png`` when ``LEDGERFLOW_SCREENSHOTS=1`` (never in CI)."""
    if os.environ.get("LEDGERFLOW_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=False)


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """Serious and critical axe-core violations of the page as it is now."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        # Evaluated through the DevTools protocol, so the page's CSP does not block it.
        page.evaluate(AXE.read_text(encoding="utf-8"))
    found: list[dict[str, Any]] = page.evaluate(
        """async () => {
            const result = await axe.run(document, {resultTypes: ["violations"]});
            return result.violations
                .filter(v => v.impact === "serious" || v.impact === "critical")
                .map(v => ({id: v.id, impact: v.impact, help: v.help,
                            nodes: v.nodes.map(n => n.html).slice(0, 5)}));
        }"""
    )
    return found


def unique_key() -> str:
    """A fresh idempotency key."""
    return f"browser-{uuid.uuid4()}"


def submit_research(console: ConsoleServer, sample: str = "type2_diabetes_adults") -> str:
    """Submit a sample research request over the HTTP API as the submitter; return its id."""
    with console.api("submitter") as client:
        made = client.post(
            "/v1/requests",
            json={"kind": "research", "payload": sample_research_payloads()[sample]},
            headers={"Idempotency-Key": unique_key()},
        )
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def upload_recording(console: ConsoleServer, name: str) -> str:
    """Upload a fixture WAV over the HTTP API as the submitter; return its request id."""
    with (
        console.api("submitter") as client,
        (ROOT / "tests" / "fixtures" / "audio" / name).open("rb") as audio,
    ):
        made = client.post(
            "/v1/recordings",
            data={"patient_id": "P000107", "clinician_id": "C042"},
            files={"file": (name, audio, "audio/wav")},
        )
    assert made.status_code == 201, made.text
    return str(made.json()["id"])
