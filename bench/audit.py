"""Audit trail at scale: trail and query latency, verify and export throughput, memory.

For each backend, a scratch database (``bench_*``, dropped afterwards) is migrated and
loaded with ``--rows`` real, correctly chained audit rows (about 20 per request, with their
``state_transitions`` rows and matching request digests, one system-chain access record
per 50 rows, half the requests transcriptions with a patient), built once with
:mod:`tests.support.audit_rows`. Then:

* **baseline** — canonical JSON + SHA-256 of the same rows (``row_hash`` over rows already
  in memory as Python values, one core), and SHA-256 alone over their canonical bytes: the
  yardsticks verification is held to;
* **trail** — ``AuditAccess.trail`` of a random request (read plus its access record),
  ``--samples`` times: p50/p99;
* **query page** — ``AuditAccess.query`` for 100 ``agent_failed`` events from a random
  point in time, and for 100 events of a random patient: p50/p99;
* **verify** — ``ledgerflow audit verify`` of everything as a real process (chains,
  checkpoints, cross-checks; on PostgreSQL in parallel processes by default), and in one
  process (``AuditAccess.verify(workers=1)``): rows/s, and the process's peak RSS (and its
  largest worker's);
* **export** — ``ledgerflow audit export --format csv|jsonl`` as a real process: rows/s, and
  its peak RSS against the same command exporting one request.

Numbers are printed, never asserted on; the machine's load average is printed with them.
Run::

    python -m bench.audit --rows 1000000 --backend sqlite,postgresql
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
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
from app.audit.canonical import canonical_text, from_typed
from app.audit.chain import row_hash
from app.database import Database
from bench.baselines import Backend, prepare_database, scratch_database_async
from tests.support.audit_rows import (
    Dataset,
    build_dataset,
    iter_batches,
    load_dataset,
    run_cli_measured_all,
)

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


def _cli_process(url: str, folder: Path, *args: str) -> tuple[float, float, float]:
    """Run the CLI; return seconds, its peak RSS and its largest child's (MB)."""
    env = {**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "WARNING"}
    begun = time.perf_counter()
    code, peak_mb, child_mb = run_cli_measured_all(list(args), env, folder)
    if code:
        raise RuntimeError(f"ledgerflow {' '.join(args)} exited {code}")
    return time.perf_counter() - begun, peak_mb, child_mb


def baseline(dataset: Dataset, limit: int) -> tuple[float, float]:
    """(canonical JSON + SHA-256 rows/s, SHA-256 alone rows/s) over up to ``limit`` rows."""
    hashed = 0
    hashing = 0.0
    sha_only = 0.0
    for _, _, rows, _ in iter_batches(dataset.path):
        rows = rows[: limit - hashed]
        begun = time.perf_counter()
        for row in rows:
            row_hash(row)
        hashing += time.perf_counter() - begun
        sample = [from_typed(r) for r in rows[:2000]]
        blobs = [canonical_text(raw, raw[9]).encode() for raw in sample]
        begun = time.perf_counter()
        for blob in blobs:
            hashlib.sha256(blob).hexdigest()
        sha_only += (time.perf_counter() - begun) * len(rows) / max(1, len(blobs))
        hashed += len(rows)
        if hashed >= limit:
            break
    return hashed / hashing, hashed / sha_only


async def bench_backend(
    backend: Backend, dataset: Dataset, samples: int, folder: Path, fhir: bool
) -> dict[str, Any]:
    """Load ``dataset`` into a scratch database on ``backend`` and measure everything."""
    rng = random.Random(7)
    out: dict[str, Any] = {"backend": backend}
    async with scratch_database_async(backend, "audit") as url:
        await prepare_database(url)
        database = Database.from_url(url)
        try:
            begun = time.perf_counter()
            info = await load_dataset(database, dataset)
            out["load_s"] = time.perf_counter() - begun
            access = AuditAccess(database, "bench")
            await access.checkpoint()
            ids = info.request_ids
            span = (info.last - info.first).total_seconds()

            out["trail"] = await _timed(lambda: access.trail(rng.choice(ids)), samples)

            def failed_page() -> Awaitable[Any]:
                since = info.first + timedelta(seconds=rng.random() * span)
                return access.query(
                    AuditFilter(event_types=("agent_failed",), since=since), limit=100
                )

            out["query"] = await _timed(failed_page, samples)
            out["patient"] = await _timed(
                lambda: access.query(AuditFilter(patient_id=rng.choice(info.patients)), limit=100),
                samples,
            )
            begun = time.perf_counter()
            report = await access.verify(workers=1)
            out["verify_one_rps"] = report.rows / (time.perf_counter() - begun)
            assert report.ok, report.problems[:5]
            out["rows"] = report.rows
        finally:
            await database.dispose()
        seconds, peak, child = await asyncio.to_thread(
            _cli_process, url, folder, "audit", "verify", "--as", "bench"
        )
        out.update(verify_rps=out["rows"] / seconds, verify_mb=peak, verify_child_mb=child)
        for fmt in ("csv", "jsonl", *(("fhir-ndjson",) if fhir else ())):
            target = folder / f"{backend}.{fmt}"
            seconds, peak, _ = await asyncio.to_thread(
                _cli_process, url, folder, "audit", "export", "--format", fmt, "-o", str(target)
            )
            out[f"export_{fmt}_rps"] = info.rows / seconds
            out[f"export_{fmt}_mb"] = peak
        _, one_mb, _ = await asyncio.to_thread(
            _cli_process,
            url,
            folder,
            "audit",
            "export",
            "--format",
            "csv",
            "--request-id",
            str(ids[0]),
            "-o",
            str(folder / "one.csv"),
        )
        out["one_mb"] = one_mb
    return out


def _print(results: list[dict[str, Any]], samples: int, base: tuple[float, float]) -> None:
    table = Table(title=f"audit trail at scale ({samples} samples per latency)")
    table.add_column("measure")
    for r in results:
        table.add_column(f"{r['backend']} ({r['rows']:,} rows)", justify="right")

    def row(label: str, render: Callable[[dict[str, Any]], str]) -> None:
        table.add_row(label, *(render(r) for r in results))

    canonical, sha = base
    row("baseline: canonical JSON + SHA-256 (1 core)", lambda r: f"{canonical:,.0f} rows/s")
    row("baseline: SHA-256 of canonical bytes", lambda r: f"{sha:,.0f} rows/s")
    row("load (bulk insert)", lambda r: f"{r['load_s']:.1f} s")
    row("trail of one request p50 / p99", lambda r: "{:.1f} / {:.1f} ms".format(*r["trail"]))
    row("query page: agent_failed since t", lambda r: "{:.1f} / {:.1f} ms".format(*r["query"]))
    row("query page: one patient", lambda r: "{:.1f} / {:.1f} ms".format(*r["patient"]))
    row(
        "verify everything (CLI process)",
        lambda r: f"{r['verify_rps']:,.0f} rows/s ({r['verify_rps'] / canonical:.2f}x baseline)",
    )
    row("verify everything (one process)", lambda r: f"{r['verify_one_rps']:,.0f} rows/s")
    row(
        "verify peak RSS: process / largest worker",
        lambda r: f"{r['verify_mb']:.0f} / {r['verify_child_mb']:.0f} MB",
    )
    for fmt in ("csv", "jsonl", "fhir-ndjson"):
        if f"export_{fmt}_rps" in results[0]:
            table.add_row(
                f"export {fmt} (CLI process): rate, peak RSS",
                *(
                    f"{r[f'export_{fmt}_rps']:,.0f} rows/s, {r[f'export_{fmt}_mb']:.0f} MB"
                    for r in results
                ),
            )
    row("export peak RSS, one request", lambda r: f"{r['one_mb']:.0f} MB")
    console.print(table)
    console.print(
        f"{os.cpu_count()} CPUs; load average (1/5/15 min) at the end: "
        + " / ".join(f"{x:.1f}" for x in os.getloadavg())
    )


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, build the rows once, measure each backend, print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="audit rows to load")
    parser.add_argument("--backend", default="sqlite,postgresql", help="comma-separated")
    parser.add_argument("--samples", type=int, default=200, help="calls per latency")
    parser.add_argument("--fhir", action="store_true", help="also export FHIR (slow)")
    args = parser.parse_args(argv)
    backends = [cast(Backend, b.strip()) for b in args.backend.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        folder = Path(tmp)
        begun = time.perf_counter()
        dataset = build_dataset(folder / "rows.pickle", args.rows)
        console.print(
            f"built {dataset.info.rows:,} chained rows in {time.perf_counter() - begun:.1f} s; "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        base = baseline(dataset, args.rows)
        results = [
            asyncio.run(bench_backend(backend, dataset, args.samples, folder, args.fhir))
            for backend in backends
        ]
    _print(results, args.samples, base)


if __name__ == "__main__":
    main()
