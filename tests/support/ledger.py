"""A realistic ledger to attack, and the superuser's way of switching its guards off.

:func:`build_ledger` runs real workflows through the engine: completions (some after a
retried failure), escalations resolved each way, a permanent failure, approvals approved
and rejected, cancels (pending and at a gate), requests left pending and at a gate, a
retention purge, legal holds placed and released, and checkpoints. :func:`guards_off`
gives a connection the way a database superuser would get one: on SQLite every
append-only trigger dropped and foreign keys off (the ``sqlite3`` shell's default); on
PostgreSQL ``session_replication_role = replica`` (user triggers and foreign-key checks
do not fire).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from app.audit import AuditAccess
from app.config import Settings
from app.database import Database
from app.database.models import Approval, Escalation, Request
from app.database.types import utcnow
from app.ops.retention import place_hold, purge, release_hold
from app.orchestrator.engine import Orchestrator
from app.orchestrator.worker import Worker
from tests.support.agents import engine_agents, engine_workflows

WORKER_SETTINGS = Settings(poll_seconds=0.02, lease_seconds=5, heartbeat_seconds=1)


@dataclass
class Ledger:
    """Requests by what happened to them."""

    completed: list[uuid.UUID] = field(default_factory=list)
    retried: uuid.UUID | None = None
    skipped: uuid.UUID | None = None
    escalation_failed: uuid.UUID | None = None
    permanent: uuid.UUID | None = None
    approved: uuid.UUID | None = None
    rejected: uuid.UUID | None = None
    cancelled_pending: uuid.UUID | None = None
    cancelled_at_gate: uuid.UUID | None = None
    pending: uuid.UUID | None = None
    awaiting: uuid.UUID | None = None
    purged: uuid.UUID | None = None
    held: uuid.UUID | None = None

    def ids(self) -> list[uuid.UUID]:
        """Every request id."""
        found = [*self.completed]
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, uuid.UUID):
                found.append(value)
        return found


async def _drive(orchestrator: Orchestrator, database: Database) -> None:
    for _ in range(200):
        worker = Worker(orchestrator, engine_agents(), settings=WORKER_SETTINGS, concurrency=8)
        await asyncio.wait_for(worker.run(until_idle=True), timeout=60)
        async with database.read_session() as session:
            active = (
                await session.execute(
                    select(Request.id).where(Request.state.in_(("pending", "running"))).limit(1)
                )
            ).first()
        if active is None:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("requests still active")


async def _gate(database: Database, model: Any, request_id: uuid.UUID) -> uuid.UUID:
    async with database.read_session() as session:
        return uuid.UUID(
            str(
                (
                    await session.execute(select(model.id).where(model.request_id == request_id))
                ).scalar_one()
            )
        )


async def build_ledger(database: Database, tmp_path: Path) -> Ledger:
    """Run every kind of request life through the real engine (see the module docstring)."""
    orchestrator = Orchestrator(database, engine_workflows(timeout=5.0))
    ledger = Ledger()

    async def submit(**payload: Any) -> uuid.UUID:
        view = await orchestrator.submit("test", {"numbers": [1, 2], **payload}, "svc-ledger")
        return view.id

    ledger.completed = [await submit() for _ in range(3)]
    ledger.retried = await submit(fail_times={"second": 1})
    ledger.skipped = await submit(review=["second"])
    ledger.escalation_failed = await submit(review=["first"])
    ledger.permanent = await submit(permanent=["third"])
    ledger.approved = await submit(soft_review=["first"])
    ledger.rejected = await submit(soft_review=["second"])
    ledger.cancelled_at_gate = await submit(soft_review=["first"])
    ledger.awaiting = await submit(soft_review=["third"])
    ledger.purged = await submit()
    ledger.held = await submit()
    await _drive(orchestrator, database)

    reviewer = "dr-review"
    await orchestrator.resolve_escalation(
        await _gate(database, Escalation, ledger.skipped), reviewer, "skip", "not needed"
    )
    await orchestrator.resolve_escalation(
        await _gate(database, Escalation, ledger.escalation_failed), reviewer, "fail"
    )
    await orchestrator.decide_approval(
        await _gate(database, Approval, ledger.approved), reviewer, "approve", "fine"
    )
    await orchestrator.decide_approval(
        await _gate(database, Approval, ledger.rejected), reviewer, "reject", "no"
    )
    await orchestrator.cancel(ledger.cancelled_at_gate, "svc-ledger", "changed my mind")
    await _drive(orchestrator, database)
    ledger.cancelled_pending = await submit()
    await orchestrator.cancel(ledger.cancelled_pending, "svc-ledger", "oops")
    ledger.pending = await submit()

    # A year later: retention purges one request's payload; a hold keeps another's.
    async with database.session() as session:
        await session.execute(
            update(Request)
            .where(Request.id.in_([ledger.purged, ledger.held]))
            .values(completed_at=utcnow() - timedelta(days=400))
        )
    await place_hold(database, ledger.completed[0], "matter 1", "legal:alice")
    await release_hold(database, ledger.completed[0], "legal:alice", "closed")
    await place_hold(database, ledger.held, "matter 2", "legal:alice")
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]  # pydantic-settings' documented init option
        audio_dir=tmp_path / "audio",
        delivery_dir=tmp_path / "deliveries",
        retention_payload_days=365,
        retention_audio_days=0,
        retention_delivery_days=0,
    )
    report = await purge(database, settings, actor="ops:bob")
    assert report.purged["payload"] == [ledger.purged], report.purged
    access = AuditAccess(database, "dr-audit")
    await access.checkpoint()
    await access.checkpoint()
    return ledger


# --------------------------------------------------------------------------- the superuser


@contextlib.asynccontextmanager
async def guards_off(database: Database) -> AsyncIterator[AsyncConnection]:
    """One transaction with every guard off, as a database superuser would have it."""
    if database.dialect == "sqlite":
        # A plain connection: none of ledgerflow's pragmas, so foreign keys are off.
        engine = create_async_engine(database.url)
        try:
            async with engine.begin() as connection:
                triggers = await connection.exec_driver_sql(
                    "SELECT name FROM sqlite_master WHERE type = 'trigger'"
                )
                for (name,) in triggers.all():
                    await connection.exec_driver_sql(f"DROP TRIGGER {name}")
                yield connection
        finally:
            await engine.dispose()
        return
    async with database.engine.begin() as connection:
        await connection.execute(text("SET LOCAL session_replication_role = replica"))
        yield connection


def run_verify(
    env: dict[str, str], *args: str, timeout: float = 180
) -> tuple[int, dict[str, Any], str]:
    """``ledgerflow audit verify --json ARGS`` as a process: (exit code, report, stderr)."""
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "audit", "verify", "--as", "dba-test", "--json", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
    )
    assert "Traceback" not in result.stderr, result.stderr
    report = __import__("json").loads(result.stdout) if result.stdout.strip() else {}
    return result.returncode, report, result.stderr


def found(report: dict[str, Any], kinds: Sequence[str] | None = None) -> list[tuple[str, ...]]:
    """``(kind, chain_key, table, row_id, column)`` of each problem (of ``kinds``)."""
    return [
        (p["kind"], p["chain_key"], p["table"], p["row_id"], p["column"])
        for p in report.get("problems", [])
        if kinds is None or p["kind"] in kinds
    ]
