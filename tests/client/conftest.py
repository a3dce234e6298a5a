"""A real ``ledgerflow serve`` (API and workers) per backend, shared by a module's tests."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy.engine import URL, make_url

from app.auth.keys import NewClient, create_client
from app.database import Database
from tests.databases import BACKENDS, PostgresFactory
from tests.support.serve import ROOT, Server, free_port, run_cli

T = TypeVar("T")
AUDIO = ROOT / "tests" / "fixtures" / "audio"
#: The people the tests act as: label → role.
ROLES = {"submitter": "submitter", "reviewer": "reviewer"}


def in_thread(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on its own loop (a test's loop may be running in this thread)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


@dataclass
class Served:
    """A running server, its environment and one key per role of :data:`ROLES`."""

    server: Server
    env: dict[str, str]
    keys: dict[str, str]
    #: Each client's webhook signing secret, by the same labels.
    secrets: dict[str, str]

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def approve(self, request_id: uuid.UUID) -> None:
        """Approve the request's open gate, as a reviewer."""
        headers = {"Authorization": f"Bearer {self.keys['reviewer']}"}
        with httpx.Client(base_url=self.base_url, headers=headers, timeout=30) as http:
            gates = http.get("/v1/approvals").json()
            [gate] = [g for g in gates if g["request_id"] == str(request_id)]
            decision = {"decision": "approve"}
            decided = http.post(f"/v1/approvals/{gate['id']}/decision", json=decision)
            assert decided.status_code == 200, decided.text


def start(tmp: Path, url: URL, extra: dict[str, str] | None = None, *args: str) -> Served:
    """Migrate and seed ``url``, make the keys, start ``serve`` (``args`` go to it)."""
    env = {
        **os.environ,
        "DATABASE_URL": url.render_as_string(hide_password=False),
        "AUDIO_DIR": str(tmp / "audio"),
        "DELIVERY_DIR": str(tmp / "deliveries"),
        "POLL_SECONDS": "0.1",
        "LOG_FORMAT": "json",
        "PYTHONPATH": str(ROOT),
        "WEBHOOK_ALLOW_HTTP_LOOPBACK": "true",
        "WEBHOOK_POLL_SECONDS": "0.2",
        **(extra or {}),
    }
    run_cli([sys.executable, "-m", "app.cli", "db", "init"], env)
    run_cli([sys.executable, "scripts/seed_db.py", "--patients", "300"], env)

    async def make_clients() -> dict[str, NewClient]:
        database = Database.from_url(url)
        try:
            return {
                label: await create_client(database, f"client-{label}", role)
                for label, role in ROLES.items()
            }
        finally:
            await database.dispose()

    made = in_thread(make_clients())
    server = Server(env, free_port(), tmp / "serve.log", args=args)
    server.start().close()
    keys = {label: new.key for label, new in made.items()}
    return Served(server, env, keys, {label: new.webhook_secret for label, new in made.items()})


def stop(served: Served) -> None:
    """SIGTERM: exit 0 and no traceback in the log."""
    try:
        assert served.server.terminate() == 0, served.server.log.read_text()[-3000:]
    finally:
        served.server.kill()


@pytest.fixture(scope="module", params=BACKENDS)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """One server per backend for the module's tests."""
    tmp = tmp_path_factory.mktemp(f"client-{request.param}")
    pg: PostgresFactory | None = None
    if request.param == "postgresql":
        pg = request.getfixturevalue("postgres_factory")
        url = in_thread(pg.create())
    else:
        url = make_url(f"sqlite+aiosqlite:///{tmp / 'ledgerflow.db'}")
    started = start(tmp, url)
    try:
        yield started
    finally:
        stop(started)
        if pg is not None:
            in_thread(pg.drop(url))
