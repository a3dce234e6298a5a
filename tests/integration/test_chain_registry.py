"""The chain registry: a request erased whole, a finished chain cut back, a forged request —
each named by plain ``audit verify`` without any checkpoint; the registry itself guarded."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from sqlalchemy import delete, select, text, update

from app.audit import AuditAccess
from app.audit.chain import ChainHead
from app.audit.events import RequestSubmitted, StateChanged
from app.audit.registry import REGISTRY_CHAINS
from app.database import Database
from app.database import schema as db_schema
from app.database.models import (
    AgentExecution,
    Approval,
    AuditChain,
    AuditLog,
    Escalation,
    Request,
    StateTransition,
)
from app.database.types import utcnow
from app.orchestrator.engine import Orchestrator
from tests.support.agents import engine_workflows
from tests.support.audit_rows import run_engine_requests
from tests.support.ledger import Ledger, build_ledger, found, guards_off, run_verify


async def _erase(database: Database, request_id: uuid.UUID) -> None:
    """Delete a request and everything that names it, as a superuser could."""
    async with guards_off(database) as connection:
        for model in (AgentExecution, Approval, Escalation, StateTransition):
            await connection.execute(delete(model).where(model.request_id == request_id))
        await connection.execute(delete(AuditLog).where(AuditLog.request_id == request_id))
        await connection.execute(delete(Request).where(Request.id == request_id))


@pytest.mark.parametrize("which", ["completed", "awaiting"])
async def test_a_whole_request_erased_is_named(
    database: Database,
    subprocess_env: dict[str, str],
    tmp_path: Path,
    which: str,
) -> None:
    ledger: Ledger = await build_ledger(database, tmp_path)
    victim = ledger.completed[1] if which == "completed" else ledger.awaiting
    assert victim is not None
    await _erase(database, victim)
    code, report, _ = run_verify(subprocess_env)
    assert code == 1
    kinds = {(p[0], p[1], p[2]) for p in found(report)}
    assert ("chain_missing", str(victim), "audit_logs") in kinds
    assert ("request_missing", str(victim), "requests") in kinds
    assert {p[1] for p in found(report)} == {str(victim)}


async def test_a_finished_chain_cut_back_is_caught_without_a_checkpoint(
    database: Database, subprocess_env: dict[str, str]
) -> None:
    victim, untouched = await run_engine_requests(database, 2)
    async with database.read_session() as session:
        rows = list(
            (
                await session.execute(
                    select(AuditLog)
                    .where(AuditLog.chain_key == str(victim))
                    .order_by(AuditLog.seq.desc())
                )
            ).scalars()
        )
    async with guards_off(database) as connection:
        await connection.execute(delete(AuditLog).where(AuditLog.id.in_([r.id for r in rows[:2]])))
        await connection.execute(
            update(Request)
            .where(Request.id == victim)
            .values(audit_seq=rows[2].seq, audit_head=rows[2].hash, state="running")
        )
    code, report, _ = run_verify(subprocess_env)
    assert code == 1
    assert report["checkpoint"] is None  # no checkpoint was ever taken
    problems = {(p["kind"], p["chain_key"]) for p in report["problems"]}
    assert ("deleted", str(victim)) in problems
    cut = next(p for p in report["problems"] if p["kind"] == "deleted")
    assert f"the terminal head the chain registry recorded (seq {rows[0].seq})" in cut["detail"]
    assert ("registry_mismatch", str(victim)) in problems  # ended 'completed', now 'running'
    assert str(untouched) not in {p["chain_key"] for p in report["problems"]}


async def test_a_request_the_registry_never_recorded_is_unregistered(
    database: Database, subprocess_env: dict[str, str]
) -> None:
    await run_engine_requests(database, 1)
    forged, now = uuid.uuid4(), utcnow()
    head = ChainHead(str(forged))
    rows = [
        head.append(
            RequestSubmitted(kind="test", priority=0, payload_digest="0" * 64),
            actor="svc",
            occurred_at=now,
            request_id=forged,
        ),
        head.append(
            StateChanged(from_state=None, to_state="pending", reason="submitted"),
            actor="svc",
            occurred_at=now,
            request_id=forged,
        ),
    ]
    async with guards_off(database) as connection:
        await connection.execute(
            Request.__table__.insert().values(
                id=forged,
                kind="test",
                state="pending",
                step_index=0,
                attempt=1,
                max_attempt=1,
                priority=0,
                submitted_by="svc",
                payload_digest="0" * 64,
                payload={},
                not_before=now,
                version=0,
                audit_seq=head.seq,
                audit_head=head.hash,
                created_at=now,
                updated_at=now,
            )
        )
        await connection.execute(AuditLog.__table__.insert(), [dict(r) for r in rows])
    code, report, _ = run_verify(subprocess_env)
    assert code == 1
    assert ("unregistered", str(forged), "requests") in {p[:3] for p in found(report)}


async def test_a_registry_row_cut_with_its_head_rewound_is_caught_by_the_checkpoint(
    database: Database, subprocess_env: dict[str, str]
) -> None:
    await run_engine_requests(database, 3)
    await AuditAccess(database, "dr-audit").checkpoint()
    async with database.read_session() as session:
        shard, seq, _ = (
            await session.execute(
                select(AuditChain.chain_key, AuditChain.seq, AuditChain.head_hash)
                .where(AuditChain.chain_key.in_(REGISTRY_CHAINS), AuditChain.seq > 1)
                .limit(1)
            )
        ).one()
        before = (
            await session.execute(
                select(AuditLog.hash).where(AuditLog.chain_key == shard, AuditLog.seq == seq - 1)
            )
        ).scalar_one()
    async with guards_off(database) as connection:
        await connection.execute(
            delete(AuditLog).where(AuditLog.chain_key == shard, AuditLog.seq == seq)
        )
        await connection.execute(
            update(AuditChain)
            .where(AuditChain.chain_key == shard)
            .values(seq=seq - 1, head_hash=before)
        )
    code, report, _ = run_verify(subprocess_env)
    assert code == 1
    assert ("deleted", shard) in {(p["kind"], p["chain_key"]) for p in report["problems"]}


async def test_the_migration_registers_every_existing_request(
    database: Database, subprocess_env: dict[str, str]
) -> None:
    ids = await run_engine_requests(database, 4)
    await db_schema.downgrade(database, "0009")
    async with database.read_session() as session:
        left = await session.execute(
            select(AuditLog.id).where(AuditLog.chain_key.like("registry-%"))
        )
        assert left.first() is None
    await db_schema.upgrade(database)
    code, report, _ = run_verify(subprocess_env)
    assert code == 0, report["problems"]
    async with database.read_session() as session:
        data = (
            await session.execute(
                select(AuditLog.event_data).where(AuditLog.chain_key == REGISTRY_CHAINS[0])
            )
        ).scalars()
        opened = {rid for entry in data for rid in entry["opened"]}
    assert {str(i) for i in ids} <= opened


async def test_concurrent_commits_do_not_wait_for_a_locked_registry_head(
    database: Database,
) -> None:
    if database.dialect != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite has one writer by design")
    orchestrator = Orchestrator(database, engine_workflows())
    async with database.engine.connect() as holder:
        await holder.execute(text("BEGIN"))
        await holder.execute(
            select(AuditChain.seq)
            .where(AuditChain.chain_key == REGISTRY_CHAINS[0])
            .with_for_update()
        )
        views = await asyncio.wait_for(
            asyncio.gather(*(orchestrator.submit("test", {}, "svc") for _ in range(4))),
            timeout=10,
        )
        await holder.execute(text("ROLLBACK"))
    async with database.read_session() as session:
        shards = set(
            (
                await session.execute(
                    select(AuditLog.chain_key).where(AuditLog.event_type == "chains_registered")
                )
            ).scalars()
        )
    assert REGISTRY_CHAINS[0] not in shards and shards <= set(REGISTRY_CHAINS[1:])
    assert len(views) == 4
