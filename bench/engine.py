"""End-to-end engine throughput beside its exact-row replay, the raw driver and DBOS, in one run.

For each backend and worker concurrency: submit N requests of a 3-step workflow of no-op
agents, run one in-process worker until all complete, and report requests/s and steps/s.
In the same run, beside it:

* **the exact-row replay** (:mod:`bench.replay`): every row the run wrote, read back from
  its own database, written again into a fresh database of the same schema (indexes,
  triggers) by the bare driver (sqlite3 with the engine's pragmas / asyncpg), in as many
  transactions as the engine committed, with one fenced UPDATE per request version. That
  is the ceiling: the engine's writes with none of its work around them;
* the raw driver's commit rate for one step's transaction shape (1 UPDATE + 2 INSERTs,
  :mod:`bench.baselines`), one step per transaction;
* DBOS Transact running the same 3-step no-op workflow (``--no-dbos`` skips it).

Prints a table with each ratio, then one JSON line per backend and concurrency with the
keys of :data:`SUMMARY_KEYS` (medians over ``--runs``); never asserts on time. Run::

    python -m bench.engine --concurrency 32 --runs 3      # both backends
    python -m bench.engine --backend sqlite --requests 2000 --no-dbos
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
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
from bench import replay
from bench.baselines import (
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


@dataclass
class EngineRun:
    """One engine run: its rates and, to replay it, the database before and after."""

    req_s: float
    steps_s: float
    steps: int
    #: Steps per group commit (the committer's own counters).
    per_commit: float
    #: Transactions that wrote rows during the run (group commits, claims, heartbeats).
    write_commits: int
    before: replay.Rows | None = None
    after: replay.Rows | None = None


async def engine_run(
    backend: Backend, url: str, concurrency: int, requests: int, *, capture: bool = True
) -> EngineRun:
    """Submit ``requests``, run one worker until all complete, time the worker only.

    ``url`` is a plain scratch URL. With ``capture``, every table is read before the worker
    starts and after it stops (outside the timed part), for :mod:`bench.replay`.
    """
    database = Database.from_url(_async_url(url))
    try:
        await db_schema.upgrade(database)
        orchestrator = Orchestrator(database, WORKFLOWS)
        for start in range(0, requests, 200):
            batch = range(start, min(requests, start + 200))
            await asyncio.gather(*(orchestrator.submit("bench", {}, "bench") for _ in batch))
        before = await replay.read_rows(backend, url) if capture else None
        settings = Settings(poll_seconds=0.01, log_level="WARNING")
        worker = Worker(orchestrator, _agents(), settings=settings, concurrency=concurrency)
        with replay.WriteCommits(database.engine) as commits:
            began = time.perf_counter()
            await worker.run(until_idle=True)
            elapsed = time.perf_counter() - began
        done = (await orchestrator.list(state="completed", limit=1)).items
        assert done, "no request completed"
        after = await replay.read_rows(backend, url) if capture else None
        batches = worker.committer.batches
        return EngineRun(
            req_s=requests / elapsed,
            steps_s=worker.steps_done / elapsed,
            steps=worker.steps_done,
            per_commit=worker.committer.changes / max(1, batches),
            # Should the committer ever write past SQLAlchemy's events, count its batches.
            write_commits=max(commits.count, batches),
            before=before,
            after=after,
        )
    finally:
        await database.dispose()


async def replay_rate(backend: Backend, run: EngineRun) -> tuple[float, float, tuple[str, ...]]:
    """(steps/s, rows per transaction, tables that differ) of the exact-row replay of ``run``."""
    assert run.before is not None and run.after is not None
    plan = replay.make_plan(run.before, run.after, run.write_commits)
    replayed = await replay.replay(backend, plan)
    return (
        run.steps / replayed.seconds,
        replayed.rows / max(1, replayed.transactions),
        replayed.differs,
    )


async def measure(
    backend: Backend,
    concurrencies: Sequence[int],
    requests: int,
    seconds: float,
    dbos: bool,
    *,
    exact_replay: bool = True,
) -> list[dict[str, Any]]:
    """One row per concurrency: ledgerflow, its exact-row replay, raw commit rate and DBOS."""
    rows = []
    for concurrency in concurrencies:
        count = requests if concurrency > 1 else max(100, requests // 5)
        async with scratch_database_async(backend, "engine") as url:
            run = await engine_run(backend, url, concurrency, count, capture=exact_replay)
        replay_steps_s = rows_per_tx = None
        if exact_replay:
            replay_steps_s, rows_per_tx, differs = await replay_rate(backend, run)
            if differs:
                print(f"warning: the replay of {backend} differs in {', '.join(differs)}")
        async with scratch_database_async(backend, "raw") as url:
            raw = await raw_commit_rate_async(backend, url, concurrency, seconds)
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
                "req_s": run.req_s,
                "steps_s": run.steps_s,
                "per_commit": run.per_commit,
                "rows_per_tx": rows_per_tx,
                "raw_tx_s": raw,
                "replay_steps_s": replay_steps_s,
                "dbos_steps_s": dbos_rate,
            }
        )
    return rows


def _async_url(url: str) -> str:
    if url.startswith("sqlite:"):
        return url.replace("sqlite:", "sqlite+aiosqlite:", 1)
    return url.replace("postgresql:", "postgresql+asyncpg:", 1)


def _ratio(value: float | None, base: float | None, fmt: str) -> str:
    return format(value / base, fmt) if value and base else "-"


def _number(value: float | None, fmt: str = ",.0f") -> str:
    return format(value, fmt) if value is not None else "-"


def _render(rows: list[dict[str, Any]], console: Console, runs: int) -> None:
    table = Table(
        title=f"ledgerflow engine: 3-step no-op workflow, one worker process (median of {runs})"
    )
    for header in (
        "backend",
        "conc",
        "requests",
        "req/s",
        "steps/s",
        "steps/commit",
        "replay rows/tx",
        "replay steps/s",
        "÷ replay",
        "raw tx/s (1U+2I)",
        "÷ raw",
        "DBOS steps/s",
        "÷ DBOS",
    ):
        table.add_column(header, justify="right")
    for r in rows:
        table.add_row(
            r["backend"],
            str(r["concurrency"]),
            str(r["requests"]),
            _number(r["req_s"]),
            _number(r["steps_s"]),
            _number(r["per_commit"], ".1f"),
            _number(r["rows_per_tx"], ".1f"),
            _number(r["replay_steps_s"]),
            _ratio(r["steps_s"], r["replay_steps_s"], ".2f"),
            _number(r["raw_tx_s"]),
            _ratio(r["steps_s"], r["raw_tx_s"], ".2f"),
            _number(r["dbos_steps_s"]),
            _ratio(r["steps_s"], r["dbos_steps_s"], ".1f"),
        )
    console.print(table)
    load = os.getloadavg()
    console.print(
        f"{os.cpu_count()} CPUs; load average {load[0]:.1f} (1 min), {load[1]:.1f} (5 min) "
        "at the end; ÷ columns are ledgerflow's steps/s over the other's rate"
    )


#: The keys of the JSON line printed per backend and concurrency, in order.
SUMMARY_KEYS = ("backend", "concurrency", "steps_s", "dbos_steps_s", "raw_tx_s", "replay_steps_s")


def summary_line(row: dict[str, Any]) -> str:
    """One machine-readable JSON line of a result row (rates rounded to 0.1)."""
    return json.dumps(
        {k: round(row[k], 1) if isinstance(row[k], float) else row[k] for k in SUMMARY_KEYS}
    )


_MEDIANS = (
    "req_s",
    "steps_s",
    "per_commit",
    "rows_per_tx",
    "raw_tx_s",
    "replay_steps_s",
    "dbos_steps_s",
)


def _medians(runs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    rows = []
    for i in range(len(runs[0])):
        merged = dict(runs[0][i])
        for key in _MEDIANS:
            values = [run[i][key] for run in runs if run[i][key] is not None]
            merged[key] = statistics.median(values) if values else None
        rows.append(merged)
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments, measure, print the table and one JSON line per backend and level."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--seconds", type=float, default=4.0, help="raw baseline duration")
    parser.add_argument("--no-dbos", action="store_true")
    parser.add_argument("--no-replay", action="store_true", help="skip the exact-row replay")
    parser.add_argument("--runs", type=int, default=1, help="medians over this many runs")
    args = parser.parse_args(argv)
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    backends: list[Backend] = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    rows = []
    for backend in backends:
        runs = [
            asyncio.run(
                measure(
                    backend,
                    concurrencies,
                    args.requests,
                    args.seconds,
                    not args.no_dbos,
                    exact_replay=not args.no_replay,
                )
            )
            for _ in range(args.runs)
        ]
        rows.extend(_medians(runs))
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)  # a file or a pipe: no wrapping of the wide table
    _render(rows, console, args.runs)
    for row in rows:
        print(summary_line(row), flush=True)


if __name__ == "__main__":
    main()
