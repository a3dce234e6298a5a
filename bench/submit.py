"""Submit throughput: the Python API, HTTP one at a time, HTTP in batches, and ``/healthz``.

For each run and backend, with ``--concurrency`` callers at a time and research payloads
(``sample_research_payloads``), each submit with its own idempotency key:

* **API**: ``Orchestrator.submit`` in this process, on a fresh scratch database;
* **HTTP single**: ``POST /v1/requests`` to a real ``ledgerflow serve --no-workers``
  process (its own fresh database), all through one ``httpx.AsyncClient``;
* **HTTP batch**: ``POST /v1/requests/batch`` (``--batch-size`` items per call) through the
  same client, rated in requests/s; ``n/a (endpoint missing)`` while the server answers
  404 or 405;
* **healthz**: ``GET /healthz`` through the same client, half before the single POSTs and
  half after: what this client and server do with no database work, the yardstick for
  HTTP single.

Each phase starts after a warm-up of ``--concurrency`` calls. Client and server share this
machine's cores (printed with the load average). Prints a table, then one JSON line per
backend with the keys of :data:`SUMMARY_KEYS` (medians over ``--runs``); never asserts on
time. Run::

    python -m bench.submit                                  # SQLite, concurrency 16, 3 runs
    python -m bench.submit --backend postgresql --runs 1 --requests 300
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from app.agents.research import sample_research_payloads
from app.auth.keys import create_client
from app.config import Settings
from app.database import Database
from app.orchestrator.catalog import default_workflows
from app.orchestrator.engine import Orchestrator
from bench.baselines import Backend, prepare_database, scratch_database_async
from bench.engine import _async_url

_ROOT = Path(__file__).resolve().parent.parent
_SUBMITTER = "bench-submitter"
#: What the table shows for the batch column while the server has no batch endpoint.
MISSING = "n/a (endpoint missing)"
#: The keys of the JSON line printed per backend, in order.
SUMMARY_KEYS = (
    "backend",
    "concurrency",
    "api_submits_s",
    "http_single_s",
    "http_batch_s",
    "healthz_s",
)


@dataclass
class Rates:
    """One run's rates on one backend (``http_batch_s`` is None when the endpoint is missing)."""

    api_submits_s: float
    http_single_s: float
    http_batch_s: float | None
    healthz_s: float


class _Keys:
    """Distinct idempotency keys and research payloads, round robin over the samples."""

    def __init__(self, label: str) -> None:
        self.label = f"bench-{label}-{os.getpid()}-{time.time_ns()}"
        self.payloads = list(sample_research_payloads().values())
        self.count = itertools.count()

    def item(self) -> dict[str, Any]:
        """The next request: kind, payload and a key never used before."""
        i = next(self.count)
        return {
            "kind": "research",
            "payload": self.payloads[i % len(self.payloads)],
            "idempotency_key": f"{self.label}-{i}",
        }


async def _drive(calls: int, concurrency: int, call: Callable[[], Awaitable[None]]) -> float:
    """Make ``calls`` calls, ``concurrency`` at a time; the wall time in seconds."""
    left = iter(range(calls))

    async def lane() -> None:
        for _ in left:  # one iterator shared by every lane: each call is made once
            await call()

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return time.perf_counter() - started


# --------------------------------------------------------------------------- Python API


async def api_rate(url: str, concurrency: int, submits: int) -> float:
    """Submits/s of ``Orchestrator.submit`` on the migrated database ``url``."""
    database = Database.from_url(_async_url(url))
    try:
        orchestrator = Orchestrator(
            database, default_workflows(), max_queued_requests=_queue_limit(submits)
        )
        keys = _Keys("api")

        async def submit() -> None:
            item = keys.item()
            await orchestrator.submit(
                item["kind"], item["payload"], _SUBMITTER, item["idempotency_key"]
            )

        await _drive(concurrency, concurrency, submit)
        return submits / await _drive(submits, concurrency, submit)
    finally:
        await database.dispose()


def _queue_limit(expected: int) -> int:
    # The production limit, raised only when a run would pass it: below the limit, what a
    # submit costs does not depend on it (the pending count stops at the backlog).
    return max(int(Settings.model_fields["max_queued_requests"].default), expected + 1000)


# --------------------------------------------------------------------------- HTTP


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def _serve(url: str, queue_limit: int, log: Path) -> AsyncIterator[str]:
    """``ledgerflow serve --no-workers`` on ``url``; yields its base URL once it is ready."""
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": _async_url(url),
        "LOG_FORMAT": "json",
        "CHECKPOINT_EVERY": "0",
        "MAX_QUEUED_REQUESTS": str(queue_limit),
        "PYTHONPATH": str(_ROOT),
    }
    command = [sys.executable, "-m", "app.cli", "serve", "--no-workers"]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        await _wait_ready(proc, base, log)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(proc.wait, 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _wait_ready(proc: subprocess.Popen[bytes], base: str, log: Path) -> None:
    deadline = time.monotonic() + 90
    async with httpx.AsyncClient(base_url=base, timeout=5) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"ledgerflow serve exited: {log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"ledgerflow serve was not ready in 90 s: {log.read_text()[-2000:]}")


def _expect(response: httpx.Response, *codes: int) -> None:
    if response.status_code not in codes:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: "
            f"{response.status_code} {response.text[:500]}"
        )


async def _batch_rate(
    client: httpx.AsyncClient, concurrency: int, requests: int, size: int
) -> float | None:
    """Requests/s submitted through ``POST /v1/requests/batch``; None if it is missing."""
    keys = _Keys("batch")
    probe = await client.post("/v1/requests/batch", json={"requests": [keys.item()]})
    if probe.status_code in (404, 405):
        return None
    _expect(probe, 200)

    async def post_batch() -> None:
        items = [keys.item() for _ in range(size)]
        response = await client.post("/v1/requests/batch", json={"requests": items})
        _expect(response, 200)
        if len(response.json()["items"]) != size:
            raise RuntimeError(f"a batch of {size} answered {len(response.json()['items'])}")

    calls = max(1, requests // size)
    await _drive(concurrency, concurrency, post_batch)
    return calls * size / await _drive(calls, concurrency, post_batch)


async def http_rates(
    url: str, concurrency: int, submits: int, batch_requests: int, batch_size: int, log: Path
) -> tuple[float, float | None, float]:
    """(single POSTs/s, batch requests/s or None, healthz/s) through one client."""
    database = Database.from_url(_async_url(url))
    try:
        key = (await create_client(database, _SUBMITTER, "submitter")).key
    finally:
        await database.dispose()
    total = submits + batch_requests + 2 * concurrency * (batch_size + 1)
    async with _serve(url, _queue_limit(total), log) as base:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(
            base_url=base,
            headers={"Authorization": f"Bearer {key}"},
            limits=limits,
            timeout=120,
        ) as client:

            async def healthz() -> None:
                _expect(await client.get("/healthz"), 200)

            keys = _Keys("single")

            async def post_single() -> None:
                item = keys.item()
                key = {"Idempotency-Key": item.pop("idempotency_key")}
                _expect(await client.post("/v1/requests", json=item, headers=key), 201)

            # Half the healthz calls before the single POSTs, half after: a server that
            # is still warming up, or a load that drifts, weighs on both rates alike.
            half = max(1, submits // 2)
            await _drive(concurrency, concurrency, healthz)
            healthz_seconds = await _drive(half, concurrency, healthz)
            await _drive(concurrency, concurrency, post_single)
            single_s = submits / await _drive(submits, concurrency, post_single)
            healthz_seconds += await _drive(half, concurrency, healthz)
            healthz_s = 2 * half / healthz_seconds
            batch_s = await _batch_rate(client, concurrency, batch_requests, batch_size)
    return single_s, batch_s, healthz_s


# --------------------------------------------------------------------------- one run


async def measure(
    backend: Backend,
    concurrency: int,
    submits: int,
    batch_requests: int,
    batch_size: int,
    log: Path,
) -> Rates:
    """One run on ``backend``: each phase on a fresh, migrated scratch database."""
    async with scratch_database_async(backend, "submit_api") as url:
        await prepare_database(url)
        api_s = await api_rate(url, concurrency, submits)
    async with scratch_database_async(backend, "submit_http") as url:
        await prepare_database(url)
        single_s, batch_s, healthz_s = await http_rates(
            url, concurrency, submits, batch_requests, batch_size, log
        )
    return Rates(api_s, single_s, batch_s, healthz_s)


def _median(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def _number(value: float | None, missing: str = "-") -> str:
    return f"{value:,.0f}" if value is not None else missing


def _render(rows: list[dict[str, Any]], console: Console, args: argparse.Namespace) -> None:
    table = Table(
        title=f"ledgerflow submits: research payloads, distinct idempotency keys "
        f"(median of {args.runs})"
    )
    for header in (
        "backend",
        "conc",
        "API submits/s",
        "HTTP single/s",
        "single ÷ healthz",
        f"HTTP batch requests/s ({args.batch_size}/call)",
        "healthz/s",
    ):
        table.add_column(header, justify="right")
    for r in rows:
        single, health = r["http_single_s"], r["healthz_s"]
        table.add_row(
            r["backend"],
            str(r["concurrency"]),
            _number(r["api_submits_s"]),
            _number(single),
            f"{single / health:.2f}" if single and health else "-",
            _number(r["http_batch_s"], MISSING),
            _number(health),
        )
    console.print(table)
    load = os.getloadavg()
    console.print(
        f"{os.cpu_count()} CPUs shared by client and server; load average {load[0]:.1f} "
        f"(1 min), {load[1]:.1f} (5 min) at the end; {args.requests} API submits, single "
        f"POSTs and healthz GETs per run, {args.batch_requests} requests in batches"
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments, measure, print the table and one JSON line per backend."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backend", choices=("sqlite", "postgresql", "postgres", "both"), default="sqlite"
    )
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3, help="medians over this many runs")
    parser.add_argument(
        "--requests", type=int, default=1500, help="API submits, single POSTs, healthz GETs"
    )
    parser.add_argument("--batch-requests", type=int, default=6400, help="requests in batches")
    parser.add_argument("--batch-size", type=int, default=100, help="items per batch call")
    args = parser.parse_args(argv)
    if not 1 <= args.batch_size <= 500:
        parser.error("--batch-size: 1 to 500 items")
    backends: list[Backend] = (
        ["sqlite", "postgresql"]
        if args.backend == "both"
        else ["postgresql"]
        if args.backend.startswith("postgres")
        else ["sqlite"]
    )
    log = Path(tempfile.mkdtemp(prefix="bench_submit_")) / "serve.log"
    rows = []
    for backend in backends:
        runs = [
            asdict(
                asyncio.run(
                    measure(
                        backend,
                        args.concurrency,
                        args.requests,
                        args.batch_requests,
                        args.batch_size,
                        log,
                    )
                )
            )
            for _ in range(args.runs)
        ]
        row: dict[str, Any] = {"backend": backend, "concurrency": args.concurrency}
        for key in ("api_submits_s", "http_single_s", "http_batch_s", "healthz_s"):
            row[key] = _median([run[key] for run in runs])
        rows.append(row)
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)  # a file or a pipe: no wrapping of the table
    _render(rows, console, args)
    console.print(f"server log: {log}")
    for row in rows:
        summary = {k: round(v, 1) if isinstance(v, float) else v for k, v in row.items()}
        print(json.dumps({k: summary[k] for k in SUMMARY_KEYS}), flush=True)


if __name__ == "__main__":
    main()
