"""Engine throughput while unauthenticated calls flood the API, measured in the same run.

For each backend: a scratch database, ``ledgerflow serve --no-workers`` as a process (the
API), and the engine of :mod:`bench.engine` (3-step no-op workflow, one worker, in this
process). Phases alternate: **quiet** (the worker drains ``--requests`` requests) and
**flood** (the same while a separate process sends ``--rate`` unauthenticated
``GET /v1/requests`` per second over keep-alive connections, each answered 401 and recorded
as ``access_denied``). Reported: the engine's steps/s in each (medians), their ratio, the
flood rate achieved, and that every 401 answered has its ``access_denied`` row. The three
processes share this machine's cores with whatever else runs (the load average is
printed). Numbers are printed, never asserted on. Run::

    python -m bench.denials --backend both --rate 500 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from app.config import Settings
from app.database import Database
from app.database import schema as db_schema
from app.database.models import AuditLog
from app.orchestrator.engine import Orchestrator
from app.orchestrator.worker import Worker
from bench.baselines import Backend, scratch_database_async
from bench.engine import WORKFLOWS, _agents, _async_url

_ROOT = Path(__file__).resolve().parent.parent
_REQUEST = b"GET /v1/requests HTTP/1.1\r\nHost: bench\r\n\r\n"


# --------------------------------------------------------------------------- the flood


async def _connection(
    host: str, port: int, interval: float, deadline: float, codes: Counter[int]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    next_at = time.monotonic()
    try:
        while time.monotonic() < deadline:
            writer.write(_REQUEST)
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            codes[int(lines[0].split()[1])] += 1
            length = next(
                int(line.split(":", 1)[1])
                for line in lines
                if line.lower().startswith("content-length")
            )
            await reader.readexactly(length)
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
    finally:
        writer.close()


async def flood(
    host: str, port: int, rate: float, seconds: float, connections: int, codes: Counter[int]
) -> None:
    """Send ``rate`` requests/s for ``seconds`` over ``connections`` keep-alive connections,
    counting the answers' status codes in ``codes``."""
    deadline = time.monotonic() + seconds
    interval = connections / rate
    await asyncio.gather(
        *(_connection(host, port, interval, deadline, codes) for _ in range(connections)),
        return_exceptions=True,
    )


# --------------------------------------------------------------------------- the phases


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "LOG_LEVEL": "WARNING",
        "LOG_FORMAT": "json",
        "CHECKPOINT_EVERY": "0",
        "PYTHONPATH": str(_ROOT),
    }
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--no-workers", "--port", str(port)],
            env=env,
            cwd=_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"the API did not start: {log.read_text()[-2000:]}")


async def _engine_phase(database: Database, requests: int, concurrency: int) -> float:
    orchestrator = Orchestrator(database, WORKFLOWS)
    for start in range(0, requests, 200):
        batch = range(start, min(requests, start + 200))
        await asyncio.gather(*(orchestrator.submit("bench", {}, "bench") for _ in batch))
    settings = Settings(poll_seconds=0.01, log_level="WARNING", checkpoint_every=0)
    worker = Worker(orchestrator, _agents(), settings=settings, concurrency=concurrency)
    began = time.perf_counter()
    await worker.run(until_idle=True)
    return worker.steps_done / (time.perf_counter() - began)


async def _denied_rows(database: Database) -> int:
    async with database.read_session() as session:
        query = select(func.count()).where(AuditLog.event_type == "access_denied")
        return int((await session.execute(query)).scalar_one())


async def measure(
    backend: Backend, rate: float, requests: int, concurrency: int, rounds: int, folder: Path
) -> dict[str, Any]:
    """Alternate quiet and flood phases on one database; medians of each."""
    quiet: list[float] = []
    loud: list[float] = []
    floods: list[dict[str, Any]] = []
    async with scratch_database_async(backend, "denials") as url:
        async_url = _async_url(url)
        database = Database.from_url(async_url)
        port = _free_port()
        await db_schema.upgrade(database)
        api = _serve(async_url, port, folder / f"serve-{backend}.log")
        try:
            await _engine_phase(database, requests // 4, concurrency)  # warm-up
            for _ in range(rounds):
                quiet.append(await _engine_phase(database, requests, concurrency))
                flooder = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "bench.denials",
                        "--flood",
                        str(port),
                        "--rate",
                        str(rate),
                    ],
                    cwd=_ROOT,
                    stdout=subprocess.PIPE,
                    env={**os.environ, "PYTHONPATH": str(_ROOT)},
                )
                await asyncio.sleep(1.0)  # the flood is running before the engine starts
                loud.append(await _engine_phase(database, requests, concurrency))
                flooder.send_signal(signal.SIGINT)
                out, _ = flooder.communicate(timeout=60)
                floods.append(json.loads(out))
            await asyncio.sleep(1.0)
            recorded = await _denied_rows(database)
        finally:
            api.send_signal(signal.SIGTERM)
            api.wait(timeout=60)
            await database.dispose()
    answered = sum(f["codes"].get("401", 0) for f in floods)
    return {
        "backend": backend,
        "quiet": statistics.median(quiet),
        "flood": statistics.median(loud),
        "rate": statistics.median(f["rate"] for f in floods),
        "answered_401": answered,
        "other_codes": sum(n for f in floods for c, n in f["codes"].items() if c != "401"),
        "recorded": recorded,
        "runs": (quiet, loud),
    }


def _render(rows: list[dict[str, Any]], rate: float, console: Console) -> None:
    table = Table(title=f"engine steps/s while ~{rate:.0f} unauthenticated requests/s hit the API")
    for header in (
        "backend",
        "steps/s quiet",
        "steps/s flood",
        "flood ÷ quiet",
        "flood rate",
        "401s answered",
        "other answers",
        "access_denied rows",
    ):
        table.add_column(header, justify="right")
    for r in rows:
        table.add_row(
            r["backend"],
            f"{r['quiet']:,.0f}",
            f"{r['flood']:,.0f}",
            f"{r['flood'] / r['quiet']:.0%}",
            f"{r['rate']:,.0f}/s",
            f"{r['answered_401']:,}",
            f"{r['other_codes']:,}",
            f"{r['recorded']:,}",
        )
    console.print(table, width=200)
    for r in rows:
        quiet, loud = r["runs"]
        console.print(
            f"{r['backend']}: quiet {', '.join(f'{x:,.0f}' for x in quiet)}; "
            f"flood {', '.join(f'{x:,.0f}' for x in loud)}"
        )
    console.print(
        f"{os.cpu_count()} CPUs; load average (1/5/15 min) at the end: "
        + " / ".join(f"{x:.1f}" for x in os.getloadavg())
    )


async def _flood_until_interrupted(args: argparse.Namespace) -> dict[str, Any]:
    """The flood process: run until SIGINT, then report the answers' status codes."""
    codes: Counter[int] = Counter()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
    begun = time.monotonic()
    task = asyncio.create_task(
        flood("127.0.0.1", args.flood, args.rate, 3600, args.connections, codes)
    )
    await stop.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    sent = sum(codes.values())
    return {
        "codes": {str(k): v for k, v in codes.items()},
        "sent": sent,
        "rate": sent / (time.monotonic() - begun),
    }


def main(argv: list[str] | None = None) -> None:
    """Parse arguments; run the flood (``--flood PORT``) or the whole benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--rate", type=float, default=500.0, help="refused calls per second")
    parser.add_argument("--requests", type=int, default=1500, help="requests per phase")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2, help="quiet/flood pairs")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--flood", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.flood:
        sys.stdout.write(json.dumps(asyncio.run(_flood_until_interrupted(args))))
        return
    backends: list[Backend] = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    folder = Path(os.environ.get("TMPDIR", "/tmp"))
    rows = [
        asyncio.run(
            measure(backend, args.rate, args.requests, args.concurrency, args.rounds, folder)
        )
        for backend in backends
    ]
    _render(rows, args.rate, Console())


if __name__ == "__main__":
    main()
