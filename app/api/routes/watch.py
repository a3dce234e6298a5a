"""``GET /v1/requests/{id}/events``: a request's changes of state as Server-Sent Events.

Each event is one ``state_transitions`` row: ``id:`` is its number in the request's
history (1 is the submission), ``data:`` a JSON :class:`StateEventPublic`. Comment lines
(``: keep-alive``) come every ``SSE_HEARTBEAT_SECONDS`` while nothing happens. The stream
ends after a terminal state (completed, failed, cancelled), and after ``SSE_MAX_SECONDS``
(the client reconnects). ``Last-Event-ID: N`` resumes after event N; once the terminal
event has been sent, a reconnect gets 204, which tells an ``EventSource`` to stop.

New events are noticed by the process's shared poller (:mod:`app.orchestrator.watch`):
one query per interval for every stream and long poll together, not one per stream.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.types import Receive, Scope, Send

from app.api.auth import ReaderDep, hide_unless_owner
from app.api.deps import ServicesDep
from app.api.problems import ERROR_RESPONSES
from app.database import Database
from app.orchestrator.states import TERMINAL, State
from app.orchestrator.watch import StateEvent, Watch, state_events

router = APIRouter(prefix="/v1", tags=["requests"], responses=ERROR_RESPONSES)

#: How soon an ``EventSource`` reconnects after the stream ends (milliseconds).
RECONNECT_MS = 2000


class StateEventPublic(BaseModel):
    """One change of a request's state, as the ``data:`` of an event."""

    seq: int = Field(description="the event's number in the request's history (its `id:`)")
    request_id: uuid.UUID
    from_state: str | None = Field(description="null for the submission")
    state: str = Field(description="the state the request entered")
    step: str | None
    reason: str | None
    at: datetime


def sse_event(event: StateEvent) -> str:
    """One event in the ``text/event-stream`` format."""
    data = StateEventPublic(
        seq=event.seq,
        request_id=event.request_id,
        from_state=event.from_state,
        state=event.state,
        step=event.step,
        reason=event.reason,
        at=event.at,
    ).model_dump_json()
    return f"id: {event.seq}\ndata: {data}\n\n"


class EventStream(StreamingResponse):
    """A streaming response that always ends its watch and its generator, however the
    connection ends (a client that goes away is noticed at the next write)."""

    def __init__(self, stream: AsyncIterator[str], watch: Watch | None) -> None:
        super().__init__(
            stream,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
        self._stream = stream
        self._watch = watch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            if self._watch is not None:
                self._watch.close()
            aclose = getattr(self._stream, "aclose", None)
            if aclose is not None:
                await aclose()


@router.get(
    "/requests/{request_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Server-Sent Events: `id: N` and `data: {StateEventPublic}` per "
            "change of state, `: keep-alive` comments between; ends after a terminal state",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        204: {"description": "The request has finished and every event was already sent"},
    },
)
async def request_events(
    request: Request,
    request_id: uuid.UUID,
    principal: ReaderDep,
    services: ServicesDep,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            pattern=r"^[0-9]{1,9}$",
            description="Resume after this event (the `id:` of the last event received).",
        ),
    ] = None,
) -> Response:
    """A request's changes of state as Server-Sent Events (submitters: their own)."""
    view = await services.orchestrator.get(request_id)
    await hide_unless_owner(request, principal, view.submitted_by, request_id)
    database = services.database
    backlog = await state_events(database, request_id, int(last_event_id or 0))
    if backlog and backlog[-1].terminal:
        return EventStream(_replay(backlog), None)
    if not backlog and State(view.state) in TERMINAL:
        return Response(status_code=204)
    watch = services.watcher.watch(request_id)
    settings = services.settings
    stream = _follow(
        database,
        watch,
        backlog,
        int(last_event_id or 0),
        settings.sse_heartbeat_seconds,
        settings.sse_max_seconds,
    )
    return EventStream(stream, watch)


async def _replay(events: list[StateEvent]) -> AsyncIterator[str]:
    yield f"retry: {RECONNECT_MS}\n\n"
    for event in events:
        yield sse_event(event)


async def _follow(
    database: Database,
    watch: Watch,
    backlog: list[StateEvent],
    after: int,
    heartbeat: float,
    lifetime: float,
) -> AsyncIterator[str]:
    """Send ``backlog``, then each new change as the poller notices the row move."""
    loop = asyncio.get_running_loop()
    ends = loop.time() + lifetime
    last: StateEvent | int = after
    try:
        yield f"retry: {RECONNECT_MS}\n\n"
        events = backlog
        mark = 0
        while True:
            for event in events:
                yield sse_event(event)
                last = event
                if event.terminal:
                    return
            moved = False
            while not moved:
                left = ends - loop.time()
                if left <= 0 or watch.closing:
                    return
                moved = await watch.wait_past(mark, min(heartbeat, left))
                if not moved and not watch.closing and loop.time() < ends:
                    yield ": keep-alive\n\n"
            mark = watch.seen
            events = await state_events(database, watch.request_id, last)
    finally:
        watch.close()
