"""End-to-end engine throughput beside the database's raw commit rate and DBOS, in one run.

For each backend and worker concurrency: submit N requests of a 3-step workflow of no-op
agents, run one in-process worker until all complete, and report requests/s and steps/s.
In the same run: the raw driver's commit rate for one step's transaction shape
(1 UPDATE + 2 INSERTs, :mod:`bench.baselines`), on SQLite also raw sqlite3 committing 32 such
steps per transaction (the ceiling group commit can approach), and DBOS Transact running
the same 3-step no-op workflow (on by default; ``--no-dbos`` skips it). Prints a table
with the ratios; never asserts on time. Run::

    python -m bench.engine                        # both backends, concurrency 1, 8, 32
    python -m bench.engine --backend sqlite --requests 2000 --no-dbos
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from app.agents.base import Agent, AgentContext
from app.agents.registry import AgentRegistry
from app.config import Settings
from app.database import Database
from app.database import schema as db_schema
from app.orchestrator.engine import Orchestrator
from app.orchestrator.worker import Worker
from app.orchestrator.workflows import Step, Workflow, WorkflowRegistry
from bench.baselines import (
    BATCH,
    Backend,
    dbos_steps_per_second,
    raw_commit_rate_async,
    scratch_database_async,
)


class NoopInput(BaseModel):
    """Nothing is read."""


class NoopOutput(BaseModel):
    """Nothing is produced."""


class NoopAgent(Agent[NoopInput, NoopOutput]):
    """Returns at once: the benchmark measures the engine, not agents."""

    input_model = NoopInput
    output_model = NoopOutput

    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id  # type: ignore[misc]

    async def run(self, context: AgentContext, input: NoopInput) -> NoopOutput:
        return NoopOutput()


STEPS = ("one", "two", "three")
WORKFLOWS = WorkflowRegistry(
    [Workflow(kind="bench", steps=tuple(Step(s, f"bench.{s}") for s in STEPS))]
)


def _agents() -> AgentRegistry:
    return AgentRegistry(NoopAgent(f"bench.{s}") for s in STEPS)


async def engine_rate(url: str, concurrency: int, requests: int) -> tuple[float, float, float]:
    """(requests/s, steps/s, mean steps per commit) for one fresh database."""
    database = Database.from_url(url)
    try:
        await db_schema.upgrade(database)
        orchestrator = Orchestrator(database, WORKFLOWS)
        for start in range(0, requests, 200):
            batch = range(start, min(requests, start + 200))
            await asyncio.gather(*(orchestrator.submit("bench", {}, "bench") for _ in batch))
        settings = Settings(poll_seconds=0.01, log_level="WARNING")
        worker = Worker(orchestrator, _agents(), settings=settings, concurrency=concurrency)
        began = time.perf_counter()
        await worker.run(until_idle=True)
        elapsed = time.perf_counter() - began
        done = (await orchestrator.list(state="completed", limit=1)).items
        assert done, "no request completed"
        per_commit = worker.committer.changes / max(1, worker.committer.batches)
        return requests / elapsed, worker.steps_done / elapsed, per_commit
    finally:
        await database.dispose()


async def measure(
    backend: Backend, concurrencies: Sequence[int], requests: int, seconds: float, dbos: bool
) -> list[dict[str, Any]]:
    """One row per concurrency: ledgerflow, raw commit rate and DBOS on ``backend``."""
    rows = []
    for concurrency in concurrencies:
        count = requests if concurrency > 1 else max(100, requests // 5)
        async with scratch_database_async(backend, "engine") as url:
            req_s, steps_s, per_commit = await engine_rate(_async_url(url), concurrency, count)
        async with scratch_database_async(backend, "raw") as url:
            raw = await raw_commit_rate_async(backend, url, concurrency, seconds)
        raw_batch = None
        if backend == "sqlite":
            # SQLite's ceiling for group commit: raw sqlite3, 32 steps per transaction.
            async with scratch_database_async(backend, "rawbatch") as url:
                raw_batch = await raw_commit_rate_async(
                    backend, url, concurrency, seconds, shape="batch"
                )
        dbos_rate = None
        if dbos:
            async with scratch_database_async(backend, "dbos") as url:
                dbos_url = (
                    url if backend == "postgresql" else url.replace(".sqlite", "-dbos.sqlite")
                )
                dbos_rate = await asyncio.to_thread(
                    dbos_steps_per_second, dbos_url, concurrency, 200
                )
        rows.append(
            {
                "backend": backend,
                "concurrency": concurrency,
                "requests": count,
                "req_s": req_s,
                "steps_s": steps_s,
                "per_commit": per_commit,
                "raw_tx_s": raw,
                "raw_batch_steps_s": raw_batch,
                "dbos_steps_s": dbos_rate,
            }
        )
    return rows


def _async_url(url: str) -> str:
    if url.startswith("sqlite:"):
        return url.replace("sqlite:", "sqlite+aiosqlite:", 1)
    return url.replace("postgresql:", "postgresql+asyncpg:", 1)


def _render(rows: list[dict[str, Any]], console: Console) -> None:
    table = Table(title="ledgerflow engine: 3-step no-op workflow, one worker process")
    for header in (
        "backend",
        "conc",
        "requests",
        "req/s",
        "steps/s",
        "steps/commit",
        "raw tx/s (1U+2I)",
        "steps/s ÷ raw",
        f"raw steps/s ({BATCH}/tx)",
        "DBOS steps/s",
        "÷ DBOS",
    ):
        table.add_column(header, justify="right")
    for r in rows:
        dbos = r["dbos_steps_s"]
        batch = r["raw_batch_steps_s"]
        table.add_row(
            r["backend"],
            str(r["concurrency"]),
            str(r["requests"]),
            f"{r['req_s']:,.0f}",
            f"{r['steps_s']:,.0f}",
            f"{r['per_commit']:.1f}",
            f"{r['raw_tx_s']:,.0f}",
            f"{r['steps_s'] / r['raw_tx_s']:.0%}",
            f"{batch:,.0f}" if batch else "-",
            f"{dbos:,.0f}" if dbos else "-",
            f"{r['steps_s'] / dbos:.1f}x" if dbos else "-",
        )
    console.print(table, width=200)
    load = os.getloadavg()[0]
    console.print(f"{os.cpu_count()} CPUs; 1-minute load average {load:.1f} at the end")


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments, measure, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--seconds", type=float, default=4.0, help="raw baseline duration")
    parser.add_argument("--no-dbos", action="store_true")
    parser.add_argument("--runs", type=int, default=1, help="medians over this many runs")
    args = parser.parse_args(argv)
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    backends: list[Backend] = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    rows = []
    for backend in backends:
        runs = [
            asyncio.run(
                measure(backend, concurrencies, args.requests, args.seconds, not args.no_dbos)
            )
            for _ in range(args.runs)
        ]
        for i in range(len(concurrencies)):
            merged = dict(runs[0][i])
            for key in (
                "req_s",
                "steps_s",
                "per_commit",
                "raw_tx_s",
                "raw_batch_steps_s",
                "dbos_steps_s",
            ):
                values = [run[i][key] for run in runs if run[i][key] is not None]
                merged[key] = statistics.median(values) if values else None
            rows.append(merged)
    _render(rows, Console())


if __name__ == "__main__":
    main()
