"""People steering requests over HTTP while three worker processes run them (PostgreSQL).

Cancels and approvals race the workers and each other on the same rows. Every writer takes
row locks in one order (request, then its gates) and a deadlock that still happens is
retried, so no call answers 5xx and every request ends.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy.engine import URL

from app.api import create_app, create_client
from app.bootstrap import Services, build_services
from app.config import Settings
from app.database import Database
from app.orchestrator.engine import Orchestrator
from app.orchestrator.states import TERMINAL
from tests.support.agents import engine_agents, engine_workflows
from tests.support.checks import assert_ledger_consistent, succeeded_per_step
from tests.support.serve import free_port

ROOT = Path(__file__).resolve().parents[2]
REQUESTS = 200

pytestmark = pytest.mark.slow


@pytest.fixture
def backend_is_postgres(backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("several worker processes share a PostgreSQL database")


@pytest.fixture
def worker_procs(database_url: URL) -> Iterator[list[subprocess.Popen[str]]]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url.render_as_string(hide_password=False),
        "LEASE_SECONDS": "5",
        "HEARTBEAT_SECONDS": "1",
        "POLL_SECONDS": "0.05",
        "WORKER_CONCURRENCY": "8",
        "GATE_AFTER": "first",
        "PYTHONPATH": str(ROOT),
    }
    procs = []
    for _ in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.worker_main"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert proc.stdout is not None and proc.stdout.readline().strip()
        procs.append(proc)
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture
async def api(database: Database, tmp_path: Path) -> AsyncIterator[tuple[Services, str]]:
    """The HTTP API on a real socket, over the engine test workflows."""
    settings = Settings(
        _env_file=None,
        database_url=database.url.render_as_string(hide_password=False),
        audio_dir=tmp_path / "audio",
        delivery_dir=tmp_path / "deliveries",
    )
    services = build_services(
        settings, database, workflows=engine_workflows(gate_after="first"), agents=engine_agents()
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(services),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            timeout_keep_alive=120,  # no idle close racing a reused connection
            ws="none",  # as `ledgerflow serve`
        )
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            serving.result()  # raises what stopped the server from starting
            pytest.fail("the API server exited before it started")
        await asyncio.sleep(0.05)
    yield services, f"http://127.0.0.1:{port}"
    server.should_exit = True
    await serving


async def test_cancels_and_approvals_racing_three_workers_never_answer_5xx(
    backend_is_postgres: None,
    worker_procs: list[subprocess.Popen[str]],
    api: tuple[Services, str],
) -> None:
    services, base = api
    orchestrator = services.orchestrator
    reviewer = (await create_client(services.database, "dr-review", "reviewer")).key
    submitter = "svc-steer"
    owner = (await create_client(services.database, submitter, "submitter")).key
    ids = []
    for i in range(REQUESTS):
        payload = {"numbers": [i], "sleep": {"first": 0.05, "second": 0.05}}
        ids.append((await orchestrator.submit("test", payload, submitter)).id)
    to_cancel = set(ids[::3])
    statuses: Counter[int] = Counter()
    rng = random.Random(7)

    async def call(client: httpx.AsyncClient, url: str, key: str, body: dict[str, str]) -> None:
        response = await client.post(url, json=body, headers={"Authorization": f"Bearer {key}"})
        statuses[response.status_code] += 1
        assert response.status_code < 500, response.text

    async def cancel_all(client: httpx.AsyncClient) -> None:
        for request_id in rng.sample(sorted(to_cancel, key=str), len(to_cancel)):
            await asyncio.sleep(rng.random() * 0.02)
            await call(client, f"{base}/v1/requests/{request_id}/cancel", owner, {"reason": "x"})

    async def approve_all(client: httpx.AsyncClient, deadline: float) -> None:
        headers = {"Authorization": f"Bearer {reviewer}"}
        while time.monotonic() < deadline:
            listed = await client.get(f"{base}/v1/approvals", headers=headers)
            statuses[listed.status_code] += 1
            assert listed.status_code == 200, listed.text
            pending = listed.json()
            if not pending and await _all_terminal(orchestrator, ids):
                return
            # Approve every pending gate, cancelled-to-be ones too: the races are the point.
            await asyncio.gather(
                *(
                    call(
                        client,
                        f"{base}/v1/approvals/{a['id']}/decision",
                        reviewer,
                        {"decision": "approve", "note": "ok"},
                    )
                    for a in pending
                )
            )
            await asyncio.sleep(0.05)

    deadline = time.monotonic() + 240
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        await asyncio.gather(cancel_all(client), approve_all(client, deadline))
    assert await _all_terminal(orchestrator, ids), "every request ends"
    assert not [s for s in statuses if s >= 500], statuses
    states = Counter([(await orchestrator.get(i)).state for i in ids])
    assert set(states) <= {"completed", "cancelled"} and states["cancelled"] >= 1
    assert set((await succeeded_per_step(services.database)).values()) == {1}
    await assert_ledger_consistent(services.database)


async def _all_terminal(orchestrator: Orchestrator, ids: list[uuid.UUID]) -> bool:
    page = await orchestrator.list(limit=500)
    return all(item.state in TERMINAL for item in page.items if item.id in set(ids))
