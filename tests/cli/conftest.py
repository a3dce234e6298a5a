"""Fixtures: the ``ledgerflow`` command run in-process through its real entry point.

``main(argv)`` is what the console script calls, so these runs see the same error mapping
(one line, exit codes) as a person at a terminal; output is captured at 100 columns. The
command runs in a thread (it starts its own event loop), so tests can prepare data with
the async Python API first.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

import app.logging
from app.agents.research import sample_research_payloads
from app.bootstrap import Services, build_services
from app.cli import main
from app.config import Settings
from app.database import Database
from app.orchestrator.worker import Worker

#: The terminal width every table must fit.
WIDTH = 100


@dataclass(frozen=True)
class Result:
    """What one run of the command left behind."""

    code: int
    out: str
    err: str


Run = Callable[..., Awaitable[Result]]


@pytest.fixture
def run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, restore_logging: None
) -> Run:
    """``await run("requests", "list", ...)``: the command's exit code, stdout and stderr."""
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    # Each run configures logging as a fresh process would (logs on stderr, never stdout).
    monkeypatch.setattr(app.logging, "_configured", False)

    def invoke(args: list[str]) -> int:
        try:
            main(args)
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        return 0

    async def run_command(*args: str) -> Result:
        capsys.readouterr()  # what the test printed before (worker logs) is not the command's
        code = await asyncio.to_thread(invoke, list(args))
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run_command


@pytest.fixture
def url(database_url: URL) -> str:
    """The test database's URL as ``--database-url`` takes it."""
    return database_url.render_as_string(hide_password=False)


@pytest.fixture
async def services(database: Database, tmp_path: Path) -> AsyncIterator[Services]:
    settings = Settings(
        database_url=database.url.render_as_string(hide_password=False),
        audio_dir=tmp_path / "audio",
        delivery_dir=tmp_path / "deliveries",
        poll_seconds=0.05,
    )
    built = build_services(settings, database=database)
    yield built
    if built.warehouse is not database:
        await built.warehouse.dispose()


async def run_until_idle(services: Services) -> None:
    """Run the real workflows in-process until nothing is claimable."""
    worker = Worker(
        services.orchestrator,
        services.agents,
        settings=services.settings,
        concurrency=2,
        warehouse=services.warehouse,
    )
    await worker.run(until_idle=True)


def research(name: str = "type2_diabetes_adults", **changes: object) -> dict[str, object]:
    """A sample research payload with ``changes``."""
    return {**sample_research_payloads()[name], **changes}


async def gated_request(services: Services, by: str = "svc-cli") -> uuid.UUID:
    """A research request run to its approval gate (the requirements step needs no data)."""
    view = await services.orchestrator.submit("research", research(), by)
    await run_until_idle(services)
    return view.id


async def escalated_request(services: Services) -> uuid.UUID:
    """A research request without an IRB number, stopped by the requirements step."""
    view = await services.orchestrator.submit("research", research(irb_number=None), "svc-cli")
    await run_until_idle(services)
    return view.id


def typed(request_id: uuid.UUID | str) -> str:
    """A prefix of a request id as a person would type it back: UUIDv7 ids start with their
    creation time, so ids made moments apart share their first digits; the first 23
    characters reach 26 random bits."""
    text = str(request_id)
    return text[:23] if text[14] == "7" else text[:8]
