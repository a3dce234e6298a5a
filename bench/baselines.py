"""Baselines the engine's throughput is compared against, measured in the same run.

* :func:`raw_commit_rate` — transactions/s of the raw driver for one engine step's writes:
  ``UPDATE requests`` (guarded by ``version``, as the engine's transition is) plus one
  ``INSERT agent_executions`` and one ``INSERT audit_logs`` (a real hash chain), in one
  transaction; or, with ``shape="insert"``, one ``INSERT audit_logs`` that is its own
  transaction, for reference. PostgreSQL: asyncpg, a pool of ``concurrency`` connections,
  ``concurrency`` tasks each driving its own request row. SQLite: stdlib ``sqlite3`` with
  the pragmas ledgerflow's engine sets (WAL, ``synchronous=NORMAL``, ``busy_timeout``,
  ``foreign_keys=ON``) and ``BEGIN IMMEDIATE``, in one writer thread: SQLite has one writer
  at a time, so ``concurrency`` is ignored there.
* :func:`dbos_steps_per_second` — steps/s of DBOS Transact running a workflow of three
  no-op steps, ``concurrency`` at a time, in a subprocess (:mod:`bench.dbos_runner`).

The raw baselines write the real ledgerflow schema (migrated with
``app.database.schema.upgrade``, rows built from ``app.database.models`` so they read back
through the ORM); DBOS gets its own system database. Both live in scratch databases named
``bench_*`` that :func:`scratch_database` creates and drops. Numbers are printed, never
asserted on. Run::

    python -m bench.baselines --backend postgresql --concurrency 1,8,32 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal

import asyncpg  # type: ignore[import-untyped]  # asyncpg publishes no type stubs
from rich.console import Console
from rich.table import Table
from sqlalchemy import Table as SqlTable
from sqlalchemy.engine import URL, make_url
from sqlalchemy.sql.schema import CallableColumnDefault, ScalarElementColumnDefault

from app.database import Database
from app.database import schema as db_schema
from app.database.models import AgentExecution, AuditLog, Request

Backend = Literal["postgresql", "sqlite"]
#: ``step``: 1 UPDATE + 2 INSERTs in one transaction; ``insert``: 1 INSERT, autocommitted;
#: ``batch``: :data:`BATCH` steps of the ``step`` shape (on as many rows) per transaction,
#: each statement run once per step with executemany, the way a group commit writes (SQLite).
Shape = Literal["step", "insert", "batch"]
#: Steps per transaction of the ``batch`` shape: the engine benchmark's top concurrency.
BATCH = 32

#: Any database on the server; used to CREATE and DROP the scratch databases.
DEFAULT_SERVER_URL = os.environ.get(
    "LEDGERFLOW_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
_REPO_ROOT = Path(__file__).resolve().parent.parent
_STEP = "bench_step"
_AGENT = "bench_agent"
_WORKER = "bench-worker"

# --------------------------------------------------------------------------- scratch databases


def _asyncpg_dsn(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _backend_of(url: URL) -> Backend:
    if url.drivername.startswith("postgres"):
        return "postgresql"
    if url.drivername.startswith("sqlite"):
        return "sqlite"
    raise ValueError(f"unsupported database URL {url!r}: use postgresql:// or sqlite:///")


async def _admin_execute(server_url: str, sql: str) -> None:
    conn = await asyncpg.connect(_asyncpg_dsn(make_url(server_url)))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def create_scratch_database(
    backend: Backend, label: str = "baselines", server_url: str = DEFAULT_SERVER_URL
) -> str:
    """Create an empty scratch database and return its plain URL.

    PostgreSQL: ``bench_<label>_<pid>_<random>`` on the server of ``server_url``. SQLite: a
    file in a fresh temporary folder.
    """
    suffix = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"
    if backend == "sqlite":
        folder = tempfile.mkdtemp(prefix=f"bench_{label}_{suffix}_")
        return f"sqlite:///{folder}/{label}.sqlite"
    name = f"bench_{label}_{suffix}"
    await _admin_execute(server_url, f'CREATE DATABASE "{name}"')
    return (
        make_url(server_url)
        .set(drivername="postgresql", database=name)
        .render_as_string(hide_password=False)
    )


async def drop_scratch_database(url: str, server_url: str = DEFAULT_SERVER_URL) -> None:
    """Drop a database made by :func:`create_scratch_database` (``WITH (FORCE)``)."""
    parsed = make_url(url)
    if _backend_of(parsed) == "sqlite":
        assert parsed.database is not None
        folder = Path(parsed.database).parent
        for file in folder.glob("*"):
            file.unlink()
        folder.rmdir()
        return
    name = parsed.database
    if not name or not name.startswith("bench_"):
        raise ValueError(f"refusing to drop {name!r}: scratch databases start with bench_")
    await _admin_execute(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.asynccontextmanager
async def scratch_database_async(
    backend: Backend, label: str = "baselines", server_url: str = DEFAULT_SERVER_URL
) -> AsyncIterator[str]:
    """An empty scratch database for the ``async with`` block, dropped afterwards."""
    url = await create_scratch_database(backend, label, server_url)
    try:
        yield url
    finally:
        await drop_scratch_database(url, server_url)


@contextlib.contextmanager
def scratch_database(
    backend: Backend, label: str = "baselines", server_url: str = DEFAULT_SERVER_URL
) -> Iterator[str]:
    """An empty scratch database for the ``with`` block, dropped afterwards (not in a loop)."""
    url = asyncio.run(create_scratch_database(backend, label, server_url))
    try:
        yield url
    finally:
        asyncio.run(drop_scratch_database(url, server_url))


async def prepare_database(url: str) -> None:
    """Bring ``url`` to the head migration (a no-op when it is there already)."""
    database = Database.from_url(url)
    try:
        await db_schema.upgrade(database)
    finally:
        await database.dispose()


# --------------------------------------------------------------------------- rows


def _constant(value: Any) -> Any:
    return value


class _Rows:
    """Full rows of one table in column order, with the model's defaults for unnamed columns.

    Built from ``app.database.models`` so a column added there (with a default, or nullable)
    does not break the benchmark; a new required column without a default fails loudly.
    """

    def __init__(self, table: SqlTable) -> None:
        self.table = table.name
        self.columns = tuple(column.name for column in table.columns)
        self._fill: dict[str, Callable[[], Any]] = {}
        for column in table.columns:
            default = column.default
            if isinstance(default, CallableColumnDefault):
                # Model defaults ignore their execution context, so None stands in for it.
                self._fill[column.name] = partial(default.arg, None)  # type: ignore[arg-type]
            elif isinstance(default, ScalarElementColumnDefault):
                self._fill[column.name] = partial(_constant, default.arg)
            elif column.nullable:
                self._fill[column.name] = lambda: None
            else:
                self._fill[column.name] = partial(self._missing, column.name)

    def _missing(self, name: str) -> Any:
        raise ValueError(f"{self.table}.{name} is required and has no default: set it in bench")

    def values(self, given: dict[str, Any], *, sqlite: bool = False) -> list[Any]:
        """The row's values in column order; JSON-typed values must already be strings.

        Defaults are converted for SQLite when ``sqlite``; ``given`` values are used as is.
        """
        return [
            given[name] if name in given else self._default(name, sqlite) for name in self.columns
        ]

    def _default(self, name: str, sqlite: bool) -> Any:
        value = self._fill[name]()
        return _sqlite_value(value) if sqlite else value

    def insert_sql(self, placeholder: Callable[[int], str]) -> str:
        """``INSERT`` of one full row, with ``placeholder(i)`` for the i-th (1-based) value."""
        marks = ", ".join(placeholder(i) for i in range(1, len(self.columns) + 1))
        return f"INSERT INTO {self.table} ({', '.join(self.columns)}) VALUES ({marks})"


# Declarative __table__ is typed as FromClause; it is a Table.
_REQUESTS = _Rows(Request.__table__)  # type: ignore[arg-type]
_EXECUTIONS = _Rows(AgentExecution.__table__)  # type: ignore[arg-type]
_AUDIT_LOGS = _Rows(AuditLog.__table__)  # type: ignore[arg-type]


def _chain_hash(prev_hash: str, seq: int, event_data: str) -> str:
    return hashlib.sha256(f"{prev_hash}|{seq}|{event_data}".encode()).hexdigest()


def _request_values(request_id: uuid.UUID, now: datetime) -> list[Any]:
    """A valid ``requests`` row, as it is while a worker holds its lease."""
    payload = json.dumps({"benchmark": True, "request": str(request_id)})
    return _REQUESTS.values(
        {
            "id": request_id,
            "kind": "research",
            "state": "running",
            "current_step": _STEP,
            "submitted_by": "bench",
            "payload_digest": hashlib.sha256(payload.encode()).hexdigest(),
            "payload": payload,
            "lease_owner": _WORKER,
            "lease_expires_at": now + timedelta(hours=1),
            "not_before": now,
            "created_at": now,
            "updated_at": now,
        }
    )


# Guarded like the engine's transition: the write names the version it expects.
_PG_UPDATE = (
    "UPDATE requests SET step_index = $3, version = version + 1, audit_seq = $4, "
    "audit_head = $5, updated_at = $6 WHERE id = $1 AND version = $2 AND state = 'running'"
)
_SQLITE_UPDATE = (
    "UPDATE requests SET step_index = ?, version = version + 1, audit_seq = ?, "
    "audit_head = ?, updated_at = ? WHERE id = ? AND version = ? AND state = 'running'"
)


def _pg_mark(i: int) -> str:
    return f"${i}"


def _sqlite_mark(_i: int) -> str:
    return "?"


_PG_INSERT_EXECUTION = _EXECUTIONS.insert_sql(_pg_mark)
_PG_INSERT_AUDIT = _AUDIT_LOGS.insert_sql(_pg_mark)
_SQLITE_INSERT_EXECUTION = _EXECUTIONS.insert_sql(_sqlite_mark)
_SQLITE_INSERT_AUDIT = _AUDIT_LOGS.insert_sql(_sqlite_mark)


class _Chain:
    """One request's step counter and audit chain head, owned by one writer."""

    def __init__(self, request_id: uuid.UUID, *, sqlite: bool = False) -> None:
        self.request_id = request_id
        self.chain_key = str(request_id)
        self.sqlite = sqlite
        #: The request id as the driver takes it (SQLite: SQLAlchemy's 32 hex characters).
        self.key: uuid.UUID | str = request_id.hex if sqlite else request_id
        self.version = 0
        self.seq = 0
        self.head = ""
        self.input_digest = hashlib.sha256(self.chain_key.encode()).hexdigest()

    def next_step(self, now: datetime | str) -> tuple[list[Any], list[Any], str]:
        """Execution and audit rows for the next step at ``now``, and the chain's new head."""
        seq = self.seq + 1
        output = json.dumps({"ok": True, "step_index": seq})
        event_data = json.dumps({"step": _STEP, "step_index": seq, "status": "succeeded"})
        new_head = _chain_hash(self.head, seq, event_data)
        execution = _EXECUTIONS.values(
            {
                "id": self._new_id(),
                "request_id": self.key,
                "step": _STEP,
                "step_index": seq,
                "agent_id": _AGENT,
                "attempt": 1,
                "status": "succeeded",
                "input_digest": self.input_digest,
                "output_digest": hashlib.sha256(output.encode()).hexdigest(),
                "output": output,
                "worker_id": _WORKER,
                "started_at": now,
                "finished_at": now,
                "duration_ms": 0,
            }
        )
        audit = _AUDIT_LOGS.values(
            {
                "id": self._new_id(),
                "chain_key": self.chain_key,
                "seq": seq,
                "request_id": self.key,
                "event_type": "step_succeeded",
                "severity": "info",
                "actor": _WORKER,
                "agent_id": _AGENT,
                "occurred_at": now,
                "event_data": event_data,
                "prev_hash": self.head,
                "hash": new_head,
            }
        )
        return execution, audit, new_head

    def _new_id(self) -> uuid.UUID | str:
        new_id = uuid.uuid4()
        return new_id.hex if self.sqlite else new_id

    def advance(self, new_head: str, *, updated: bool) -> None:
        """Record that the step's transaction committed."""
        self.seq += 1
        self.head = new_head
        if updated:
            self.version += 1


# --------------------------------------------------------------------------- PostgreSQL


class _Meter:
    """Committed transactions so far, and the flag that stops the writers."""

    def __init__(self) -> None:
        self.count = 0
        self.stopped = False


async def _pg_writer(pool: asyncpg.Pool, chain: _Chain, shape: Shape, meter: _Meter) -> None:
    while not meter.stopped:
        now = datetime.now(UTC)
        execution, audit, new_head = chain.next_step(now)
        async with pool.acquire() as conn:
            if shape == "insert":
                await conn.execute(_PG_INSERT_AUDIT, *audit)
            else:
                async with conn.transaction():
                    status = await conn.execute(
                        _PG_UPDATE,
                        chain.request_id,
                        chain.version,
                        chain.seq + 1,
                        chain.seq + 1,
                        new_head,
                        now,
                    )
                    if status != "UPDATE 1":
                        raise RuntimeError(f"guarded UPDATE matched no row: {status}")
                    await conn.execute(_PG_INSERT_EXECUTION, *execution)
                    await conn.execute(_PG_INSERT_AUDIT, *audit)
        chain.advance(new_head, updated=shape == "step")
        meter.count += 1


async def _measure(meter: _Meter, warmup: float, seconds: float) -> float:
    await asyncio.sleep(warmup)
    count, started = meter.count, time.perf_counter()
    await asyncio.sleep(seconds)
    rate = (meter.count - count) / (time.perf_counter() - started)
    meter.stopped = True
    return rate


async def _pg_rate(
    url: URL, concurrency: int, seconds: float, shape: Shape, warmup: float
) -> float:
    pool = await asyncpg.create_pool(_asyncpg_dsn(url), min_size=concurrency, max_size=concurrency)
    try:
        now = datetime.now(UTC)
        chains = [_Chain(uuid.uuid4()) for _ in range(concurrency)]
        rows = [_request_values(c.request_id, now) for c in chains]
        async with pool.acquire() as conn:
            await conn.executemany(_REQUESTS.insert_sql(_pg_mark), rows)
        meter = _Meter()
        async with asyncio.TaskGroup() as group:
            for chain in chains:
                group.create_task(_pg_writer(pool, chain, shape, meter))
            measured = group.create_task(_measure(meter, warmup, seconds))
        return measured.result()
    finally:
        await pool.close()


# --------------------------------------------------------------------------- SQLite


def _sqlite_timestamp(value: datetime) -> str:
    # How SQLAlchemy stores UTCDateTime on SQLite: a fixed-width UTC string.
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _sqlite_value(value: Any) -> Any:
    # SQLAlchemy's Uuid is 32 hex characters on SQLite; JSON values are already text.
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, datetime):
        return _sqlite_timestamp(value)
    return value


def _sqlite_values(values: Sequence[Any]) -> list[Any]:
    return [_sqlite_value(v) for v in values]


def _sqlite_rate(path: str, seconds: float, shape: Shape, warmup: float) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        # The pragmas ledgerflow's engine sets on every connection (app/database/engine.py).
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "busy_timeout=5000",
            "foreign_keys=ON",
        ):
            conn.execute(f"PRAGMA {pragma}")
        chain = _Chain(uuid.uuid4(), sqlite=True)
        request = _request_values(chain.request_id, datetime.now(UTC))
        conn.execute(_REQUESTS.insert_sql(_sqlite_mark), _sqlite_values(request))
        chains = [_Chain(uuid.uuid4(), sqlite=True) for _ in range(BATCH)]
        if shape == "batch":
            conn.executemany(
                _REQUESTS.insert_sql(_sqlite_mark),
                [_sqlite_values(_request_values(c.request_id, datetime.now(UTC))) for c in chains],
            )

        def one_batch() -> None:
            now = _sqlite_timestamp(datetime.now(UTC))
            steps = [(c, *c.next_step(now)) for c in chains]
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(
                    _SQLITE_UPDATE,
                    [(c.seq + 1, c.seq + 1, h, now, c.key, c.version) for c, _, _, h in steps],
                )
                conn.executemany(_SQLITE_INSERT_EXECUTION, [e for _, e, _, _ in steps])
                conn.executemany(_SQLITE_INSERT_AUDIT, [a for _, _, a, _ in steps])
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            for c, _, _, h in steps:
                c.advance(h, updated=True)

        def one_transaction() -> None:
            if shape == "batch":
                one_batch()
                return
            now = _sqlite_timestamp(datetime.now(UTC))
            execution, audit, new_head = chain.next_step(now)
            if shape == "insert":
                conn.execute(_SQLITE_INSERT_AUDIT, audit)
            else:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    cursor = conn.execute(
                        _SQLITE_UPDATE,
                        (chain.seq + 1, chain.seq + 1, new_head, now, chain.key, chain.version),
                    )
                    if cursor.rowcount != 1:
                        raise RuntimeError("guarded UPDATE matched no row")
                    conn.execute(_SQLITE_INSERT_EXECUTION, execution)
                    conn.execute(_SQLITE_INSERT_AUDIT, audit)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            chain.advance(new_head, updated=shape == "step")

        end_warmup = time.perf_counter() + warmup
        while time.perf_counter() < end_warmup:
            one_transaction()
        count, started = 0, time.perf_counter()
        end = started + seconds
        per_transaction = BATCH if shape == "batch" else 1
        while (now := time.perf_counter()) < end:
            one_transaction()
            count += per_transaction
        return count / (now - started)
    finally:
        conn.close()


# --------------------------------------------------------------------------- public API


async def raw_commit_rate_async(
    backend: Backend,
    url: str,
    concurrency: int,
    seconds: float,
    *,
    shape: Shape = "step",
    warmup: float = 1.0,
) -> float:
    """Transactions/s of the raw driver on ``url``: see :func:`raw_commit_rate`."""
    parsed = make_url(url)
    if _backend_of(parsed) != backend:
        raise ValueError(f"{url!r} is not a {backend} URL")
    if shape == "batch" and backend != "sqlite":
        raise ValueError("the batch shape is measured on SQLite only")
    await prepare_database(url)
    if backend == "sqlite":
        assert parsed.database is not None
        return await asyncio.to_thread(_sqlite_rate, parsed.database, seconds, shape, warmup)
    return await _pg_rate(parsed, concurrency, seconds, shape, warmup)


def raw_commit_rate(
    backend: Backend,
    url: str,
    concurrency: int,
    seconds: float,
    *,
    shape: Shape = "step",
    warmup: float = 1.0,
) -> float:
    """Transactions/s that the raw driver commits on ``url`` for one engine step's writes.

    ``url`` is a PostgreSQL database (created if needed by :func:`create_scratch_database`)
    or a SQLite file; it is migrated to head, then ``concurrency`` fresh ``requests`` rows
    are inserted (one for SQLite) and written for ``warmup`` + ``seconds`` seconds; only the
    last ``seconds`` count. ``shape="step"``: 1 guarded UPDATE + 2 INSERTs per transaction;
    ``shape="insert"``: 1 INSERT; ``shape="batch"`` (SQLite): :data:`BATCH` steps of the
    step shape per transaction, returned as *steps*/s. On SQLite ``concurrency`` is
    ignored (one writer thread: SQLite serialises writers, so more threads would only add
    lock waits). Not for use inside a running event loop: await :func:`raw_commit_rate_async` there.
    """
    return asyncio.run(
        raw_commit_rate_async(backend, url, concurrency, seconds, shape=shape, warmup=warmup)
    )


def dbos_runs(
    url: str, concurrency: int, workflows: int, *, runs: int = 1, timeout: float = 600.0
) -> list[float]:
    """Steps/s of each of ``runs`` timed batches of DBOS workflows (one DBOS launch).

    ``url`` is DBOS's system database (``postgresql://...``, created by DBOS if missing,
    or ``sqlite:///file``). Runs :mod:`bench.dbos_runner` in a subprocess because DBOS
    keeps global state; needs the ``bench`` extra (``pip install -e '.[bench]'``).
    """
    command = [
        sys.executable,
        "-m",
        "bench.dbos_runner",
        f"--url={url}",
        f"--concurrency={concurrency}",
        f"--workflows={workflows}",
        f"--runs={runs}",
    ]
    done = subprocess.run(
        command, cwd=_REPO_ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench.dbos_runner failed ({done.returncode}):\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return [float(rate) for rate in result["steps_per_second"]]


def dbos_steps_per_second(url: str, concurrency: int, workflows: int, *, runs: int = 1) -> float:
    """Median steps/s of DBOS Transact running a 3-no-op-step workflow ``concurrency`` at a time.

    Each run is ``workflows`` workflows after a warm-up batch; steps/s is
    ``3 * workflows / wall time``. Blocking; from async code use ``asyncio.to_thread``.
    """
    return statistics.median(dbos_runs(url, concurrency, workflows, runs=runs))


# --------------------------------------------------------------------------- CLI


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _fmt(values: Sequence[float]) -> tuple[str, str]:
    return f"{statistics.median(values):,.0f}", " / ".join(f"{v:,.0f}" for v in values)


def main(argv: Sequence[str] | None = None) -> None:
    """Measure every baseline for one backend and print a table."""
    parser = argparse.ArgumentParser(description="Raw-driver and DBOS throughput baselines.")
    parser.add_argument("--backend", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated, e.g. 1,8,32")
    parser.add_argument("--seconds", type=float, default=5.0, help="timed seconds per raw run")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before timing")
    parser.add_argument("--runs", type=int, default=3, help="runs per cell; the median is shown")
    parser.add_argument("--workflows", type=int, default=200, help="DBOS workflows per run")
    parser.add_argument("--server-url", default=DEFAULT_SERVER_URL, help="PostgreSQL server")
    parser.add_argument("--no-dbos", action="store_true", help="skip the DBOS baseline")
    args = parser.parse_args(argv)
    backend: Backend = args.backend
    levels = [int(level) for level in args.concurrency.split(",")]
    console = Console()

    table = Table(title=f"Baselines on {backend} (median of {args.runs}; all runs at right)")
    for column in ("baseline", "conc", "median", "runs", "unit"):
        table.add_column(column, justify="left" if column in ("baseline", "unit") else "right")
    driver = "asyncpg" if backend == "postgresql" else "sqlite3 (1 writer)"
    raw_levels = levels if backend == "postgresql" else [1]
    started = time.perf_counter()

    with scratch_database(backend, "raw", args.server_url) as url:
        shapes: tuple[tuple[Shape, str], ...] = (
            ("step", "1 UPDATE + 2 INSERT"),
            ("insert", "1 INSERT"),
        )
        for shape, label in shapes:
            for level in raw_levels:
                rates = [
                    raw_commit_rate(
                        backend, url, level, args.seconds, shape=shape, warmup=args.warmup
                    )
                    for _ in range(args.runs)
                ]
                table.add_row(f"raw {driver}: {label}", str(level), *_fmt(rates), "tx/s")
                console.print(f"  raw {label}, concurrency {level}: {_fmt(rates)[0]} tx/s")

    if not args.no_dbos:
        dbos_version = _package_version("dbos")
        for level in levels:
            with scratch_database(backend, "dbos", args.server_url) as url:
                rates = dbos_runs(url, level, args.workflows, runs=args.runs)
            table.add_row(
                f"DBOS {dbos_version}: 3-step workflow", str(level), *_fmt(rates), "steps/s"
            )
            console.print(f"  DBOS, concurrency {level}: {_fmt(rates)[0]} steps/s")

    console.print(table)
    console.print(
        f"python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"asyncpg {_package_version('asyncpg')}, sqlite {sqlite3.sqlite_version}; "
        f"raw runs {args.seconds:g}s after {args.warmup:g}s warm-up, "
        f"DBOS runs {args.workflows} workflows; total {time.perf_counter() - started:.0f}s; "
        f"load average {os.getloadavg()[1]:.1f} over the last 5 min (other work skews results)"
    )


if __name__ == "__main__":
    main()
