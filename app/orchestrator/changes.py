"""Writing changes: the statements that commit any number of typed changes in one transaction.

The orchestrator's hot path (the worker's group commit) and its cold paths (submit, cancel,
approve, resolve) all write through :func:`write_changes`, so there is one mechanism to
trust. The changes themselves are built, without I/O, by :mod:`app.orchestrator.transitions`.

Lock order (PostgreSQL; SQLite has one writer): request rows by id, then gates (approvals,
escalations), then chain heads of other chains (a chain-registry head, taken last by
:func:`write_changes` and skipped when locked, or the system chain's). Every writer takes
row locks in that order — the batch UPDATE sorts its rows by id, and a decision locks its
request before its gate — so two writers never wait on each other in a cycle; a deadlock
that still happens (another tool's transaction) is retried whole (``DatabaseConflict``).
A batch's refill claims come after the registry head but never wait (``SKIP LOCKED``).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from sqlalchemy import Table, and_, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.agents.base import DomainWrite
from app.audit.registry import register
from app.database import bulk
from app.database.models import (
    AgentExecution,
    Approval,
    AuditLog,
    Base,
    CallbackOutbox,
    Escalation,
    FileCleanup,
    Request,
    StateTransition,
)
from app.orchestrator.exceptions import IllegalTransition, NotFound
from app.orchestrator.records import (
    OPEN_GATE,
    Change,
    Gate,
    GateClosed,
    RequestRow,
    Snapshot,
)

REQUESTS: Table = Request.__table__  # type: ignore[assignment]  # declarative __table__ is a Table
_APPROVALS: Table = Approval.__table__  # type: ignore[assignment]  # same
_ESCALATIONS: Table = Escalation.__table__  # type: ignore[assignment]  # same
_FENCE = ("id", "version")


def _tables() -> tuple[tuple[str, Table], ...]:
    # Record rows of a change by attribute, in an insert order that respects foreign keys
    # (all of them point at requests only).
    def table(model: type[Base]) -> Table:
        return model.__table__  # type: ignore[return-value]  # declarative __table__ is a Table

    return (
        ("transitions", table(StateTransition)),
        ("executions", table(AgentExecution)),
        ("approvals", table(Approval)),
        ("escalations", table(Escalation)),
        ("cleanups", table(FileCleanup)),
        ("outbox", table(CallbackOutbox)),
        ("audit", table(AuditLog)),
    )


_RECORDS = _tables()


async def write_changes(session: AsyncSession, changes: Sequence[Change]) -> set[uuid.UUID]:
    """Write a batch of changes in the session's transaction; returns the ids that applied.

    Round trips: one multi-row INSERT of new requests (if any; a row whose idempotency
    key its submitter already used is skipped, and so is its change); one ``UPDATE ... FROM
    (VALUES ...) RETURNING id`` guarded by ``id AND version`` (primary key) per set of
    changed columns (usually one); the record rows (SQLite: one executemany INSERT per
    table; PostgreSQL: one statement of ``unnest`` INSERTs for all tables); then gate
    decisions and domain writes when there are any; then, when the batch creates or ends
    request chains, its chain-registry entry (:func:`app.audit.registry.register`: a
    locking read of a free registry head, an INSERT, an UPDATE). Changes whose request was
    written by someone else since their snapshot (version moved on) write nothing.
    """
    if not changes:
        return set()
    connection = await session.connection()
    new = [c.insert for c in changes if c.insert is not None]
    passed = await _insert_requests(session, new) if new else set()
    passed |= await _fenced_updates(connection, [c for c in changes if c.insert is None])
    kept = [c for c in changes if c.request_id in passed]
    await _insert_records(connection, kept)
    for change in kept:
        for gate in change.gates:
            await _close_gate(session, gate)
    domain = [write for change in kept for write in change.domain]
    if domain:
        await _apply_domain_writes(session, domain)
    if kept:
        # Chains opened and ended are on the record; the registry head is the last lock.
        await register(
            connection,
            [row for change in kept for row in change.transitions],
            [row for change in kept for row in change.audit],
            now=max(change.now for change in kept),
        )
    return passed


async def _insert_requests(session: AsyncSession, rows: Sequence[RequestRow]) -> set[uuid.UUID]:
    """Insert new request rows, skipping any that meets a unique key; the ids inserted."""
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    dialect_insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    statement = dialect_insert(REQUESTS).on_conflict_do_nothing().returning(REQUESTS.c.id)
    result = await session.execute(statement, list(rows))
    return {i if isinstance(i, uuid.UUID) else uuid.UUID(str(i)) for i in result.scalars()}


def _fenced_row(change: Change) -> tuple[tuple[str, ...], tuple[Any, ...]]:
    after = change.after
    values: dict[str, Any] = {
        **change.update,
        "version": after.version,
        "audit_seq": after.audit_seq,
        "audit_head": after.audit_head,
        "updated_at": change.now,
    }
    columns = tuple(sorted(values))
    return columns, (change.request_id, change.expected_version, *(values[c] for c in columns))


async def _fenced_updates(connection: AsyncConnection, changes: Sequence[Change]) -> set[uuid.UUID]:
    groups: dict[tuple[str, ...], list[tuple[Any, ...]]] = defaultdict(list)
    # Sorted by id: rows are locked in one order by every writer (see the module docstring).
    for change in sorted(changes, key=lambda c: c.request_id):
        columns, row = _fenced_row(change)
        groups[columns].append(row)
    passed: set[uuid.UUID] = set()
    for columns, rows in groups.items():
        ids = await bulk.update_returning(connection, REQUESTS, columns, _FENCE, rows)
        passed.update(i if isinstance(i, uuid.UUID) else uuid.UUID(str(i)) for i in ids)
    return passed


async def _insert_records(connection: AsyncConnection, kept: Sequence[Change]) -> None:
    groups: list[tuple[Table, tuple[str, ...], list[dict[str, Any]]]] = []
    for attribute, table in _RECORDS:
        rows: list[dict[str, Any]] = [row for change in kept for row in getattr(change, attribute)]
        if rows:
            groups.extend((table, columns, group) for columns, group in _by_columns(rows).items())
    await bulk.insert_all(connection, groups)


def _by_columns(rows: Iterable[dict[str, Any]]) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[tuple(row)].append(row)
    return groups


async def _close_gate(session: AsyncSession, gate: GateClosed) -> None:
    """Decide one gate (or every open gate of the request), only where it is still open."""
    table = _APPROVALS if gate.table == "approvals" else _ESCALATIONS
    if gate.table == "approvals":
        values: dict[str, Any] = {"decided_by": gate.by, "decided_at": gate.at}
    else:
        values = {"resolved_by": gate.by, "resolved_at": gate.at, "resolution": gate.resolution}
    if gate.gate_id is not None:
        values["note"] = gate.note
        where = table.c.id == gate.gate_id
    else:
        where = table.c.request_id == gate.request_id
    await session.execute(
        update(table)
        .where(where, table.c.status == OPEN_GATE[gate.table])
        .values(status=gate.status, **values)
    )


async def _apply_domain_writes(session: AsyncSession, writes: Sequence[DomainWrite]) -> None:
    inserts: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for write in writes:
        if write.match is None:
            inserts[write.table].append(dict(write.values))
    for table_name, rows in inserts.items():
        await session.execute(insert(Base.metadata.tables[table_name]), rows)
    for write in writes:
        if write.match is not None:
            table = Base.metadata.tables[write.table]
            where = and_(*(table.c[key] == value for key, value in write.match.items()))
            await session.execute(update(table).where(where).values(dict(write.values)))


async def lock_snapshot(session: AsyncSession, request_id: uuid.UUID) -> Snapshot:
    """Read a request under its row lock (PostgreSQL ``FOR NO KEY UPDATE``: it does not block
    the foreign-key checks of rows inserted for the request; SQLite's writer lock is held)."""
    row = (
        await session.execute(
            select(REQUESTS).where(REQUESTS.c.id == request_id).with_for_update(key_share=True)
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"no request {request_id}")
    return Snapshot.from_row(row)


async def gate_request(
    session: AsyncSession, table: Literal["approvals", "escalations"], gate_id: uuid.UUID
) -> uuid.UUID:
    """The request a gate belongs to, read without a lock (lock the request first)."""
    gates = _APPROVALS if table == "approvals" else _ESCALATIONS
    request_id = (
        await session.execute(select(gates.c.request_id).where(gates.c.id == gate_id))
    ).scalar_one_or_none()
    if request_id is None:
        raise NotFound(f"no {table[:-1]} {gate_id}")
    return uuid.UUID(str(request_id)) if not isinstance(request_id, uuid.UUID) else request_id


async def lock_gate(
    session: AsyncSession, table: Literal["approvals", "escalations"], gate_id: uuid.UUID
) -> Gate:
    """Read a gate under its row lock (after its request's, per the lock order)."""
    gates = _APPROVALS if table == "approvals" else _ESCALATIONS
    reason = gates.c.reason if table == "escalations" else None
    columns = [gates.c.id, gates.c.request_id, gates.c.step, gates.c.status]
    if reason is not None:
        columns.append(reason)
    row = (
        await session.execute(
            select(*columns).where(gates.c.id == gate_id).with_for_update(key_share=True)
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"no {table[:-1]} {gate_id}")
    return Gate(
        id=row.id,
        request_id=row.request_id,
        step=row.step,
        status=row.status,
        reason=row.reason if reason is not None else None,
    )


def one_change(passed: set[uuid.UUID], change: Change) -> None:
    """Raise if a single change written under a row lock did not pass its fence (a bug)."""
    if change.request_id not in passed:
        raise IllegalTransition(f"request {change.request_id} changed while locked")
