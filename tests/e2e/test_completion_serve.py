"""Knowing when a request is done, against a real ``ledgerflow serve`` and its workers:
the event stream sees every state live and resumes, the long poll and ``requests wait``
agree, a webhook receiver gets each signed callback, and SIGTERM ends an open stream
cleanly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.agents.research import sample_research_payloads
from app.webhooks import verify_webhook
from tests.support.receiver import Receiver
from tests.support.serve import ROOT, Server, free_port
from tests.support.serve import run_cli as _run
from tests.support.serve import wait_for as _wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Server, dict[str, str]]]:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'ledgerflow.db'}",
        "AUDIO_DIR": str(tmp_path / "audio"),
        "DELIVERY_DIR": str(tmp_path / "deliveries"),
        "POLL_SECONDS": "0.1",
        "WATCH_POLL_SECONDS": "0.1",
        "SSE_HEARTBEAT_SECONDS": "1",
        "WEBHOOK_ALLOW_HTTP_LOOPBACK": "true",
        "WEBHOOK_POLL_SECONDS": "0.1",
        "LOG_FORMAT": "json",
        "PYTHONPATH": str(ROOT),
    }
    _run([sys.executable, "-m", "app.cli", "db", "init"], env)
    _run([sys.executable, "scripts/seed_db.py", "--patients", "300"], env)
    proc = Server(env, free_port(), tmp_path / "serve.log")
    try:
        yield proc, env
    finally:
        proc.kill()


def _made(env: dict[str, str], name: str, role: str) -> dict[str, str]:
    made = _run(
        [sys.executable, "-m", "app.cli", "clients", "create", name, "--role", role, "--json"], env
    )
    return dict(json.loads(made))


def _key(env: dict[str, str], name: str, role: str) -> str:
    return _made(env, name, role)["key"]


def _events(lines: Iterator[str], on_event: Any = None) -> list[tuple[int, dict[str, Any]]]:
    """Read a live ``text/event-stream`` until it closes; call ``on_event`` on each event."""
    events: list[tuple[int, dict[str, Any]]] = []
    fields: dict[str, str] = {}
    for line in lines:
        if not line:
            if "data" in fields:
                event = (int(fields["id"]), json.loads(fields["data"]))
                events.append(event)
                if on_event is not None:
                    on_event(event)
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value
    return events


def test_event_stream_follows_a_research_request_live_and_resumes(
    server: tuple[Server, dict[str, str]],
) -> None:
    proc, env = server
    made = _made(env, "svc-e2e", "submitter")
    submitter = {"Authorization": f"Bearer {made['key']}"}
    reviewer = {"Authorization": f"Bearer {_key(env, 'dr-e2e', 'reviewer')}"}
    payload = sample_research_payloads()["type2_diabetes_adults"]
    hooks = Receiver().start()

    with proc.start() as client:
        created = client.post(
            "/v1/requests",
            json={"kind": "research", "payload": payload, "callback_url": hooks.url},
            headers=submitter,
        )
        assert created.status_code == 201, created.text
        request_id = created.json()["id"]

        def approve_at_the_gate(event: tuple[int, dict[str, Any]]) -> None:
            if event[1]["state"] == "awaiting_approval":
                # The long poll answers at once: the request waits for a person.
                polled = client.get(
                    f"/v1/requests/{request_id}", params={"wait": 30}, headers=submitter
                )
                assert polled.json()["state"] == "awaiting_approval"
                [gate] = client.get("/v1/approvals", headers=reviewer).json()
                decided = client.post(
                    f"/v1/approvals/{gate['id']}/decision",
                    json={"decision": "approve"},
                    headers=reviewer,
                )
                assert decided.status_code == 200, decided.text

        timeout = httpx.Timeout(10, read=60)
        with client.stream(
            "GET", f"/v1/requests/{request_id}/events", headers=submitter, timeout=timeout
        ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = _events(response.iter_lines(), approve_at_the_gate)
        assert [n for n, _ in events] == list(range(1, len(events) + 1))
        states = [e["state"] for _, e in events]
        assert states == [
            "pending",
            "running",
            "awaiting_approval",
            "pending",
            "running",
            "completed",
        ], states
        history = client.get(f"/v1/requests/{request_id}/history", headers=submitter).json()
        assert [t["to_state"] for t in history["transitions"]] == states

        with client.stream(
            "GET",
            f"/v1/requests/{request_id}/events",
            headers={**submitter, "Last-Event-ID": "3"},
        ) as response:
            assert _events(response.iter_lines()) == events[3:]
        done = client.get(
            f"/v1/requests/{request_id}/events", headers={**submitter, "Last-Event-ID": "6"}
        )
        assert done.status_code == 204
        final = client.get(f"/v1/requests/{request_id}", params={"wait": 30}, headers=submitter)
        assert final.json()["state"] == "completed"
        # The workers sent a signed callback for the gate and one for the completion.
        _wait_for(lambda: len(hooks.received) >= 2, "two callbacks", timeout=30)
        hooks.stop()
        callbacks = [
            verify_webhook(made["webhook_secret"], r.headers, r.body) for r in hooks.received
        ]
        assert [(c["request_id"], c["state"]) for c in callbacks] == [
            (request_id, "awaiting_approval"),
            (request_id, "completed"),
        ]

    waited = subprocess.run(
        [sys.executable, "-m", "app.cli", "requests", "wait", request_id, "--timeout", "10"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert waited.returncode == 0, waited.stderr
    assert "completed" in waited.stdout
    assert proc.terminate() == 0, proc.log.read_text()


def test_sigterm_ends_an_open_event_stream_cleanly(
    server: tuple[Server, dict[str, str]],
) -> None:
    proc, env = server
    submitter = {"Authorization": f"Bearer {_key(env, 'svc-e2e', 'submitter')}"}
    payload = sample_research_payloads()["type2_diabetes_adults"]
    with proc.start() as client:
        # Nobody approves: the request stays at its gate, the stream stays open.
        request_id = client.post(
            "/v1/requests", json={"kind": "research", "payload": payload}, headers=submitter
        ).json()["id"]
        seen: list[tuple[int, dict[str, Any]]] = []
        gate, ended = threading.Event(), threading.Event()

        def on_event(event: tuple[int, dict[str, Any]]) -> None:
            seen.append(event)
            if event[1]["state"] == "awaiting_approval":
                gate.set()

        def follow() -> None:
            timeout = httpx.Timeout(10, read=60)
            with (
                httpx.Client(base_url=proc.base_url, timeout=timeout) as own,
                own.stream(
                    "GET", f"/v1/requests/{request_id}/events", headers=submitter
                ) as response,
            ):
                _events(response.iter_lines(), on_event)
            ended.set()

        threading.Thread(target=follow, daemon=True).start()
        assert gate.wait(60), "the stream never showed the gate"
        assert not ended.is_set()
        assert proc.terminate() == 0, proc.log.read_text()
        assert ended.wait(15), "the stream did not end at shutdown"
    assert [e["state"] for _, e in seen] == ["pending", "running", "awaiting_approval"]
