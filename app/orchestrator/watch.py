"""Watching requests: one shared poller per process wakes everyone waiting for a change.

Long polls (``GET /v1/requests/{id}?wait=``), event streams (``GET .../events``) and
``ledgerflow requests wait`` all wait for a request to change. Each registers a
:class:`Watch` with the process's :class:`RequestWatcher`, whose one task reads
``(id, state, version)`` of every watched request in one query by primary key every
``WATCH_POLL_SECONDS`` and wakes the watches whose row moved. The database sees one small
query per interval however many callers wait, and none while nobody does. Watches are
capped (``WATCH_MAX_WAITERS``): past the cap, :class:`TooManyWaiters`.

:func:`wait_for_change` is the long poll; :func:`state_events` reads a request's
``state_transitions`` as numbered :class:`StateEvent` s (the event stream's events).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import and_, or_, select

from app.database import Database
from app.database.models import Request, StateTransition
from app.orchestrator.exceptions import TooManyWaiters
from app.orchestrator.states import SETTLED, TERMINAL, State

if TYPE_CHECKING:
    from app.orchestrator.reads import Reader
    from app.orchestrator.views import RequestView

log = structlog.get_logger(__name__)

#: Ids per polling query (well under SQLite's bound-parameter limit).
_CHUNK = 500


class Watch:
    """One caller's registration for one request: what the poller last read of its row.

    ``seen`` counts the moves the poller noticed (its first read of the row counts as
    one): a caller keeps ``seen`` as a mark and :meth:`wait_past` it. Use as a context
    manager, or call :meth:`close` (idempotent) when done.
    """

    def __init__(self, watcher: RequestWatcher, request_id: uuid.UUID) -> None:
        self.watcher = watcher
        self.request_id = request_id
        #: The state and version at the last poll (None until the first, or no such row).
        self.state: str | None = None
        self.version: int | None = None
        self.seen = 0
        #: The watcher is shutting down: stop waiting.
        self.closing = False
        self._closed = False
        self._moved = asyncio.Event()

    def moved(self, state: str | None, version: int | None) -> None:
        """The poller read the row (first time, or it changed): wake the caller."""
        self.state, self.version = state, version
        self.seen += 1
        self._wake()

    def _wake(self) -> None:
        event, self._moved = self._moved, asyncio.Event()
        event.set()

    async def wait_past(self, mark: int, timeout: float) -> bool:
        """Wait until the poller has seen the row move past ``mark``: True, or False after
        ``timeout`` seconds (or at once when the watcher is closing)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.seen <= mark:
            remaining = deadline - loop.time()
            if self.closing or remaining <= 0:
                return False
            moved = self._moved
            try:
                async with asyncio.timeout(remaining):
                    await moved.wait()
            except TimeoutError:
                return False
        return True

    def close(self) -> None:
        """Stop watching (the poller forgets the request once nobody watches it)."""
        if not self._closed:
            self._closed = True
            self.watcher._forget(self)

    def __enter__(self) -> Watch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class RequestWatcher:
    """The process's one poller of watched requests (see the module docstring)."""

    def __init__(
        self, database: Database, *, poll_seconds: float = 0.25, max_waiters: int = 1000
    ) -> None:
        self.database = database
        self.poll_seconds = poll_seconds
        self.max_waiters = max_waiters
        self._watches: dict[uuid.UUID, set[Watch]] = {}
        self._count = 0
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        #: Polling queries run so far (tests check that waiting does not hammer the database).
        self.polls = 0

    @property
    def waiters(self) -> int:
        """Watches registered right now."""
        return self._count

    def watch(self, request_id: uuid.UUID) -> Watch:
        """Register a watch of ``request_id``; :class:`TooManyWaiters` past the cap."""
        if self._closing:
            raise TooManyWaiters("the server is shutting down; try again shortly")
        if self._count >= self.max_waiters:
            raise TooManyWaiters(
                f"{self._count} callers are already waiting (WATCH_MAX_WAITERS="
                f"{self.max_waiters}); try again shortly"
            )
        watch = Watch(self, request_id)
        self._watches.setdefault(request_id, set()).add(watch)
        self._count += 1
        self._ensure_polling()
        return watch

    def _forget(self, watch: Watch) -> None:
        watches = self._watches.get(watch.request_id)
        if watches is None or watch not in watches:
            return
        watches.discard(watch)
        self._count -= 1
        if not watches:
            del self._watches[watch.request_id]

    def close(self) -> None:
        """Wake every waiter to answer now (server shutdown); refuse new watches."""
        self._closing = True
        for watches in self._watches.values():
            for watch in watches:
                watch.closing = True
                watch._wake()

    def _ensure_polling(self) -> None:
        loop = asyncio.get_running_loop()
        # A task of another (finished) event loop never runs again: start one on this loop.
        if self._task is None or self._task.done() or self._loop is not loop:
            self._loop = loop
            self._task = loop.create_task(self._poll(), name="request-watcher")

    async def _poll(self) -> None:
        while self._watches:
            ids = list(self._watches)
            try:
                rows = await self._read(ids)
            except Exception as exc:
                # Waiters keep waiting (each until its own timeout); the next poll retries.
                log.warning("watch_poll_failed", error=str(exc), error_type=type(exc).__name__)
            else:
                self._apply(ids, rows)
            await asyncio.sleep(self.poll_seconds)
        # No await between the check and here: a watch registered now starts a new task.
        self._task = None

    async def _read(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, tuple[str, int]]:
        """``(state, version)`` of each id: one primary-key ``IN`` query per 500 ids."""
        found: dict[uuid.UUID, tuple[str, int]] = {}
        async with self.database.read_session() as session:
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                query = select(Request.id, Request.state, Request.version).where(
                    Request.id.in_(chunk)
                )
                for rid, state, version in await session.execute(query):
                    found[rid] = (state, version)
        self.polls += 1
        return found

    def _apply(self, ids: Sequence[uuid.UUID], rows: dict[uuid.UUID, tuple[str, int]]) -> None:
        # Only the ids this poll read: a watch registered while it ran waits for the next.
        for request_id in ids:
            state, version = rows.get(request_id, (None, None))
            for watch in list(self._watches.get(request_id, ())):
                if watch.seen == 0 or (watch.state, watch.version) != (state, version):
                    watch.moved(state, version)


async def wait_for_change(
    reader: Reader, watcher: RequestWatcher, first: RequestView, seconds: float
) -> RequestView:
    """The long poll: ``first`` if it is settled (finished or waiting for a person) or
    ``seconds`` is 0; else the request as soon as its state differs from ``first``'s, or
    as it is once ``seconds`` have passed.

    ``first`` is read before the watch is registered; the poller's first read comes after,
    so a change in between is seen at once.
    """
    if seconds <= 0 or State(first.state) in SETTLED:
        return first
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    with watcher.watch(first.id) as watch:
        mark = 0
        while await watch.wait_past(mark, deadline - loop.time()):
            mark = watch.seen
            if watch.state != first.state:
                break
    return await reader.get(first.id)


async def wait_until_settled(
    reader: Reader, watcher: RequestWatcher, request_id: uuid.UUID, timeout: float | None
) -> RequestView:
    """The request once it has finished or waits for a person, or as it is when
    ``timeout`` seconds have passed (None: no limit)."""
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    view = await reader.get(request_id)
    while State(view.state) not in SETTLED:
        left = 60.0 if deadline is None else deadline - loop.time()
        if left <= 0:
            break
        view = await wait_for_change(reader, watcher, view, left)
    return view


@dataclass(frozen=True)
class StateEvent:
    """One change of state as the event stream sends it: ``seq`` numbers a request's
    transitions from 1 in the order they happened (its submission is 1)."""

    seq: int
    request_id: uuid.UUID
    from_state: str | None
    state: str
    step: str | None
    reason: str | None
    at: datetime
    #: Where the transition sits in ``(created_at, id)`` order: the next read starts after.
    position: tuple[datetime, uuid.UUID] = field(compare=False)

    @property
    def terminal(self) -> bool:
        """The request finished with this change: nothing follows."""
        return State(self.state) in TERMINAL


async def state_events(
    database: Database, request_id: uuid.UUID, after: StateEvent | int | None = None
) -> list[StateEvent]:
    """The request's changes of state after ``after`` (an event already sent, or a
    sequence number: 0 or None for all), oldest first.

    One query on ``ix_state_transitions_request_id_created_at``: after an event, a keyset
    on ``(created_at, id)``; after a number, the whole (short) history, skipping that many.
    ``state_transitions`` is append-only, so the numbering never changes.
    """
    query = select(
        StateTransition.id,
        StateTransition.from_state,
        StateTransition.to_state,
        StateTransition.step,
        StateTransition.reason,
        StateTransition.created_at,
    ).where(StateTransition.request_id == request_id)
    skip, seq = 0, 0
    if isinstance(after, StateEvent):
        at, tid = after.position
        query = query.where(
            or_(
                StateTransition.created_at > at,
                and_(StateTransition.created_at == at, StateTransition.id > tid),
            )
        )
        seq = after.seq
    elif after:
        skip = seq = after
    query = query.order_by(StateTransition.created_at, StateTransition.id)
    async with database.read_session() as session:
        rows = list(await session.execute(query))
    return list(_numbered(request_id, rows[skip:], seq))


def _numbered(request_id: uuid.UUID, rows: Iterable[Any], seq: int) -> Iterable[StateEvent]:
    for row in rows:
        seq += 1
        yield StateEvent(
            seq=seq,
            request_id=request_id,
            from_state=row.from_state,
            state=row.to_state,
            step=row.step,
            reason=row.reason,
            at=row.created_at,
            position=(row.created_at, row.id),
        )


__all__ = [
    "RequestWatcher",
    "StateEvent",
    "Watch",
    "state_events",
    "wait_for_change",
    "wait_until_settled",
]
