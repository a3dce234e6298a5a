"""Plain driver SQL for the hot path: executemany without per-row SQLAlchemy processing.

SQLAlchemy compiles a statement once and then runs every parameter of every row through
its type processors; for a batch of a hundred rows that Python work, not the database,
is the cost. Here each statement's SQL text is built once per (dialect, table, columns)
and each column's values are converted by one small function chosen once per column:
UUIDs, UTC timestamps and JSON are the only types that differ between the backends.
Statements run through ``AsyncConnection.exec_driver_sql`` so the transaction is still the
session's own.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import JSON, DateTime, Table, Uuid
from sqlalchemy.ext.asyncio import AsyncConnection

from app.database.types import canonical_json_text

Convert = Callable[[Any], Any]


def _same(value: Any) -> Any:
    return value


def _json(value: Any) -> Any:
    return None if value is None else canonical_json_text(value)


def _uuid_native(value: Any) -> Any:
    return value


def _uuid_hex(value: Any) -> Any:
    return None if value is None else value.hex if isinstance(value, uuid.UUID) else value


def _ts_native(value: datetime | None) -> Any:
    return value


def _ts_sqlite(value: datetime | None) -> Any:
    # Exactly the format SQLAlchemy's SQLite DATETIME writes (and our UTCDateTime reads).
    if value is None:
        return None
    if value.tzinfo is UTC and value.year >= 1000:
        # The same text as the strftime below, at a fraction of its cost.
        return value.isoformat(" ", "microseconds")[:-6]
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _converter(dialect: str, column_type: Any) -> Convert:
    sqlite = dialect == "sqlite"
    if isinstance(column_type, Uuid):
        return _uuid_hex if sqlite else _uuid_native
    if isinstance(column_type, JSON):
        return _json
    impl = getattr(column_type, "impl", column_type)
    if isinstance(impl, DateTime):
        return _ts_sqlite if sqlite else _ts_native
    return _same


class Statement:
    """One cached driver statement with the converters for its parameters, in order.

    ``columnar`` statements take one array per column (PostgreSQL's ``unnest`` insert)
    instead of one tuple per row.
    """

    def __init__(
        self,
        sql: str,
        converters: Sequence[Convert],
        names: Sequence[str],
        *,
        columnar: bool = False,
    ) -> None:
        self.sql = sql
        self.converters = tuple(converters)
        self.names = tuple(names)
        self.columnar = columnar

    def params(self, rows: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
        """Rows as driver tuples."""
        pairs = tuple(zip(self.names, self.converters, strict=True))
        return [tuple(conv(row[name]) for name, conv in pairs) for row in rows]

    def columns(self, rows: Sequence[dict[str, Any]]) -> tuple[list[Any], ...]:
        """Rows as one list per column."""
        return tuple(
            [conv(row[name]) for row in rows]
            for name, conv in zip(self.names, self.converters, strict=True)
        )


def _placeholders(dialect: str, count: int, start: int = 1) -> list[str]:
    if dialect == "sqlite":
        return ["?"] * count
    return [f"${i}" for i in range(start, start + count)]


def _pg_type(column_type: Any) -> str:
    from sqlalchemy.dialects import postgresql

    return str(column_type.compile(dialect=postgresql.dialect()))  # type: ignore[no-untyped-call]


@cache
def insert_statement(dialect: str, table: Table, columns: tuple[str, ...]) -> Statement:
    """The multi-row ``INSERT`` of ``columns`` into ``table``.

    SQLite: ``INSERT ... VALUES (?, ...)`` run once per row (executemany; sqlite3 steps
    the one prepared statement). PostgreSQL: ``INSERT ... SELECT ... FROM unnest($1::t[],
    ...)``, one array per column: one statement execution for the whole batch instead of
    one Bind/Execute per row, which is what the server spends its time on (measured).
    JSON travels as text and is cast per row.
    """
    converters = [_converter(dialect, table.c[c].type) for c in columns]
    if dialect == "sqlite":
        marks = ", ".join(_placeholders(dialect, len(columns)))
        sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks})"
        return Statement(sql, converters, columns)
    return Statement(_unnest_insert_sql(table, columns, 1), converters, columns, columnar=True)


def _unnest_insert_sql(table: Table, columns: tuple[str, ...], start: int) -> str:
    arrays, picks = [], []
    for i, name in enumerate(columns, start=start):
        column_type = table.c[name].type
        if isinstance(column_type, JSON):
            arrays.append(f"${i}::text[]")
            picks.append(f"u.{name}::{_pg_type(column_type)}")
        else:
            arrays.append(f"${i}::{_pg_type(column_type)}[]")
            picks.append(f"u.{name}")
    return (
        f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT {', '.join(picks)} "
        f"FROM unnest({', '.join(arrays)}) AS u({', '.join(columns)})"
    )


@cache
def _combined_insert_sql(parts: tuple[tuple[Table, tuple[str, ...]], ...]) -> str:
    # Data-modifying CTEs all run, in one statement; the last INSERT is the main query.
    start, sqls = 1, []
    for table, columns in parts:
        sqls.append(_unnest_insert_sql(table, columns, start))
        start += len(columns)
    ctes = ", ".join(f"w{i} AS ({sql})" for i, sql in enumerate(sqls[:-1]))
    return f"WITH {ctes} {sqls[-1]}"


async def insert_all(
    connection: AsyncConnection,
    groups: Sequence[tuple[Table, tuple[str, ...], Sequence[dict[str, Any]]]],
) -> None:
    """Insert rows into several tables: one round trip on PostgreSQL, one each on SQLite.

    PostgreSQL joins the ``unnest`` inserts of :func:`insert_statement` as data-modifying
    CTEs of one statement; the rows must not depend on one another (they only reference
    rows already written, such as the request).
    """
    groups = [g for g in groups if g[2]]
    dialect = connection.dialect.name
    if dialect == "sqlite" or len(groups) < 2:
        for table, columns, rows in groups:
            await executemany(connection, insert_statement(dialect, table, columns), rows)
        return
    params: list[list[Any]] = []
    for table, columns, rows in groups:
        params.extend(insert_statement(dialect, table, columns).columns(rows))
    sql = _combined_insert_sql(tuple((table, columns) for table, columns, _ in groups))
    await connection.exec_driver_sql(sql, tuple(params))


async def executemany(
    connection: AsyncConnection, statement: Statement, rows: Sequence[dict[str, Any]]
) -> None:
    """Insert every row of ``rows`` with ``statement`` in one driver call."""
    if not rows:
        return
    if statement.columnar:
        await connection.exec_driver_sql(statement.sql, statement.columns(rows))
    else:
        await connection.exec_driver_sql(statement.sql, statement.params(rows))


@cache
def _update_from_values_sql(
    dialect: str, table: Table, columns: tuple[str, ...], keys: tuple[str, ...], count: int
) -> str:
    width = len(keys) + len(columns)
    if dialect == "sqlite":
        # SQLite names VALUES columns column1..N; RETURNING may only name the target table.
        row = "(" + ", ".join(["?"] * width) + ")"
        sets = ", ".join(f"{c} = v.column{len(keys) + i + 1}" for i, c in enumerate(columns))
        conds = " AND ".join(f"{table.name}.{k} = v.column{i + 1}" for i, k in enumerate(keys))
        return (
            f"UPDATE {table.name} SET {sets} FROM (VALUES {', '.join([row] * count)}) AS v "
            f"WHERE {conds} RETURNING {table.name}.{keys[0]}"
        )
    from sqlalchemy.dialects import postgresql

    pg = postgresql.dialect()  # type: ignore[no-untyped-call]
    casts = [table.c[n].type.compile(dialect=pg) for n in keys + columns]
    aliases = [f"w_{k}" for k in keys] + list(columns)
    rows = []
    for r in range(count):
        marks = [f"${r * width + i + 1}::{casts[i]}" for i in range(width)]
        rows.append("(" + ", ".join(marks) + ")")
    sets = ", ".join(f"{c} = v.{c}" for c in columns)
    conds = " AND ".join(f"t.{k} = v.w_{k}" for k in keys)
    return (
        f"UPDATE {table.name} AS t SET {sets} FROM (VALUES {', '.join(rows)}) "
        f"AS v({', '.join(aliases)}) WHERE {conds} RETURNING t.{keys[0]}"
    )


async def update_returning(
    connection: AsyncConnection,
    table: Table,
    columns: tuple[str, ...],
    keys: tuple[str, ...],
    rows: Sequence[Sequence[Any]],
) -> list[Any]:
    """One ``UPDATE ... FROM (VALUES ...) ... RETURNING`` for many rows, each with its own values.

    Each row is a tuple of the guard's values (one per column in ``keys``) followed by the
    new values (one per column in ``columns``); a row is updated only where all its keys
    match (the guard lives in the write). Returns the first key of every updated row, as
    the driver gives it. Rows are locked in the order given (PostgreSQL joins the VALUES
    list to the primary key in order): callers sort them to keep one lock order.
    """
    if not rows:
        return []
    dialect = connection.dialect.name
    converters = [_converter(dialect, table.c[n].type) for n in keys + columns]
    params = tuple(conv(value) for row in rows for conv, value in zip(converters, row, strict=True))
    sql = _update_from_values_sql(dialect, table, columns, keys, len(rows))
    result = await connection.exec_driver_sql(sql, params)
    return [row[0] for row in result]
