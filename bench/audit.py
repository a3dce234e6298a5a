"""Audit trail at scale: trail and query latency, verify and export throughput, export memory.

For each backend, a scratch database (``bench_*``, dropped afterwards) is migrated and
loaded with ``--rows`` real, correctly chained audit rows (20 per request, one system-chain
access record per 50 rows, half the requests transcriptions with a patient), built once
with :mod:`tests.support.audit_rows`. Then:

* **trail** — ``AuditAccess.trail`` of a random request (read plus its access record),
  ``--samples`` times: p50/p99;
* **query page** — ``AuditAccess.query`` for 100 ``agent_failed`` events from a random
  point in time, and for 100 events of a random patient: p50/p99;
* **verify** — ``AuditAccess.verify()`` of every chain: rows/s;
* **export** — ``ledgerflow audit export --format jsonl`` as a real process: rows/s, and its
  peak RSS against the same command exporting one request (the growth is what streaming
  must keep flat).

Numbers are printed, never asserted on. Run::

    python -m bench.audit --rows 1000000 --backend sqlite,postgresql
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

from rich.console import Console
from rich.table import Table

from app.audit import AuditAccess, AuditFilter
from app.database import Database
from bench.baselines import Backend, prepare_database, scratch_database_async
from tests.support.audit_rows import Dataset, build_dataset, load_dataset, run_cli_measured

console = Console()


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered) * 1000, p99 * 1000


async def _timed(call: Callable[[], Awaitable[Any]], samples: int) -> tuple[float, float]:
    times = []
    for _ in range(samples):
        begun = time.perf_counter()
        await call()
        times.append(time.perf_counter() - begun)
    return _percentiles(times)


def _export_process(url: str, out: Path, *args: str) -> tuple[float, float]:
    """Run the CLI export; return seconds and its peak RSS in MB."""
    env = {**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "WARNING"}
    begun = time.perf_counter()
    code, peak_mb = run_cli_measured(
        ["audit", "export", "--format", "jsonl", "-o", str(out), *args], env, out.parent
    )
    if code:
        raise RuntimeError(f"export exited {code}")
    return time.perf_counter() - begun, peak_mb


async def bench_backend(
    backend: Backend, dataset: Dataset, samples: int, folder: Path
) -> dict[str, Any]:
    """Load ``dataset`` into a scratch database on ``backend`` and measure everything."""
    rng = random.Random(7)
    async with scratch_database_async(backend, "audit") as url:
        await prepare_database(url)
        database = Database.from_url(url)
        try:
            begun = time.perf_counter()
            info = await load_dataset(database, dataset)
            load_s = time.perf_counter() - begun
            access = AuditAccess(database, "bench")
            ids = info.request_ids
            span = (info.last - info.first).total_seconds()

            trail = await _timed(lambda: access.trail(rng.choice(ids)), samples)

            def failed_page() -> Awaitable[Any]:
                since = info.first + timedelta(seconds=rng.random() * span)
                return access.query(
                    AuditFilter(event_types=("agent_failed",), since=since), limit=100
                )

            query = await _timed(failed_page, samples)
            patient = await _timed(
                lambda: access.query(AuditFilter(patient_id=rng.choice(info.patients)), limit=100),
                samples,
            )

            begun = time.perf_counter()
            report = await access.verify()
            verify_s = time.perf_counter() - begun
            assert report.ok, report.problems[:5]
        finally:
            await database.dispose()
        export_s, export_mb = await asyncio.to_thread(
            _export_process, url, folder / f"{backend}.jsonl"
        )
        _, one_mb = await asyncio.to_thread(
            _export_process, url, folder / f"{backend}-one.jsonl", "--request-id", str(ids[0])
        )
    return {
        "backend": backend,
        "rows": report.rows,
        "load_s": load_s,
        "trail": trail,
        "query": query,
        "patient": patient,
        "verify_rps": report.rows / verify_s,
        "export_rps": info.rows / export_s,
        "export_mb": export_mb,
        "one_mb": one_mb,
    }


def _print(results: list[dict[str, Any]], samples: int) -> None:
    table = Table(title=f"audit trail at scale ({samples} samples per latency)")
    table.add_column("measure")
    for r in results:
        table.add_column(f"{r['backend']} ({r['rows']:,} rows)", justify="right")

    def row(label: str, render: Callable[[dict[str, Any]], str]) -> None:
        table.add_row(label, *(render(r) for r in results))

    row("load (bulk insert)", lambda r: f"{r['load_s']:.1f} s")
    row("trail of one request p50 / p99", lambda r: "{:.1f} / {:.1f} ms".format(*r["trail"]))
    row("query page: agent_failed since t", lambda r: "{:.1f} / {:.1f} ms".format(*r["query"]))
    row("query page: one patient", lambda r: "{:.1f} / {:.1f} ms".format(*r["patient"]))
    row("verify everything", lambda r: f"{r['verify_rps']:,.0f} rows/s")
    row("export jsonl (CLI process)", lambda r: f"{r['export_rps']:,.0f} rows/s")
    row(
        "export peak RSS: all / one request",
        lambda r: f"{r['export_mb']:.0f} / {r['one_mb']:.0f} MB",
    )
    console.print(table)


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, build the rows once, measure each backend, print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="audit rows to load")
    parser.add_argument("--backend", default="sqlite,postgresql", help="comma-separated")
    parser.add_argument("--samples", type=int, default=200, help="calls per latency")
    args = parser.parse_args(argv)
    backends = [cast(Backend, b.strip()) for b in args.backend.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        folder = Path(tmp)
        begun = time.perf_counter()
        dataset = build_dataset(folder / "rows.pickle", args.rows)
        console.print(
            f"built {dataset.info.rows:,} chained rows in {time.perf_counter() - begun:.1f} s"
        )
        results = [
            asyncio.run(bench_backend(backend, dataset, args.samples, folder))
            for backend in backends
        ]
    _print(results, args.samples)


if __name__ == "__main__":
    main()
