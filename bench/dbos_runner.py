"""DBOS Transact baseline: a workflow of three no-op steps, run ``concurrency`` at a time.

DBOS keeps one global instance per process, so this runs as its own process and prints one
JSON line (the last line of stdout)::

    python -m bench.dbos_runner --url postgresql://postgres@127.0.0.1:5432/bench_dbos \\
        --concurrency 8 --workflows 300 --runs 3

``--url`` is DBOS's *system database* (``postgresql://...`` or ``sqlite:///file``); DBOS
creates a missing PostgreSQL database itself and migrates its ``dbos`` schema on launch.
Workflows are called directly from a pool of ``concurrency`` threads (a direct call runs
the workflow in the calling thread), so at most ``concurrency`` are in flight. One
warm-up batch runs first; each timed batch reports ``3 * workflows / wall time``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from typing import Any

from dbos import DBOS, DBOSConfig

#: Steps per workflow, used to turn workflows/s into steps/s.
STEPS_PER_WORKFLOW = 3


@DBOS.step()
def noop_step() -> None:
    """Do nothing: what is measured is DBOS recording the step's (empty) output."""


@DBOS.workflow()
def three_step_workflow() -> None:
    """The benchmark workflow: three checkpointed no-op steps."""
    noop_step()
    noop_step()
    noop_step()


def _run_batch(pool: ThreadPoolExecutor, workflows: int) -> float:
    """Run ``workflows`` workflows on ``pool`` and return the wall time in seconds."""
    started = time.perf_counter()
    for _ in pool.map(lambda _: three_step_workflow(), range(workflows)):
        pass
    return time.perf_counter() - started


def measure(url: str, concurrency: int, workflows: int, runs: int, warmup: int) -> dict[str, Any]:
    """Launch DBOS on ``url``, run a warm-up batch, then ``runs`` timed batches."""
    config: DBOSConfig = {
        "name": "ledgerflow-bench",
        "system_database_url": url,
        # Room for every benchmark thread plus DBOS's own background threads.
        "sys_db_pool_size": max(20, concurrency + 4),
        "log_level": "WARNING",
    }
    DBOS(config=config)
    DBOS.launch()
    try:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            _run_batch(pool, warmup)
            rates = [
                STEPS_PER_WORKFLOW * workflows / _run_batch(pool, workflows) for _ in range(runs)
            ]
    finally:
        DBOS.destroy()
    return {
        "dbos_version": version("dbos"),
        "backend": "sqlite" if url.startswith("sqlite") else "postgresql",
        "concurrency": concurrency,
        "workflows": workflows,
        "steps_per_second": rates,
        "median": statistics.median(rates),
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments, measure, print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--url", required=True, help="DBOS system database URL")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workflows", type=int, default=300, help="workflows per timed run")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=0, help="warm-up workflows (default 2x conc)")
    args = parser.parse_args(argv)
    warmup = args.warmup or max(20, 2 * args.concurrency)
    result = measure(args.url, args.concurrency, args.workflows, args.runs, warmup)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
