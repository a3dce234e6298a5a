"""Many real, correctly chained audit rows, fast: for export-memory tests and bench/audit.py.

Rows are built with :class:`app.audit.chain.ChainHead` exactly as the engine builds them
(typed events, real hashes), their requests carry the matching heads, a share of them are
transcriptions with a ``recordings`` row naming a patient, and a share of the events are
on the system chain. Everything goes in with bulk Core INSERTs in large batches; nothing is
disabled (the append-only triggers only refuse UPDATE and DELETE).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import pickle
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.chain import SYSTEM_CHAIN, ChainHead, chain_key_for, digest
from app.audit.events import (
    AgentFailed,
    AgentRetryScheduled,
    AgentStarted,
    AgentSucceeded,
    AuditAccessed,
    AuditEvent,
    ChainsRegistered,
    RegisteredEnd,
    RequestCompleted,
    RequestSubmitted,
    StateChanged,
)
from app.audit.records import COLUMNS
from app.audit.registry import REGISTRY_CHAINS
from app.config import Settings
from app.database import Database, bulk
from app.database.models import AuditChain, Recording, Request, StateTransition
from app.database.types import canonical_json_text
from app.orchestrator.engine import Orchestrator
from app.orchestrator.worker import Worker
from tests.support.agents import engine_agents, engine_workflows

REQUESTS: Table = Request.__table__  # type: ignore[assignment]
TRANSITIONS: Table = StateTransition.__table__  # type: ignore[assignment]
RECORDINGS: Table = Recording.__table__  # type: ignore[assignment]

START = datetime(2026, 1, 1, tzinfo=UTC)
AGENTS = ("research.requirements", "research.feasibility", "transcription.transcribe")
ACTORS = ("svc-research", "svc-clinic", "dr-reviewer")


@dataclass
class Generated:
    """What was inserted: row counts and ids to query for."""

    rows: int = 0
    request_ids: list[uuid.UUID] = field(default_factory=list)
    patients: list[str] = field(default_factory=list)
    system_rows: int = 0
    first: datetime = START
    last: datetime = START


def _output(step: str) -> dict[str, Any]:
    return {"step": step, "total": len(step)}


def _life(per_request: int) -> list[tuple[AuditEvent, str | None]]:
    """A consistent request life of ``per_request`` events (at least 5), agent ids attached.

    Submitted, pending, running; then per step one failed attempt, a retry (running →
    pending → running) and a success; finally completed with the digest of every output.
    Every ``state_changed`` gets its ``state_transitions`` row when loaded.
    """
    life: list[tuple[AuditEvent, str | None]] = [
        (RequestSubmitted(kind="transcription", priority=0, payload_digest=digest({})), None),
        (StateChanged(from_state=None, to_state="pending", reason="submitted"), None),
        (StateChanged(from_state="pending", to_state="running", step="requirements"), None),
    ]
    result: dict[str, Any] = {}
    for step_index in itertools.count():
        agent = AGENTS[step_index % len(AGENTS)]
        name = f"{agent.split('.')[1]}{step_index}"
        cycle: list[tuple[AuditEvent, str | None]] = [
            (
                AgentStarted(step=name, attempt=1, input_digest=digest(step_index), worker_id="w1"),
                agent,
            ),
            (
                AgentFailed(
                    step=name,
                    attempt=1,
                    error_type="RetryableError",
                    error="transient",
                    retryable=True,
                    duration_ms=12,
                ),
                agent,
            ),
            (
                AgentRetryScheduled(
                    step=name,
                    next_attempt=2,
                    not_before=START + timedelta(seconds=step_index),
                    delay_seconds=0.5,
                ),
                agent,
            ),
            (
                StateChanged(from_state="running", to_state="pending", step=name, reason="retry"),
                None,
            ),
            (StateChanged(from_state="pending", to_state="running", step=name), None),
            (
                AgentStarted(step=name, attempt=2, input_digest=digest(step_index), worker_id="w1"),
                agent,
            ),
            (
                AgentSucceeded(
                    step=name, attempt=2, output_digest=digest(_output(name)), duration_ms=40
                ),
                agent,
            ),
        ]
        if len(life) + len(cycle) + 2 > per_request:
            break
        life += cycle
        result[name] = _output(name)
    while len(life) + 2 < per_request:
        life.append(
            (AgentStarted(step="extra", attempt=1, input_digest=digest(0), worker_id="w1"), None)
        )
    life += [
        (StateChanged(from_state="running", to_state="completed", reason="all steps done"), None),
        (RequestCompleted(steps=len(result), result_digest=digest(result)), None),
    ]
    return life


def life_result(life: list[tuple[AuditEvent, str | None]]) -> dict[str, Any]:
    """The ``requests.result`` a life's successes leave."""
    return {e.step: _output(e.step) for e, _ in life if isinstance(e, AgentSucceeded)}


_AUDIT_COLUMNS = COLUMNS


async def _insert_audit_rows(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """One bulk INSERT of chained rows, straight through the driver.

    SQLAlchemy's per-value bind processing costs more than hashing the rows, so the values
    are converted here exactly as the column types would store them: on SQLite, UUIDs as 32
    hex digits, UTC timestamps as ``YYYY-MM-DD HH:MM:SS.ffffff`` and JSON as text (one
    ``executemany``); on PostgreSQL, native values through COPY.
    """
    connection = await session.connection()
    if connection.dialect.name == "sqlite":
        # Random UUID keys touch pages all over eight indexes: a bigger page cache than
        # SQLite's 2 MB default halves the load time.
        await connection.exec_driver_sql("PRAGMA cache_size = -262144")
        marks = ", ".join("?" for _ in _AUDIT_COLUMNS)
        sql = f"INSERT INTO audit_logs ({', '.join(_AUDIT_COLUMNS)}) VALUES ({marks})"
        values = [
            (
                r["id"].hex,
                r["chain_key"],
                r["seq"],
                r["request_id"].hex if r["request_id"] else None,
                r["event_type"],
                r["severity"],
                r["actor"],
                r["agent_id"],
                r["occurred_at"].astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),
                canonical_json_text(r["event_data"]),
                r["prev_hash"],
                r["hash"],
            )
            for r in rows
        ]
        await connection.exec_driver_sql(sql, values)
        return
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    records = [
        tuple(json.dumps(r[c]) if c == "event_data" else r[c] for c in _AUDIT_COLUMNS) for r in rows
    ]
    await driver.copy_records_to_table("audit_logs", records=records, columns=_AUDIT_COLUMNS)


Batch = tuple[
    list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]
]


@dataclass
class Dataset:
    """Generated rows kept in a file (pickled batches) so that loading them costs no hashing."""

    path: Path
    info: Generated
    system_head: tuple[int, str]
    #: The head of ``registry-0``, where every generated request is registered.
    registry_head: tuple[int, str] = (0, "")


def build_dataset(
    path: Path,
    rows: int,
    *,
    per_request: int = 20,
    system_every: int = 50,
    patients: int = 100,
    batch: int = 20_000,
) -> Dataset:
    """Build about ``rows`` audit rows into ``path``: chains of ``per_request`` rows, plus one
    system-chain ``audit_accessed`` row per ``system_every`` rows, for a fresh database."""
    out = Generated()
    system = ChainHead(SYSTEM_CHAIN)
    registry = ChainHead(REGISTRY_CHAINS[0])
    clock = itertools.count()
    pending: list[dict[str, Any]] = []
    requests: list[dict[str, Any]] = []
    recordings: list[dict[str, Any]] = []
    transitions: list[dict[str, Any]] = []
    # Events are frozen models: build one request's life once and reuse it for every chain.
    life = _life(per_request)
    result = life_result(life)
    with path.open("wb") as handle:

        def flush() -> None:
            if requests:  # one registry entry per batch, as the write path makes them
                entry = ChainsRegistered(
                    opened=[str(r["id"]) for r in requests],
                    closed=[
                        RegisteredEnd(
                            request_id=str(r["id"]),
                            seq=r["audit_seq"],
                            hash=r["audit_head"],
                            state=r["state"],
                        )
                        for r in requests
                    ],
                )
                pending.append(dict(registry.append(entry, actor="bench", occurred_at=out.last)))
                out.rows += 1
            batch_rows = (list(requests), list(recordings), list(pending), list(transitions))
            pickle.dump(batch_rows, handle)
            for kept in (pending, requests, recordings, transitions):
                kept.clear()

        for r in range(max(1, rows // per_request)):
            rid = uuid.uuid4()
            head = ChainHead(chain_key_for(rid))
            actor = ACTORS[r % len(ACTORS)]
            created = START + timedelta(milliseconds=next(clock))
            for event, agent in life:
                moment = START + timedelta(milliseconds=next(clock))
                pending.append(
                    dict(
                        head.append(
                            event, actor=actor, occurred_at=moment, request_id=rid, agent_id=agent
                        )
                    )
                )
                if isinstance(event, StateChanged):
                    transitions.append(
                        {
                            "id": uuid.uuid4(),
                            "request_id": rid,
                            "from_state": event.from_state,
                            "to_state": event.to_state,
                            "step": event.step,
                            "actor": actor,
                            "reason": event.reason,
                            "created_at": moment,
                        }
                    )
                out.rows += 1
                if out.rows % system_every == 0:
                    access = AuditAccessed(action="query", filters={"n": out.rows}, row_count=10)
                    pending.append(
                        dict(system.append(access, actor="dr-audit", occurred_at=moment))
                    )
                    out.rows += 1
                    out.system_rows += 1
                out.last = moment
            transcription = r % 2 == 0
            requests.append(
                {
                    "id": rid,
                    "kind": "transcription" if transcription else "research",
                    "state": "completed",
                    "priority": 0,
                    "submitted_by": actor,
                    "payload_digest": digest({}),
                    "payload": {},
                    "result": result,
                    "audit_seq": head.seq,
                    "audit_head": head.hash,
                    "created_at": created,
                    "updated_at": out.last,
                    "completed_at": out.last,
                }
            )
            if transcription:
                patient = f"P{(r // 2) % patients:05d}"
                recordings.append(
                    {
                        "id": uuid.uuid4(),
                        "request_id": rid,
                        "patient_id": patient,
                        "clinician_id": "C001",
                        "audio_file_path": f"/audio/{rid}.wav",
                        "audio_file_size": 1024,
                        "uploaded_at": created,
                    }
                )
                if len(out.patients) < patients and patient not in out.patients:
                    out.patients.append(patient)
            out.request_ids.append(rid)
            if len(pending) >= batch:
                flush()
        flush()
    return Dataset(path, out, (system.seq, system.hash), (registry.seq, registry.hash))


def iter_batches(path: Path) -> Iterator[Batch]:
    """The pickled batches of a dataset file, in order."""
    with path.open("rb") as handle:
        while True:
            try:
                yield pickle.load(handle)
            except EOFError:
                return


async def load_dataset(database: Database, dataset: Dataset) -> Generated:
    """Insert a dataset into a fresh migrated database (its system chain must be empty)."""
    for requests, recordings, audit_rows, transitions in iter_batches(dataset.path):
        async with database.session() as session:
            if requests:
                await session.execute(insert(REQUESTS), requests)
            if recordings:
                await session.execute(insert(RECORDINGS), recordings)
            if audit_rows:
                await _insert_audit_rows(session, audit_rows)
            if transitions:
                connection = await session.connection()
                statement = bulk.insert_statement(
                    connection.dialect.name, TRANSITIONS, tuple(transitions[0])
                )
                await bulk.executemany(connection, statement, transitions)
    async with database.session() as session:
        for key, (seq, head) in (
            (SYSTEM_CHAIN, dataset.system_head),
            (REGISTRY_CHAINS[0], dataset.registry_head),
        ):
            updated = await session.execute(
                update(AuditChain)
                .where(AuditChain.chain_key == key, AuditChain.seq == 0)
                .values(seq=seq, head_hash=head, updated_at=dataset.info.last)
            )
            assert updated.rowcount == 1, "load_dataset needs a fresh database"  # type: ignore[attr-defined]
    return dataset.info


async def insert_audit_rows(
    database: Database, rows: int, folder: Path, **options: Any
) -> Generated:
    """Build and load ``rows`` audit rows into a fresh database in one call."""
    dataset = build_dataset(folder / f"audit-rows-{uuid.uuid4().hex[:8]}.pickle", rows, **options)
    return await load_dataset(database, dataset)


# --------------------------------------------------------------------------- engine rows

ENGINE_SETTINGS = Settings(poll_seconds=0.02, lease_seconds=5, heartbeat_seconds=1)


async def run_engine_requests(
    database: Database,
    count: int,
    *,
    kind: str = "test",
    concurrency: int = 8,
    payloads: Sequence[dict[str, Any]] = (),
) -> list[uuid.UUID]:
    """Submit ``count`` requests and drive them to the end through the real engine.

    ``payloads[i]`` (when given) adds instructions to request ``i`` (e.g. ``fail_times``),
    so its chain holds failures and retries. Returns the ids in submission order.
    """
    orchestrator = Orchestrator(database, engine_workflows(timeout=5.0))
    ids = []
    for i in range(count):
        extra = payloads[i] if i < len(payloads) else {}
        view = await orchestrator.submit(kind, {"numbers": [i, 1], **extra}, f"svc-{i % 3}")
        ids.append(view.id)
    for _ in range(100):
        worker = Worker(
            orchestrator, engine_agents(), settings=ENGINE_SETTINGS, concurrency=concurrency
        )
        await asyncio.wait_for(worker.run(until_idle=True), timeout=60)
        async with database.read_session() as session:
            active = (
                await session.execute(
                    select(func.count()).where(Request.state.in_(("pending", "running")))
                )
            ).scalar_one()
        if not active:
            return ids
        await asyncio.sleep(0.05)  # a retry is waiting out its backoff
    raise AssertionError("requests still active after 100 worker passes")


# --------------------------------------------------------------------------- peak memory

#: Runs the CLI, then records the process's own peak RSS. ``VmHWM`` belongs to the address
#: space exec() created, so unlike ``ru_maxrss`` it does not inherit the parent's size.
_MEASURED_CLI = """
import os, resource, sys
from app.cli import main
try:
    main(sys.argv[1:])
finally:
    with open("/proc/self/status") as status:
        peak = next(line for line in status if line.startswith("VmHWM:")).split()[1]
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    with open(os.environ["LEDGERFLOW_PEAK_FILE"], "w") as out:
        out.write(f"{peak} {children}")
"""


def run_cli_measured(args: Sequence[str], env: dict[str, str], folder: Path) -> tuple[int, float]:
    """Run ``ledgerflow ARGS`` in a process; return its exit code and peak RSS in MB."""
    code, peak, _ = run_cli_measured_all(args, env, folder)
    return code, peak


def run_cli_measured_all(
    args: Sequence[str], env: dict[str, str], folder: Path
) -> tuple[int, float, float]:
    """Like :func:`run_cli_measured`, also returning the largest child process's peak RSS
    (MB; 0 when it started none), e.g. parallel verification's workers."""
    peak_file = folder / f"peak-{uuid.uuid4().hex[:8]}"
    result = subprocess.run(
        [sys.executable, "-c", _MEASURED_CLI, *args],
        env={**env, "LEDGERFLOW_PEAK_FILE": str(peak_file)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=1200,
    )
    peak_kb, children_kb = (int(v) for v in peak_file.read_text().split())
    peak_file.unlink()
    return result.returncode, peak_kb / 1024, children_kb / 1024
