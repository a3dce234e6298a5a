"""Reading the audit trail: filters, keyset pages, streams and one request's trail.

Every function here takes a session and only reads; :mod:`app.audit.access` wraps them so
that each read is itself audited. Pages are keyset-paginated on ``(occurred_at, id)`` with
an opaque cursor (never OFFSET, so page 10,000 costs what page 1 costs); streams use a
server-side cursor on PostgreSQL and a stepping cursor on SQLite, so memory stays constant.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, get_args

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator
from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    Text,
    cast,
    literal_column,
    select,
    tuple_,
    type_coerce,
)
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.canonical import RawRow
from app.audit.chain import digest, format_timestamp
from app.audit.events import EVENT_TYPES, Severity
from app.audit.exceptions import InvalidFilter
from app.audit.reader import postgres_time, sqlite_time, sqlite_uuid
from app.audit.records import AuditRecord
from app.database import Database
from app.database.models import AuditLog, Recording, Request

SEVERITIES: tuple[str, ...] = get_args(Severity)
#: Largest page a caller may ask for.
MAX_PAGE = 1000
_STREAM_BATCH = 1000

#: The ``audit_logs`` columns every read selects, in :data:`app.audit.records.COLUMNS` order.
COLUMNS = (
    AuditLog.id,
    AuditLog.chain_key,
    AuditLog.seq,
    AuditLog.request_id,
    AuditLog.event_type,
    AuditLog.severity,
    AuditLog.actor,
    AuditLog.agent_id,
    AuditLog.occurred_at,
    AuditLog.event_data,
    AuditLog.prev_hash,
    AuditLog.hash,
)


class AuditFilter(BaseModel):
    """What a compliance query selects; every field is optional and they combine with AND.

    ``since`` is inclusive and ``until`` exclusive; both are UTC. ``patient_id`` selects
    the requests whose domain row names that patient (transcription ``recordings``; a
    research request has no single patient, so it never matches).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    request_id: uuid.UUID | None = None
    actor: str | None = None
    agent_id: str | None = None
    event_types: tuple[str, ...] = ()
    severity: Severity | None = None
    since: datetime | None = None
    until: datetime | None = None
    patient_id: str | None = None

    @field_validator("event_types")
    @classmethod
    def _known_event_types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if name not in EVENT_TYPES:
                raise ValueError(
                    f"unknown event type {name!r} (one of: {', '.join(sorted(EVENT_TYPES))})"
                )
        return tuple(sorted(set(value)))

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @field_validator("actor", "agent_id", "patient_id")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be blank")
        return value

    @model_validator(mode="after")
    def _ordered_window(self) -> AuditFilter:
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError("since must be before until")
        return self

    @classmethod
    def parse(cls, **raw: Any) -> AuditFilter:
        """Build from loose input (strings from a CLI or query string); errors name the field.

        Times accept ISO 8601 (``2026-11-23``, ``2026-11-23T09:00:00Z``); a time without
        a zone is read as UTC.
        """
        values = {k: v for k, v in raw.items() if v is not None and v != () and v != []}
        for name in ("since", "until"):
            if isinstance(values.get(name), str):
                values[name] = parse_time(values[name], name)
        if isinstance(values.get("request_id"), str):
            try:
                values["request_id"] = uuid.UUID(values["request_id"])
            except ValueError:
                raise InvalidFilter(
                    f"{values['request_id']!r} is not a UUID", field="request_id"
                ) from None
        if isinstance(values.get("event_types"), str):
            values["event_types"] = (values["event_types"],)
        if "severity" in values and values["severity"] not in SEVERITIES:
            raise InvalidFilter(
                f"unknown severity {values['severity']!r} (one of: {', '.join(SEVERITIES)})",
                field="severity",
            )
        try:
            return cls(**values)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = str(first["loc"][0]) if first["loc"] else "since"
            message = str(first["msg"]).removeprefix("Value error, ")
            raise InvalidFilter(message, field=field) from None

    def to_json(self) -> dict[str, Any]:
        """The filters that are set, JSON-ready (what the access record stores)."""
        out: dict[str, Any] = {}
        for name, value in self:
            if value is None or value == ():
                continue
            if isinstance(value, datetime):
                out[name] = format_timestamp(value)
            elif isinstance(value, uuid.UUID):
                out[name] = str(value)
            elif isinstance(value, tuple):
                out[name] = list(value)
            else:
                out[name] = value
        return out


def parse_time(value: str, field: str) -> datetime:
    """An ISO 8601 date or time as aware UTC (naive means UTC); errors name ``field``."""
    text = value.strip()
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            return datetime(d.year, d.month, d.day, tzinfo=UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidFilter(
            f"{value!r} is not an ISO 8601 time (e.g. 2026-11-23T09:00:00Z)", field=field
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# --------------------------------------------------------------------------- cursors


def encode_cursor(record: AuditRecord, audit_filter: AuditFilter) -> str:
    """An opaque cursor: the last row's ``(occurred_at, id)``, bound to the filters used."""
    raw = json.dumps(
        [format_timestamp(record.occurred_at), str(record.id), _fingerprint(audit_filter)]
    )
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, audit_filter: AuditFilter) -> tuple[datetime, uuid.UUID]:
    """Read a cursor from :func:`encode_cursor`; a foreign or mismatched one is refused."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        stamp, rid, fingerprint = json.loads(base64.urlsafe_b64decode(padded.encode()))
        position = datetime.fromisoformat(stamp), uuid.UUID(rid)
    except (ValueError, TypeError, binascii.Error):
        raise InvalidFilter("not a cursor this query issued", field="cursor") from None
    if fingerprint != _fingerprint(audit_filter):
        raise InvalidFilter("was issued for different filters", field="cursor")
    return position


def _fingerprint(audit_filter: AuditFilter) -> str:
    return digest(audit_filter.to_json())[:16]


# --------------------------------------------------------------------------- queries


@dataclass(frozen=True)
class AuditPage:
    """One page of records and the cursor of the next page (``None`` on the last)."""

    items: list[AuditRecord]
    next_cursor: str | None


def _conditions(audit_filter: AuditFilter) -> list[ColumnElement[bool]]:
    f = audit_filter
    where: list[ColumnElement[bool]] = []
    if f.request_id is not None:
        where.append(AuditLog.request_id == f.request_id)
    if f.patient_id is not None:
        where.append(
            AuditLog.request_id.in_(
                select(Recording.request_id).where(Recording.patient_id == f.patient_id)
            )
        )
    if f.actor is not None:
        where.append(AuditLog.actor == f.actor)
    if f.agent_id is not None:
        where.append(AuditLog.agent_id == f.agent_id)
    if len(f.event_types) == 1:
        where.append(AuditLog.event_type == f.event_types[0])
    elif f.event_types:
        where.append(AuditLog.event_type.in_(f.event_types))
    if f.severity is not None:
        where.append(AuditLog.severity == f.severity)
    if f.since is not None:
        where.append(AuditLog.occurred_at >= f.since)
    if f.until is not None:
        where.append(AuditLog.occurred_at < f.until)
    return where


def select_records(
    audit_filter: AuditFilter,
    *,
    after: tuple[datetime, uuid.UUID] | None = None,
    newest_first: bool = False,
) -> Select[*tuple[Any, ...]]:
    """The filtered ``audit_logs`` SELECT in ``(occurred_at, id)`` order, past ``after``."""
    query = select(*COLUMNS).where(*_conditions(audit_filter))
    key = tuple_(AuditLog.occurred_at, AuditLog.id)
    if after is not None:
        query = query.where(key < after if newest_first else key > after)
    if newest_first:
        return query.order_by(AuditLog.occurred_at.desc(), AuditLog.id.desc())
    return query.order_by(AuditLog.occurred_at, AuditLog.id)


async def query_page(
    session: AsyncSession,
    audit_filter: AuditFilter,
    *,
    cursor: str | None = None,
    limit: int = 100,
    newest_first: bool = False,
) -> AuditPage:
    """One keyset page of matching records, oldest first (or newest first).

    Index by filter: none or a time window → ``ix_audit_logs_occurred_at_id`` (the keyset
    itself); ``request_id`` → ``ix_audit_logs_request_id``; ``patient_id`` →
    ``ix_recordings_patient_id`` then ``ix_audit_logs_request_id``; ``event_types`` →
    ``ix_audit_logs_event_type_occurred_at``; ``actor`` → ``ix_audit_logs_actor_occurred_at``;
    ``agent_id`` → ``ix_audit_logs_agent_id_occurred_at``; ``severity`` →
    ``ix_audit_logs_severity_occurred_at``. The database picks the most selective.
    """
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidFilter(f"must be from 1 to {MAX_PAGE}", field="limit")
    after = decode_cursor(cursor, audit_filter) if cursor else None
    query = select_records(audit_filter, after=after, newest_first=newest_first)
    rows = (await session.execute(query.limit(limit + 1))).all()
    items = [AuditRecord.from_row(row) for row in rows[:limit]]
    more = len(rows) > limit
    return AuditPage(items, encode_cursor(items[-1], audit_filter) if more else None)


async def stream_records(
    session: AsyncSession, audit_filter: AuditFilter, *, newest_first: bool = False
) -> AsyncIterator[AuditRecord]:
    """Every matching record in ``(occurred_at, id)`` order, streamed in constant memory.

    One statement over a server-side cursor (``yield_per``), so the rows are one consistent
    snapshot. Indexes as :func:`query_page`.
    """
    query = select_records(audit_filter, newest_first=newest_first)
    result = await session.stream(query.execution_options(yield_per=_STREAM_BATCH))
    try:
        # One await per batch: iterating row by row costs a greenlet switch per row.
        async for batch in result.partitions():
            for row in batch:
                yield AuditRecord.from_row(row)
    finally:
        await result.close()


def _raw_columns(dialect: str) -> list[Any]:
    """The columns as the canonical text of :mod:`app.audit.canonical`, formatted by the
    database (ids and timestamps), so the driver hands them over without conversion."""
    if dialect == "postgresql":
        return [
            cast(AuditLog.id, Text),
            AuditLog.chain_key,
            AuditLog.seq,
            cast(AuditLog.request_id, Text),
            AuditLog.event_type,
            AuditLog.severity,
            AuditLog.actor,
            AuditLog.agent_id,
            literal_column(postgres_time("audit_logs.occurred_at")),
            cast(AuditLog.event_data, Text),
            AuditLog.prev_hash,
            AuditLog.hash,
        ]
    return [
        literal_column(sqlite_uuid("audit_logs.id")),
        type_coerce(AuditLog.chain_key, String),
        type_coerce(AuditLog.seq, Integer),
        literal_column(sqlite_uuid("audit_logs.request_id")),
        type_coerce(AuditLog.event_type, String),
        type_coerce(AuditLog.severity, String),
        type_coerce(AuditLog.actor, String),
        type_coerce(AuditLog.agent_id, String),
        literal_column(sqlite_time("audit_logs.occurred_at")),
        type_coerce(AuditLog.event_data, String),
        type_coerce(AuditLog.prev_hash, String),
        type_coerce(AuditLog.hash, String),
    ]


async def stream_raw(
    session: AsyncSession, audit_filter: AuditFilter, *, newest_first: bool = False
) -> AsyncIterator[Sequence[RawRow]]:
    """Every matching row as a raw row (:mod:`app.audit.canonical`), a page at a time.

    What exports that need no typed events (JSON, JSONL, CSV) read: the same statement and
    indexes as :func:`stream_records`, without building Python objects per column.
    """
    dialect = (await session.connection()).dialect.name
    query = select_records(audit_filter, newest_first=newest_first).with_only_columns(
        *_raw_columns(dialect)
    )
    result = await session.stream(query.execution_options(yield_per=_STREAM_BATCH))
    try:
        async for batch in result.partitions():
            yield batch
    finally:
        await result.close()


async def trail_records(session: AsyncSession, request_id: uuid.UUID) -> list[AuditRecord]:
    """One request's timeline: its own chain and system-chain events about it, in time order.

    Index: ``ix_audit_logs_request_id`` (a request has tens of rows, sorted in memory).
    """
    query = (
        select(*COLUMNS)
        .where(AuditLog.request_id == request_id)
        .order_by(AuditLog.occurred_at, AuditLog.seq, AuditLog.id)
    )
    records = [AuditRecord.from_row(row) for row in await session.execute(query)]
    if not records and await session.get(Request, request_id) is None:
        raise InvalidFilter(f"no request {request_id}", field="request_id")
    return records


@contextlib.asynccontextmanager
async def snapshot_session(database: Database) -> AsyncIterator[AsyncSession]:
    """A read session whose statements all see one snapshot.

    PostgreSQL: ``REPEATABLE READ`` (READ COMMITTED, the default, gives each statement its
    own snapshot, and a chain head read before its rows would look stale). SQLite: a read
    transaction already is one snapshot.
    """
    async with database.read_session() as session:
        if database.dialect == "postgresql":
            await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        yield session
