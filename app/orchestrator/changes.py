"""Request changes: everything one write does to one request, and the batch that commits them.

A :class:`RequestChange` carries the request row's new column values, the audit rows
(already hashed onto the chain head), the ``state_transitions`` row for a change of state,
the ``agent_executions`` row, any approval or escalation opened, and the agent's domain
rows. :func:`write_changes` commits any number of them in one round of statements: one
fenced UPDATE of ``requests`` for the whole batch, then one multi-row INSERT per table
(on PostgreSQL, all of them in one statement).
The orchestrator's hot path (the worker's group commit) and its cold paths (submit, cancel,
approve, resolve) all write through it, so there is one mechanism to trust.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.base import DomainWrite
from app.audit.chain import ChainHead, chain_key_for
from app.audit.events import AuditEvent, StateChanged
from app.database import bulk
from app.database.models import (
    AgentExecution,
    Approval,
    AuditLog,
    Base,
    Escalation,
    Request,
    StateTransition,
)
from app.orchestrator.exceptions import IllegalTransition, NotFound
from app.orchestrator.states import State, can_transition

REQUESTS: Table = Request.__table__  # type: ignore[assignment]
_TABLES: dict[str, Table] = {
    "audit_logs": AuditLog.__table__,  # type: ignore[dict-item]
    "state_transitions": StateTransition.__table__,  # type: ignore[dict-item]
    "agent_executions": AgentExecution.__table__,  # type: ignore[dict-item]
    "approvals": Approval.__table__,  # type: ignore[dict-item]
    "escalations": Escalation.__table__,  # type: ignore[dict-item]
}
#: Insert order respects foreign keys (all of these point at requests only).
_INSERT_ORDER = ("state_transitions", "agent_executions", "approvals", "escalations", "audit_logs")


@dataclass
class Snapshot:
    """What a writer knows of a request row: enough to build the next change."""

    id: uuid.UUID
    kind: str
    state: State
    step_index: int
    current_step: str | None
    attempt: int
    max_attempt: int
    version: int
    audit_seq: int
    audit_head: str
    payload: dict[str, Any]
    result: dict[str, Any] | None
    submitted_by: str
    priority: int
    lease_owner: str | None = None
    #: Digest of the current step's input (payload and earlier outputs), computed once by
    #: :func:`app.orchestrator.steps.input_digest` and carried while the result is unchanged.
    input_digest: str | None = None

    @classmethod
    def from_row(cls, row: Any) -> Snapshot:
        """Build from a ``requests`` row (ORM object or Core row)."""
        return cls(
            id=row.id,
            kind=row.kind,
            state=State(row.state),
            step_index=row.step_index,
            current_step=row.current_step,
            attempt=row.attempt,
            max_attempt=row.max_attempt,
            version=row.version,
            audit_seq=row.audit_seq,
            audit_head=row.audit_head,
            payload=row.payload,
            result=row.result,
            submitted_by=row.submitted_by,
            priority=row.priority,
            lease_owner=row.lease_owner,
        )


@dataclass
class RequestChange:
    """One fenced write to one request and everything recorded with it."""

    snapshot: Snapshot
    actor: str
    now: datetime
    values: dict[str, Any] = field(default_factory=dict)
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    domain_writes: list[DomainWrite] = field(default_factory=list)
    #: The input digest of the step this change starts (set by ``start_attempt``), so the
    #: next step's execution row does not digest the same input again.
    next_input_digest: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        snap = self.snapshot
        self.head = ChainHead(chain_key_for(snap.id), snap.audit_seq, snap.audit_head)
        self.state = snap.state

    # -- building -----------------------------------------------------------------------

    def event(self, event: AuditEvent, *, agent_id: str | None = None) -> RequestChange:
        """Append ``event`` to the request's chain."""
        row = self.head.append(
            event,
            actor=self.actor,
            occurred_at=self.now,
            request_id=self.snapshot.id,
            agent_id=agent_id,
        )
        self.rows["audit_logs"].append(row)
        return self

    def transition(self, target: State, *, step: str | None, reason: str | None) -> RequestChange:
        """Change state (checked against ``ALLOWED``) with its transition row and event."""
        if not can_transition(self.state, target):
            raise IllegalTransition(
                f"request {self.snapshot.id} is {self.state}; it cannot become {target}"
            )
        self.rows["state_transitions"].append(
            {
                "id": uuid.uuid4(),
                "request_id": self.snapshot.id,
                "from_state": str(self.state),
                "to_state": str(target),
                "step": step,
                "actor": self.actor,
                "reason": reason,
                "created_at": self.now,
            }
        )
        self.event(StateChanged(from_state=self.state, to_state=target, step=step, reason=reason))
        self.state = target
        self.values["state"] = str(target)
        return self

    def set(self, **values: Any) -> RequestChange:
        """Set request columns."""
        self.values.update(values)
        return self

    def add(self, table: str, row: dict[str, Any]) -> RequestChange:
        """Insert ``row`` into one of the request's record tables."""
        self.rows[table].append(row)
        return self

    def domain(self, writes: Iterable[DomainWrite]) -> RequestChange:
        """Record an agent's domain rows with this change."""
        self.domain_writes.extend(writes)
        return self

    # -- after commit ---------------------------------------------------------------------

    def committed_snapshot(self) -> Snapshot:
        """The snapshot as it is once this change committed."""
        snap = self.snapshot
        merged = {**snap.__dict__}
        for key in (
            "step_index",
            "current_step",
            "attempt",
            "max_attempt",
            "result",
            "lease_owner",
        ):
            if key in self.values:
                merged[key] = self.values[key]
        if self.next_input_digest is not None:
            merged["input_digest"] = self.next_input_digest
        elif "result" in self.values:
            merged["input_digest"] = None
        merged.update(
            state=self.state,
            version=snap.version + 1,
            audit_seq=self.head.seq,
            audit_head=self.head.hash,
        )
        return Snapshot(**merged)


def _row_values(change: RequestChange) -> dict[str, Any]:
    snap = change.snapshot
    values = dict(change.values)
    values.update(
        {
            "version": snap.version + 1,
            "audit_seq": change.head.seq,
            "audit_head": change.head.hash,
            "updated_at": change.now,
            "where:id": snap.id,
            "where:version": snap.version,
        }
    )
    return values


async def _fenced_updates(
    session: AsyncSession, changes: Sequence[RequestChange]
) -> set[uuid.UUID]:
    connection = await session.connection()
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for change in changes:
        values = _row_values(change)
        groups[tuple(sorted(k for k in values if not k.startswith("where:")))].append(values)
    passed: set[uuid.UUID] = set()
    for columns, rows in groups.items():
        ids = await bulk.update_returning(connection, REQUESTS, columns, ("id", "version"), rows)
        passed.update(i if isinstance(i, uuid.UUID) else uuid.UUID(str(i)) for i in ids)
    return passed


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


async def write_changes(session: AsyncSession, changes: Sequence[RequestChange]) -> set[uuid.UUID]:
    """Commit-ready write of a batch of changes; returns the ids whose fence held.

    Round trips: one ``UPDATE ... FROM (VALUES ...) RETURNING id`` guarded by ``id AND
    version`` (primary key) per set of changed columns (usually one), then the record rows
    (SQLite: one executemany INSERT per table; PostgreSQL: one statement of ``unnest``
    INSERTs for all tables), then domain writes. The hot
    statements are plain driver SQL (:mod:`app.database.bulk`). Changes whose
    request was written by someone else since their snapshot (version moved on) write
    nothing.
    """
    if not changes:
        return set()
    passed = await _fenced_updates(session, changes)
    await insert_records(session, [c for c in changes if c.snapshot.id in passed])
    return passed


async def insert_records(session: AsyncSession, kept: Sequence[RequestChange]) -> None:
    """Insert the record rows and domain writes of changes whose request row is written."""
    connection = await session.connection()
    groups: list[tuple[Table, tuple[str, ...], list[dict[str, Any]]]] = []
    for name in _INSERT_ORDER:
        rows = [row for change in kept for row in change.rows.get(name, ())]
        if not rows:
            continue
        table = _TABLES[name]
        groups.extend((table, columns, group) for columns, group in _by_columns(rows).items())
    await bulk.insert_all(connection, groups)
    domain = [write for change in kept for write in change.domain_writes]
    if domain:
        await _apply_domain_writes(session, domain)


def _by_columns(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[tuple(row)].append(row)
    return groups


async def lock_snapshot(session: AsyncSession, request_id: uuid.UUID) -> Snapshot:
    """Read a request under a row lock (``FOR UPDATE``; SQLite's writer lock is already held)."""
    row = (
        await session.execute(select(REQUESTS).where(REQUESTS.c.id == request_id).with_for_update())
    ).one_or_none()
    if row is None:
        raise NotFound(f"no request {request_id}")
    return Snapshot.from_row(row)


def one_change(passed: set[uuid.UUID], change: RequestChange) -> None:
    """Raise if a single change written under a row lock did not pass its fence (a bug)."""
    if change.snapshot.id not in passed:
        raise IllegalTransition(f"request {change.snapshot.id} changed while locked")


def merge_result(previous: Mapping[str, Any] | None, step: str, output: Any) -> dict[str, Any]:
    """The request's accumulated step outputs with ``step``'s added."""
    return {**(previous or {}), step: output}
