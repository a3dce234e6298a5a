"""Reading the ledger at disk speed: driver rows in large pages, by key range.

Verification and export do not need SQLAlchemy's per-row result processing: they read the
driver's own tuples with every id and timestamp already in its canonical text, formatted by
the database itself (:func:`sqlite_uuid`, :func:`sqlite_time`, :func:`postgres_time`).

The ledger is read by **partition**: request chains by the first hex digits of their key
(``chain_key >= '3a' AND chain_key < '3b'`` walks ``uq_audit_logs_chain_key_seq``, the
matching ``requests`` rows walk the primary key, their ``state_transitions`` rows
``ix_state_transitions_request_id_created_at``), plus one partition for every other chain
(``system``, the chain registry, anything else), so a partition's facts fit in memory and
partitions can be verified in parallel. Hex digits sort the same in every collation, so the
ranges cover every key exactly once; the rest is ``chain_key < '0' OR chain_key >= 'g'``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.audit.canonical import RawRow
from app.audit.ledger import RequestRow, Transition

#: Rows per driver fetch.
PAGE = 5000
_HEX = "0123456789abcdef"


class Pages(Protocol):
    """A driver connection that runs one statement and hands its rows back in pages."""

    dialect: str

    def pages(self, sql: str, params: Sequence[Any]) -> AsyncIterator[Sequence[Any]]:
        """Run ``sql`` (``?`` placeholders) and yield its rows, :data:`PAGE` at a time."""
        ...


class SqlitePages:
    """Pages over an aiosqlite connection (inside the session's read transaction)."""

    dialect = "sqlite"

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    async def pages(self, sql: str, params: Sequence[Any]) -> AsyncIterator[Sequence[Any]]:
        cursor = await self.driver.execute(sql, tuple(params))
        try:
            while rows := await cursor.fetchmany(PAGE):
                yield rows
        finally:
            await cursor.close()


def _numbered(sql: str) -> str:
    parts = sql.split("?")
    return "".join(f"{p}${i}" for i, p in enumerate(parts[:-1], 1)) + parts[-1]


class PostgresPages:
    """Pages over an asyncpg connection through a server-side cursor (needs a transaction)."""

    dialect = "postgresql"

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    async def pages(self, sql: str, params: Sequence[Any]) -> AsyncIterator[Sequence[Any]]:
        cursor = await self.driver.cursor(_numbered(sql), *params)
        while rows := await cursor.fetch(PAGE):
            yield rows


async def pages_of(connection: AsyncConnection | AsyncSession) -> Pages:
    """The driver connection under a SQLAlchemy connection or session, in its transaction."""
    if isinstance(connection, AsyncSession):
        connection = await connection.connection()
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    if connection.dialect.name == "sqlite":
        return SqlitePages(driver)
    return PostgresPages(driver)


# --------------------------------------------------------------------------- partitions


@dataclass(frozen=True)
class Partition:
    """A set of chains read together: a hex prefix of their key, one chain, or the rest."""

    #: Hex prefix of the request chains in it; ``None`` with ``exact`` unset: the rest.
    prefix: str | None = None
    #: Exactly this request chain (``verify --request-id``).
    exact: str | None = None

    @property
    def requests(self) -> bool:
        """True when the partition holds request chains (so request rows go with it)."""
        return self.prefix is not None or self.exact is not None

    @property
    def label(self) -> str:
        """For progress and logs."""
        return self.exact or (f"{self.prefix}*" if self.prefix is not None else "other chains")


def partitions(request_count: int, per_partition: int = 20_000) -> list[Partition]:
    """Hex-prefix partitions of about ``per_partition`` requests each (the rest apart)."""
    width = 1
    while len(_HEX) ** width * per_partition < request_count and width < 4:
        width += 1
    prefixes = [""]
    for _ in range(width):
        prefixes = [p + h for p in prefixes for h in _HEX]
    return [Partition(prefix=p) for p in prefixes]


def _successor(prefix: str) -> str | None:
    """The smallest hex string above every string starting with ``prefix`` (None: none)."""
    stripped = prefix.rstrip("f")
    if not stripped:
        return None
    return stripped[:-1] + _HEX[_HEX.index(stripped[-1]) + 1]


def _key_range(column: str, prefix: str) -> tuple[str, list[str]]:
    # 'g' closes the last range: keys past the hex digits (system, registry-…) are the rest.
    return f"{column} >= ? AND {column} < ?", [prefix, _successor(prefix) or "g"]


def _id_range(column: str, prefix: str, dialect: str) -> tuple[str, list[Any]]:
    def bound(text: str) -> Any:
        padded = text.ljust(32, "0")
        return uuid.UUID(padded) if dialect == "postgresql" else padded

    upper = _successor(prefix)
    if upper is None:
        return f"{column} >= ?", [bound(prefix)]
    return f"{column} >= ? AND {column} < ?", [bound(prefix), bound(upper)]


def _exact_id(dialect: str, key: str) -> Any:
    value = uuid.UUID(key)
    return value if dialect == "postgresql" else value.hex


# --------------------------------------------------------------------------- statements


def sqlite_uuid(column: str) -> str:
    """SQL turning SQLite's 32-hex-digit UUID text into the hyphenated form (NULL stays)."""
    c = column
    return (
        f"lower(substr({c},1,8)||'-'||substr({c},9,4)||'-'||substr({c},13,4)||'-'"
        f"||substr({c},17,4)||'-'||substr({c},21))"
    )


def sqlite_time(column: str) -> str:
    """SQL turning SQLite's ``YYYY-MM-DD HH:MM:SS.ffffff`` into the canonical ``...Z`` form."""
    return f"replace({column},' ','T')||'Z'"


_PG_TIME = "to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"


def postgres_time(column: str) -> str:
    """SQL formatting a ``timestamptz`` as the canonical ``...Z`` text."""
    return _PG_TIME.format(c=column)


# Both backends hand over the canonical text of ids and timestamps, formatted by the
# database (C code, and on PostgreSQL another process) rather than in Python per row.
_AUDIT_SELECT = {
    "sqlite": f"SELECT {sqlite_uuid('id')}, chain_key, seq, {sqlite_uuid('request_id')}, "
    f"event_type, severity, actor, agent_id, {sqlite_time('occurred_at')}, event_data, "
    "prev_hash, hash FROM audit_logs",
    "postgresql": "SELECT id::text, chain_key, seq, request_id::text, event_type, severity, "
    f"actor, agent_id, {postgres_time('occurred_at')}, event_data::text, prev_hash, hash "
    "FROM audit_logs",
}
_REQUESTS_SELECT = {
    "sqlite": f"SELECT {sqlite_uuid('id')}, audit_seq, audit_head, state, payload, result, "
    "purged_at IS NOT NULL, payload_digest FROM requests",
    "postgresql": "SELECT id::text, audit_seq, audit_head, state, payload::text, result::text, "
    "purged_at IS NOT NULL, payload_digest FROM requests",
}
_TRANSITIONS_SELECT = {
    "sqlite": f"SELECT {sqlite_uuid('request_id')}, {sqlite_uuid('id')}, from_state, to_state, "
    f"step, actor, reason, {sqlite_time('created_at')} FROM state_transitions",
    "postgresql": "SELECT request_id::text, id::text, from_state, to_state, step, actor, "
    f"reason, {postgres_time('created_at')} FROM state_transitions",
}


def _audit_ranges(partition: Partition) -> list[tuple[str, list[Any]]]:
    if partition.exact is not None:
        return [("chain_key = ?", [partition.exact])]
    if partition.prefix is not None:
        return [_key_range("chain_key", partition.prefix)]
    return [("chain_key < ?", ["0"]), ("chain_key >= ?", ["g"])]


async def audit_rows(
    pages: Pages, partition: Partition, after: tuple[str, int] | None = None
) -> AsyncIterator[Sequence[RawRow]]:
    """The partition's audit rows in ``(chain_key, seq)`` order, as raw rows, in pages.

    One range scan of ``uq_audit_logs_chain_key_seq`` per range (two for the rest).
    """
    for where, params in _audit_ranges(partition):
        sql = f"{_AUDIT_SELECT[pages.dialect]} WHERE {where} ORDER BY chain_key, seq"
        async for page in pages.pages(sql, params):
            yield page


async def chain_rows(pages: Pages, chain_key: str) -> list[RawRow]:
    """Every row of one chain, in ``seq`` order (for diagnosing a broken chain)."""
    return [
        row
        async for page in audit_rows(pages, Partition(exact=chain_key))
        for row in page  # (chain_key = ?) is what exact does
    ]


async def request_rows(pages: Pages, partition: Partition) -> dict[str, RequestRow]:
    """The partition's ``requests`` rows by chain key (primary-key range)."""
    if partition.exact is not None:
        where, params = "id = ?", [_exact_id(pages.dialect, partition.exact)]
    else:
        assert partition.prefix is not None
        where, params = _id_range("id", partition.prefix, pages.dialect)
    found: dict[str, RequestRow] = {}
    async for page in pages.pages(f"{_REQUESTS_SELECT[pages.dialect]} WHERE {where}", params):
        for key, seq, head, state, payload, result, purged, payload_digest in page:
            found[key] = RequestRow(
                key, seq, head, state, payload, result, bool(purged), payload_digest
            )
    return found


async def transition_rows(pages: Pages, partition: Partition) -> dict[str, list[Transition]]:
    """The partition's ``state_transitions`` rows by request (an index range scan)."""
    if partition.exact is not None:
        where, params = "request_id = ?", [_exact_id(pages.dialect, partition.exact)]
    else:
        assert partition.prefix is not None
        where, params = _id_range("request_id", partition.prefix, pages.dialect)
    found: dict[str, list[Transition]] = {}
    sql = f"{_TRANSITIONS_SELECT[pages.dialect]} WHERE {where} ORDER BY request_id, created_at"
    async for page in pages.pages(sql, params):
        for key, tid, src, dst, step, actor, reason, created in page:
            found.setdefault(key, []).append(
                Transition(src, dst, step, actor, reason, created, tid)
            )
    return found


async def chain_heads(pages: Pages) -> dict[str, tuple[int, str]]:
    """Heads of the chains without a request row (``audit_chains``: system, registry)."""
    heads: dict[str, tuple[int, str]] = {}
    async for page in pages.pages("SELECT chain_key, seq, head_hash FROM audit_chains", []):
        for key, seq, head in page:
            heads[key] = (seq, head)
    return heads


async def request_count(pages: Pages) -> int:
    """How many requests (to size the partitions)."""
    async for page in pages.pages("SELECT count(*) FROM requests", []):
        return int(page[0][0])
    return 0
