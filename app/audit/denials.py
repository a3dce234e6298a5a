"""Refusals on the record: every 401/403 of the API or the console is an audit event.

A refusal appends ``access_denied`` to the system chain; a refused read of the audit trail
itself also appends ``audit_accessed`` with ``denied: true`` (so the access log of the trail
is complete). The caller is answered only once its record committed; if it cannot be
written the caller must fail: a refusal is never left unrecorded.

Refusals are **group-committed** (:class:`DenialLog`, one per database): each caller queues
its events and waits; one writer task appends everything queued in one transaction, after
lingering a few milliseconds so that a burst becomes one batch, and exits when the queue is
empty. Unauthenticated traffic therefore costs the database a few short transactions per
second, not one transaction per call holding the system chain's head row, and does not
compete with the workers' commits for that lock. What that means:

* a crash loses no answered refusal (the callers of an unwritten batch got no answer);
* a batch that cannot be written fails every caller in it (the API answers 503);
* at most ``max_waiting`` refusals wait at once: past that :class:`DenialLogFull` turns the
  call away (503 with ``Retry-After``) before anything is queued, and says so in the log.
"""

from __future__ import annotations

import asyncio
import uuid
import weakref
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from app.audit.events import AccessDenied, AuditAccessed, AuditEvent
from app.audit.exceptions import AuditError
from app.audit.system import SystemEntry, append_system
from app.database import Database
from app.database.types import utcnow

log = structlog.get_logger(__name__)

#: Longest path kept in the record (paths carry identifiers only, never a query string).
MAX_PATH = 512


@dataclass(frozen=True)
class Denial:
    """One refused call: who (``actor``, ``role``, ``key_prefix``), what, and why."""

    actor: str
    method: str
    route: str
    path: str
    status: int
    reason: str
    role: str | None = None
    key_prefix: str | None = None
    #: The audit-trail action refused (``query``, ``trail``, ...), when it was one.
    audit_action: str | None = None
    #: The request reached for, when it exists (puts the attempt on that request's trail).
    request_id: uuid.UUID | None = None

    def entries(self) -> list[SystemEntry]:
        """The system-chain events that record it."""
        path = self.path[:MAX_PATH]
        events: list[AuditEvent] = [
            AccessDenied(
                method=self.method,
                route=self.route,
                path=path,
                status=self.status,
                reason=self.reason,
                role=self.role,
                key_prefix=self.key_prefix,
            )
        ]
        if self.audit_action is not None:
            events.append(
                AuditAccessed(
                    action=self.audit_action,
                    filters={"route": self.route, "path": path},
                    row_count=0,
                    denied=True,
                )
            )
        return [SystemEntry(e, actor=self.actor, request_id=self.request_id) for e in events]


class DenialLogFull(AuditError):
    """Too many refused calls are waiting to be recorded; retry in a moment."""

    code = "denial_log_full"


_Item = tuple[Sequence[SystemEntry], "asyncio.Future[None]"]


class DenialLog:
    """Group-commits refusals' events to the system chain (see the module docstring)."""

    def __init__(
        self,
        database: Database,
        *,
        max_batch: int = 1000,
        max_waiting: int = 20_000,
        linger: float = 0.02,
    ) -> None:
        self.database = database
        self.max_batch = max_batch
        self.max_waiting = max_waiting
        self.linger = linger
        self._queue: deque[_Item] = deque()
        self._waiting = 0
        self._writer: asyncio.Task[None] | None = None
        #: Batches written, refusals in them, and refusals turned away while full.
        self.batches = 0
        self.recorded = 0
        self.turned_away = 0

    async def record(self, entries: Sequence[SystemEntry]) -> None:
        """Queue one refusal's events; return once they are committed.

        Raises :class:`DenialLogFull` (nothing queued) past ``max_waiting``, or whatever
        the batch's transaction raised.
        """
        if self._waiting + len(entries) > self.max_waiting:
            self.turned_away += 1
            log.warning("denial_log_full", waiting=self._waiting, turned_away=self.turned_away)
            raise DenialLogFull()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting += len(entries)
        self._queue.append((entries, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="denial-log")
        await future

    async def _drain(self) -> None:
        # Runs while there is something to write; the next refusal starts a new one.
        while self._queue:
            if self.linger:
                await asyncio.sleep(self.linger)
            batch: list[_Item] = []
            size = 0
            while self._queue and size < self.max_batch:
                item = self._queue.popleft()
                batch.append(item)
                size += len(item[0])
            await self._write(batch, size)

    async def _write(self, batch: list[_Item], size: int) -> None:
        entries = [entry for events, _ in batch for entry in events]
        try:
            async with self.database.session() as session:
                await append_system(session, entries, utcnow())
        except Exception as exc:
            log.error("denials_not_recorded", refusals=len(batch), error=str(exc))
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
        else:
            self.batches += 1
            self.recorded += len(batch)
            for _, future in batch:
                if not future.done():
                    future.set_result(None)
        finally:
            self._waiting -= size


_LOGS: weakref.WeakKeyDictionary[Database, DenialLog] = weakref.WeakKeyDictionary()


def denial_log(database: Database) -> DenialLog:
    """The database's :class:`DenialLog` (made on first use)."""
    found = _LOGS.get(database)
    if found is None:
        found = _LOGS[database] = DenialLog(database)
    return found


def configure_denial_log(
    database: Database, *, max_batch: int = 1000, max_waiting: int = 20_000, linger: float = 0.02
) -> DenialLog:
    """Give ``database`` a :class:`DenialLog` with other bounds; refusals already waiting
    finish on the old one."""
    made = DenialLog(database, max_batch=max_batch, max_waiting=max_waiting, linger=linger)
    _LOGS[database] = made
    return made


async def record_denial(database: Database, denial: Denial) -> None:
    """Record the refusal (and, for audit-trail reads, its access record), batched with
    other refusals; return once it is committed (see the module docstring)."""
    await denial_log(database).record(denial.entries())
