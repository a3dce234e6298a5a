"""``ledgerflow serve`` as a real process: submit over HTTP, approve, complete, SIGTERM → 0,
start again, and read the same request and a verifying audit trail back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.agents.research import sample_research_payloads
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


def test_serve_writes_signed_chained_checkpoints_that_verify_the_ledger(
    server: tuple[Server, dict[str, str]], tmp_path: Path
) -> None:
    proc, _ = server
    folder = tmp_path / "checkpoints"
    proc.env.update(CHECKPOINT_EVERY="0.5", CHECKPOINT_DIR=str(folder), AUDIT_HMAC_KEY="k-e2e")
    with proc.start():
        files = _wait_for(
            lambda: (
                (found := sorted(folder.glob("checkpoint-*.json"))) and len(found) >= 3 and found
            ),
            "three checkpoint files",
        )
    assert proc.terminate() == 0, proc.log.read_text()
    assert not list(folder.glob("*.tmp"))
    first, second = (json.loads(f.read_text()) for f in files[:2])
    assert (first["seq"], second["seq"]) == (1, 2)
    assert second["prev_digest"] == first["digest"] and first["signature"] and second["signature"]
    assert "all_heads" not in second  # a scheduled file holds what changed; the folder the rest

    keyed = {**proc.env}
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "audit", "verify", "--json", "--checkpoint", str(folder)],
        env=keyed, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["checkpoint"]["seq"] >= 3 and report["checkpoint"]["signed"]
    # A file deleted from the folder breaks its chain.
    files[1].unlink()
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "audit", "verify", "--json", "--checkpoint", str(folder)],
        env=keyed, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert "checkpoint_deleted" in {p["kind"] for p in json.loads(done.stdout)["problems"]}
