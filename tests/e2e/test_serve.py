"""``ledgerflow serve`` as a real process: submit over HTTP, approve, complete, SIGTERM → 0,
start again, and read the same request and a verifying audit trail back."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.agents.research import sample_research_payloads

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def _wait_for(check: Callable[[], Any], what: str, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class Server:
    """One ``ledgerflow serve`` process, always stopped by the end of the test."""

    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.env, self.port, self.log = env, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> httpx.Client:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "app.cli",
                    "serve",
                    "--port",
                    str(self.port),
                    "--concurrency",
                    "2",
                ],
                env=self.env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        base = f"http://127.0.0.1:{self.port}"

        def ready() -> bool:
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
            try:
                return httpx.get(f"{base}/readyz", timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        _wait_for(ready, "the server to be ready", timeout=60)
        return httpx.Client(base_url=base, timeout=10)

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        # A clean stop runs the app's lifespan shutdown: no cancelled task's traceback.
        assert "Traceback" not in self.log.read_text(), self.log.read_text()[-3000:]
        return code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Server, dict[str, str]]]:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'ledgerflow.db'}",
        "AUDIO_DIR": str(tmp_path / "audio"),
        "DELIVERY_DIR": str(tmp_path / "deliveries"),
        "POLL_SECONDS": "0.1",
        "LOG_FORMAT": "json",
        "PYTHONPATH": str(ROOT),
    }
    _run([sys.executable, "-m", "app.cli", "db", "init"], env)
    _run([sys.executable, "scripts/seed_db.py", "--patients", "300"], env)
    proc = Server(env, _free_port(), tmp_path / "serve.log")
    try:
        yield proc, env
    finally:
        proc.kill()


def test_serve_runs_a_request_to_completion_and_keeps_it_across_a_restart(
    server: tuple[Server, dict[str, str]],
) -> None:
    proc, env = server
    key = json.loads(
        _run(
            [
                sys.executable,
                "-m",
                "app.cli",
                "clients",
                "create",
                "e2e-admin",
                "--role",
                "admin",
                "--json",
            ],
            env,
        )
    )["key"]
    headers = {"Authorization": f"Bearer {key}"}
    payload = sample_research_payloads()["type2_diabetes_adults"]

    with proc.start() as client:
        created = client.post(
            "/v1/requests", json={"kind": "research", "payload": payload}, headers=headers
        )
        assert created.status_code == 201, created.text
        request_id = created.json()["id"]

        def state() -> str:
            return str(client.get(f"/v1/requests/{request_id}", headers=headers).json()["state"])

        _wait_for(lambda: state() == "awaiting_approval", "the approval gate")
        [gate] = client.get("/v1/approvals", headers=headers).json()
        decided = client.post(
            f"/v1/approvals/{gate['id']}/decision", json={"decision": "approve"}, headers=headers
        )
        assert decided.status_code == 200, decided.text
        _wait_for(lambda: state() in ("completed", "failed", "escalated"), "completion")
        assert state() == "completed", client.get(
            f"/v1/requests/{request_id}/history", headers=headers
        ).text
    assert proc.terminate() == 0, proc.log.read_text()

    with proc.start() as client:
        again = client.get(f"/v1/requests/{request_id}", headers=headers).json()
        assert again["state"] == "completed" and again["result"]
        trail = client.get(f"/v1/requests/{request_id}/audit-trail", headers=headers).json()
        events = [r["event_type"] for r in trail]
        assert events[0] == "request_submitted" and "request_completed" in events
        report = client.post(
            "/v1/audit/verify", json={"request_id": request_id}, headers=headers
        ).json()
        assert report["ok"] is True and report["rows"] == len(
            [r for r in trail if r["chain_key"] == request_id]
        )
        assert client.post("/v1/audit/verify", headers=headers).json()["ok"] is True
    assert proc.terminate() == 0, proc.log.read_text()
