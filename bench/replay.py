"""Exact-row replay: the rows an engine run wrote, written again with the bare driver.

The ceiling of what ledgerflow's engine can do on a database is the cost of writing what
it writes, nothing more: the same rows into the same schema (indexes, triggers, foreign
keys), in as many transactions. :func:`read_rows` reads every table of a database in the
order its rows were written, once before the engine's worker starts and once after it
stops; :func:`make_plan` turns the difference into the run's writes; :func:`replay` writes
them into a fresh database migrated like any other (``app.database.schema.upgrade``) with
plain ``sqlite3`` (the pragmas read from a connection of ledgerflow's engine, ``BEGIN
IMMEDIATE``) or ``asyncpg`` (one connection), one transaction per batch, ``executemany``
per statement, and times only that. No background checkpointer runs beside the SQLite
replay: SQLite's own auto-checkpoint, at the engine's ``wal_autocheckpoint``, is all.

What is replayed (tables are discovered, not listed):

* **Inserts**: every row whose primary key was not there before the run, table by table
  in the order written (SQLite ``rowid``; PostgreSQL ``xmin`` age, then ``ctid``).
* **Versioned updates** (a table with a ``version`` column, i.e. ``requests``): one
  ``UPDATE ... WHERE <key> AND version = :v`` per version the run added, setting the
  columns the run changed. The last one writes the final values; the ones before keep the
  other changed columns at their values from before the run but move ``version`` and,
  where the row heads an audit chain (``audit_seq``, ``audit_head``), the chain position,
  hash, ``updated_at`` and ``state`` to where the run's audit rows had them at that point
  (so indexed columns change as often as the engine changed them).
* **Chain heads** (a table with ``chain_key``, ``seq``, ``head_hash``, i.e.
  ``audit_chains``): one UPDATE per audit row the run appended to that chain.
* Any other changed row: one UPDATE to its final values, in the last transaction;
  a deleted row: one DELETE there.

Batching: the run's writes are spread over as many transactions as the engine committed
(:class:`WriteCommits` counts them during the run). Each table's writes keep their order
and are cut in equal slices, transaction *k* taking slice *k* of every table, so each
transaction carries the engine's mean rows per commit of each kind. Within a transaction:
versioned updates (the engine's fenced UPDATE comes first), inserts with parents before
children, then the other updates and deletes. After the timed part the replayed database
is compared with the engine's, row for row.
"""

from __future__ import annotations

import asyncio
import graphlib
import json
import math
import sqlite3
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import asyncpg  # type: ignore[import-untyped]  # asyncpg publishes no type stubs
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from app.database import Database
from bench.baselines import Backend, prepare_database, scratch_database_async

#: Tables that are not the application's data.
_SKIPPED = frozenset({"alembic_version"})
#: The table whose rows carry the audit chains (``chain_key``, ``seq``, ``hash``).
_AUDIT = "audit_logs"

Row = tuple[Any, ...]
Kind = Literal["update_versioned", "insert", "update", "delete"]
#: Statement order inside one transaction.
_KIND_ORDER: dict[Kind, int] = {"update_versioned": 0, "insert": 1, "update": 2, "delete": 3}


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Table:
    """One table's rows in the order they were written, and what is needed to write them."""

    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    rows: tuple[Row, ...]

    def key_of(self, row: Row) -> Row:
        """The row's primary key values (the whole row for a table without one)."""
        if not self.key:
            return row
        return tuple(row[self.columns.index(k)] for k in self.key)

    def changed(self, old: Row, new: Row) -> tuple[str, ...]:
        """The columns outside the key whose values differ between ``old`` and ``new``."""
        return tuple(
            c for i, c in enumerate(self.columns) if c not in self.key and old[i] != new[i]
        )

    def by_key(self) -> dict[Row, Row]:
        """Rows by primary key."""
        return {self.key_of(row): row for row in self.rows}


#: Every application table of a database, parents before children (foreign keys).
Rows = dict[str, Table]


def _in_dependency_order(tables: dict[str, Table], parents: dict[str, set[str]]) -> Rows:
    sorter = graphlib.TopologicalSorter(
        {name: parents.get(name, set()) & tables.keys() - {name} for name in sorted(tables)}
    )
    return {name: tables[name] for name in sorter.static_order()}


def _read_sqlite(path: str) -> Rows:
    conn = sqlite3.connect(path)
    try:
        names = [
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
            if name not in _SKIPPED
        ]
        tables: dict[str, Table] = {}
        parents: dict[str, set[str]] = {}
        for name in names:
            info = conn.execute(f'PRAGMA table_info("{name}")').fetchall()
            columns = tuple(r[1] for r in info)
            key = tuple(r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5]))
            parents[name] = {r[2] for r in conn.execute(f'PRAGMA foreign_key_list("{name}")')}
            select = f'SELECT {", ".join(columns)} FROM "{name}"'
            try:
                rows = conn.execute(f"{select} ORDER BY rowid").fetchall()
            except sqlite3.OperationalError:  # a WITHOUT ROWID table: key order
                rows = conn.execute(f"{select} ORDER BY {', '.join(key) or 1}").fetchall()
            tables[name] = Table(name, columns, key, tuple(rows))
        return _in_dependency_order(tables, parents)
    finally:
        conn.close()


_PG_TABLES = """
SELECT c.oid, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
"""
_PG_COLUMNS = """
SELECT attname FROM pg_attribute
WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped AND attgenerated = ''
ORDER BY attnum
"""
_PG_KEY = """
SELECT a.attname FROM pg_index i
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
WHERE i.indrelid = $1 AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)
"""
_PG_PARENTS = """
SELECT p.relname FROM pg_constraint k JOIN pg_class p ON p.oid = k.confrelid
WHERE k.conrelid = $1 AND k.contype = 'f'
"""


async def _read_postgresql(dsn: str) -> Rows:
    conn = await asyncpg.connect(dsn)
    try:
        tables: dict[str, Table] = {}
        parents: dict[str, set[str]] = {}
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            for oid, name in await conn.fetch(_PG_TABLES):
                if name in _SKIPPED:
                    continue
                columns = tuple(r[0] for r in await conn.fetch(_PG_COLUMNS, oid))
                key = tuple(r[0] for r in await conn.fetch(_PG_KEY, oid))
                parents[name] = {r[0] for r in await conn.fetch(_PG_PARENTS, oid)}
                # Oldest transaction first, then the order within the heap (no deletes here).
                rows = await conn.fetch(
                    f'SELECT {", ".join(columns)} FROM "{name}" ORDER BY age(xmin) DESC, ctid'
                )
                tables[name] = Table(name, columns, key, tuple(tuple(r) for r in rows))
        return _in_dependency_order(tables, parents)
    finally:
        await conn.close()


async def read_rows(backend: Backend, url: str) -> Rows:
    """Every application table of ``url`` (a plain ``sqlite:///`` or ``postgresql://`` URL),
    rows as the bare driver returns them, in the order they were written."""
    parsed = make_url(url)
    if backend == "sqlite":
        assert parsed.database is not None
        return await asyncio.to_thread(_read_sqlite, parsed.database)
    return await _read_postgresql(parsed.set(drivername="postgresql").render_as_string(False))


# --------------------------------------------------------------------------- counting commits


class WriteCommits:
    """Counts the transactions of an engine that wrote something, while installed.

    A transaction counts when one of its statements was an INSERT, UPDATE or DELETE that
    changed rows (or did not say how many); a claim that found nothing does not. Cheap: a
    string test per statement. Use as ``with WriteCommits(engine) as commits: ...``.
    """

    _FLAG = "bench_replay_wrote"

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine.sync_engine
        self.count = 0

    def _executed(self, conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE"):
            if getattr(cursor, "rowcount", -1) != 0:
                conn.info[self._FLAG] = True

    def _committed(self, conn: Any) -> None:
        if conn.info.pop(self._FLAG, False):
            self.count += 1

    def _rolled_back(self, conn: Any) -> None:
        conn.info.pop(self._FLAG, None)

    def __enter__(self) -> WriteCommits:
        event.listen(self.engine, "after_cursor_execute", self._executed)
        event.listen(self.engine, "commit", self._committed)
        event.listen(self.engine, "rollback", self._rolled_back)
        return self

    def __exit__(self, *_exc: object) -> None:
        event.remove(self.engine, "after_cursor_execute", self._executed)
        event.remove(self.engine, "commit", self._committed)
        event.remove(self.engine, "rollback", self._rolled_back)


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Op:
    """One statement shape: what it does to which table, with which columns."""

    kind: Kind
    table: str
    #: Columns set (inserts: every column) ...
    columns: tuple[str, ...]
    #: ... and columns matched (updates, deletes: the key, then ``version`` if fenced).
    where: tuple[str, ...] = ()

    def sql(self, backend: Backend) -> str:
        """The statement's text with the backend's placeholders."""
        numbers = iter(range(1, len(self.columns) + len(self.where) + 1))

        def mark() -> str:
            return "?" if backend == "sqlite" else f"${next(numbers)}"

        if self.kind == "insert":
            marks = ", ".join(mark() for _ in self.columns)
            return f'INSERT INTO "{self.table}" ({", ".join(self.columns)}) VALUES ({marks})'
        sets = ", ".join(f"{c} = {mark()}" for c in self.columns)
        where = " AND ".join(f"{c} = {mark()}" for c in self.where)
        if self.kind == "delete":
            return f'DELETE FROM "{self.table}" WHERE {where}'
        return f'UPDATE "{self.table}" SET {sets} WHERE {where}'


#: One transaction: statements in order, each with its parameter rows.
Batch = list[tuple[Op, list[Row]]]


@dataclass
class Plan:
    """The database as it was before the run, and the run's writes cut into transactions."""

    setup: Rows
    batches: list[Batch]
    after: Rows
    inserts: int = 0
    updates: int = 0
    deletes: int = 0

    @property
    def rows(self) -> int:
        """Rows written by the replay (inserts, updates and deletes)."""
        return self.inserts + self.updates + self.deletes


@dataclass
class _Writes:
    """The run's writes, each at a position in (0, 1] of the run."""

    items: list[tuple[float, Op, Row]] = field(default_factory=list)
    inserts: int = 0
    updates: int = 0
    deletes: int = 0

    def add(self, position: float, op: Op, params: Row) -> None:
        self.items.append((position, op, params))
        if op.kind == "insert":
            self.inserts += 1
        elif op.kind == "delete":
            self.deletes += 1
        else:
            self.updates += 1


@dataclass(frozen=True)
class _ChainRow:
    position: float
    hash: str
    occurred_at: Any
    #: The state a ``state_changed`` row moved its request to (None for other events).
    state: str | None


def _to_state(event_type: str, event_data: Any) -> str | None:
    if event_type != "state_changed":
        return None
    data = json.loads(event_data) if isinstance(event_data, str) else event_data
    return str(data["to_state"])


def _chain_rows(before: Rows, after: Rows) -> dict[tuple[str, int], _ChainRow]:
    """The run's audit rows by (chain, seq), with their position among the run's audit rows.

    Along one chain positions follow ``seq``: PostgreSQL's ``ctid`` order within one
    transaction is not always the order of insertion, and the updates placed at these
    positions must come in chain order.
    """
    if _AUDIT not in after:
        return {}
    table = after[_AUDIT]
    old = before[_AUDIT].by_key() if _AUDIT in before else {}
    new = [row for row in table.rows if table.key_of(row) not in old]
    names = ("chain_key", "seq", "hash", "occurred_at", "event_type", "event_data")
    at = {c: table.columns.index(c) for c in names}
    positions: dict[str, list[float]] = defaultdict(list)
    for i, row in enumerate(new):
        positions[row[at["chain_key"]]].append((i + 0.5) / len(new))
    rows: dict[tuple[str, int], _ChainRow] = {}
    for row in sorted(new, key=lambda r: (r[at["chain_key"]], r[at["seq"]])):
        chain = row[at["chain_key"]]
        rows[(chain, row[at["seq"]])] = _ChainRow(
            positions[chain].pop(0),
            row[at["hash"]],
            row[at["occurred_at"]],
            _to_state(row[at["event_type"]], row[at["event_data"]]),
        )
    return rows


def _chain_key(value: Any) -> str:
    # Requests are chained under their id as text (SQLite stores it as 32 hex digits).
    try:
        return str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))
    except ValueError:
        return str(value)


def _versioned_updates(
    table: Table, old: Row, new: Row, chains: dict[tuple[str, int], _ChainRow], out: _Writes
) -> None:
    col = {c: i for i, c in enumerate(table.columns)}
    changed = table.changed(old, new)
    key = table.key_of(new)
    first, last = old[col["version"]], new[col["version"]]
    steps = last - first
    chained = "audit_seq" in col and "audit_head" in col and len(table.key) == 1
    chain = _chain_key(key[0]) if chained else ""
    op = Op("update_versioned", table.name, changed, (*table.key, "version"))
    seq_from = seq_to = seq = 0
    if chained:
        seq_from, seq_to = old[col["audit_seq"]], new[col["audit_seq"]]
        seq = seq_from
    state = old[col["state"]] if "state" in col else None
    for j in range(1, steps + 1):
        values = dict(zip(table.columns, old if j < steps else new, strict=True))
        values["version"] = first + j
        position = 1.0
        if chained:
            # Where the chain stood after this write, and the state it recorded last.
            target = seq_from + math.ceil(j * (seq_to - seq_from) / steps)
            for at in range(seq + 1, target + 1):
                passed = chains.get((chain, at))
                state = passed.state if passed is not None and passed.state else state
            found = chains.get((chain, target))
            if found is not None:
                position = found.position
                if j < steps:
                    values["audit_seq"], values["audit_head"] = target, found.hash
                    values["updated_at"] = found.occurred_at
                    values["state"] = state
            seq = target
        out.add(position, op, (*(values[c] for c in changed), *key, first + j - 1))


def _head_updates(
    table: Table, old: Row, new: Row, chains: dict[tuple[str, int], _ChainRow], out: _Writes
) -> bool:
    """One UPDATE per audit row the run appended to a chain whose head is ``new``."""
    col = {c: i for i, c in enumerate(table.columns)}
    if not {"chain_key", "seq", "head_hash"} <= col.keys() or old[col["seq"]] == new[col["seq"]]:
        return False
    chain = new[col["chain_key"]]
    changed = table.changed(old, new)
    op = Op("update", table.name, changed, table.key)
    for seq in range(old[col["seq"]] + 1, new[col["seq"]] + 1):
        found = chains.get((chain, seq))
        values = dict(zip(table.columns, new, strict=True))
        position = 1.0
        if found is not None and seq < new[col["seq"]]:
            values.update(seq=seq, head_hash=found.hash)
            if "updated_at" in values:
                values["updated_at"] = found.occurred_at
        if found is not None:
            position = found.position
        out.add(position, op, (*(values[c] for c in changed), *table.key_of(new)))
    return True


def _table_writes(
    before: Table | None, after: Table, chains: dict[tuple[str, int], _ChainRow], out: _Writes
) -> None:
    old = before.by_key() if before is not None else {}
    inserted = [row for row in after.rows if after.key_of(row) not in old]
    insert = Op("insert", after.name, after.columns)
    for i, row in enumerate(inserted):
        out.add((i + 0.5) / len(inserted), insert, row)
    version = after.columns.index("version") if "version" in after.columns else None
    for row in after.rows:
        previous = old.get(after.key_of(row))
        if previous is None or previous == row:
            continue
        if version is not None and row[version] > previous[version]:
            _versioned_updates(after, previous, row, chains, out)
        elif not _head_updates(after, previous, row, chains, out):
            changed = after.changed(previous, row)
            values = tuple(row[after.columns.index(c)] for c in changed)
            op = Op("update", after.name, changed, after.key)
            out.add(1.0, op, (*values, *after.key_of(row)))
    new_keys = after.by_key().keys()
    for key in old.keys() - new_keys:
        out.add(1.0, Op("delete", after.name, (), after.key), key)


def make_plan(before: Rows, after: Rows, transactions: int) -> Plan:
    """The run's writes (``after`` minus ``before``) cut into ``transactions`` batches."""
    chains = _chain_rows(before, after)
    writes = _Writes()
    for name, table in after.items():
        _table_writes(before.get(name), table, chains, writes)
    transactions = max(1, transactions)
    slots: list[dict[Op, list[Row]]] = [defaultdict(list) for _ in range(transactions)]
    for position, op, params in writes.items:
        slots[min(transactions - 1, int(position * transactions))][op].append(params)
    order = {name: i for i, name in enumerate(after)}

    def rank(op: Op) -> tuple[int, int, tuple[str, ...]]:
        return _KIND_ORDER[op.kind], order[op.table], op.columns

    batches = [sorted(slot.items(), key=lambda item: rank(item[0])) for slot in slots]
    return Plan(
        setup=before,
        batches=[batch for batch in batches if batch],
        after=after,
        inserts=writes.inserts,
        updates=writes.updates,
        deletes=writes.deletes,
    )


# --------------------------------------------------------------------------- replaying


@dataclass(frozen=True)
class Replayed:
    """How long the timed part took, and whether the result equals the engine's database."""

    seconds: float
    transactions: int
    rows: int
    #: Tables whose replayed rows differ from the engine's (empty: an exact copy).
    differs: tuple[str, ...]


def _setup_ops(fresh: Rows, setup: Rows) -> Iterator[tuple[Op, list[Row]]]:
    """Statements that make a freshly migrated database hold ``setup``'s rows."""
    for name, table in setup.items():
        there = fresh[name].by_key().keys() if name in fresh else set()
        inserts = [row for row in table.rows if table.key_of(row) not in there]
        if inserts:
            yield Op("insert", name, table.columns), inserts
        others = tuple(c for c in table.columns if c not in table.key)
        at = [table.columns.index(c) for c in others]
        updates = [
            (*(row[i] for i in at), *table.key_of(row))
            for row in table.rows
            if table.key_of(row) in there
        ]
        if updates and others:
            # Rows the migrations seed (chain heads): set them as they were before the run.
            yield Op("update", name, others, table.key), updates


def _differs(expected: Rows, got: Rows) -> tuple[str, ...]:
    return tuple(
        sorted(
            name
            for name in expected.keys() | got.keys()
            if name not in expected
            or name not in got
            or expected[name].by_key() != got[name].by_key()
        )
    )


#: Connection settings read from a connection ledgerflow's engine opened, and copied.
_PRAGMAS = (
    "journal_mode",
    "synchronous",
    "busy_timeout",
    "foreign_keys",
    "wal_autocheckpoint",
    "journal_size_limit",
    "cache_size",
    "mmap_size",
    "temp_store",
)


async def engine_pragmas(url: str) -> list[tuple[str, Any]]:
    """The pragmas ledgerflow's engine (``app.database``) sets, as a connection of it has them.

    Read, not restated, so that the replay follows whatever the engine's connect listener
    sets today.
    """
    database = Database.from_url(make_url(url).set(drivername="sqlite+aiosqlite"))
    try:
        async with database.engine.connect() as conn:
            return [
                (name, (await conn.exec_driver_sql(f"PRAGMA {name}")).scalar_one())
                for name in _PRAGMAS
            ]
    finally:
        await database.dispose()


def _sqlite_replay(path: str, plan: Plan, fresh: Rows, pragmas: list[tuple[str, Any]]) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for name, value in pragmas:
            conn.execute(f"PRAGMA {name}={value}")
        conn.execute("BEGIN IMMEDIATE")
        for op, params in _setup_ops(fresh, plan.setup):
            conn.executemany(op.sql("sqlite"), params)
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        statements = {op: op.sql("sqlite") for batch in plan.batches for op, _ in batch}
        started = time.perf_counter()
        for batch in plan.batches:
            conn.execute("BEGIN IMMEDIATE")
            for op, params in batch:
                cursor = conn.executemany(statements[op], params)
                if op.kind == "update_versioned" and cursor.rowcount != len(params):
                    raise RuntimeError(f"a fenced UPDATE of {op.table} matched no row")
            conn.execute("COMMIT")
        return time.perf_counter() - started
    finally:
        conn.close()


async def _postgresql_replay(dsn: str, plan: Plan, fresh: Rows) -> float:
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            for op, params in _setup_ops(fresh, plan.setup):
                await conn.executemany(op.sql("postgresql"), params)
        statements = {op: op.sql("postgresql") for batch in plan.batches for op, _ in batch}
        started = time.perf_counter()
        for batch in plan.batches:
            async with conn.transaction():
                for op, params in batch:
                    await conn.executemany(statements[op], params)
        return time.perf_counter() - started
    finally:
        await conn.close()


async def replay(backend: Backend, plan: Plan) -> Replayed:
    """Write ``plan`` into a fresh, migrated scratch database; time the run's writes only."""
    async with scratch_database_async(backend, "replay") as url:
        await prepare_database(url)
        fresh = await read_rows(backend, url)
        parsed = make_url(url)
        if backend == "sqlite":
            assert parsed.database is not None
            pragmas = await engine_pragmas(url)
            seconds = await asyncio.to_thread(_sqlite_replay, parsed.database, plan, fresh, pragmas)
        else:
            dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
            seconds = await _postgresql_replay(dsn, plan, fresh)
        differs = _differs(plan.after, await read_rows(backend, url))
    return Replayed(seconds, len(plan.batches), plan.rows, differs)
