"""Refusing oversize bodies with 413 before they are read into memory, and NUL characters
in the query string with 400 (PostgreSQL cannot store them).

An ASGI middleware: a ``Content-Length`` over the limit is refused at once; a chunked body
is counted as it streams and refused when it passes the limit. Recording uploads get
``AUDIO_MAX_BYTES`` plus room for the multipart framing; everything else
``API_MAX_BODY_BYTES``.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.problems import ApiError, problem_response

#: Room for multipart boundaries, part headers and the small text fields of an upload.
MULTIPART_OVERHEAD = 64 * 1024


class BodyLimit:
    """ASGI middleware enforcing ``limit_for(path)`` bytes per request body."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[Scope], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if b"%00" in scope.get("query_string", b"") or "\x00" in scope.get("path", ""):
            response = problem_response(
                None,
                400,
                "malformed_query",
                "query: NUL characters are not accepted",
                field="query",
            )
            await response(scope, receive, send)
            return
        limit = self.limit_for(scope)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            detail = f"body: {declared} bytes is over the {limit}-byte limit"
            await _too_large(detail)(scope, receive, send)
            return
        seen = 0
        exceeded = False
        started = False

        async def counted() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    exceeded = True
                    # Stops a handler that streams the body (and lets it clean up); the
                    # answer it then makes is replaced by the 413 below.
                    raise ApiError(
                        413, "content_too_large", f"body: over the {limit}-byte limit", field="body"
                    )
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if exceeded and not started:
                # FastAPI turns any error while it reads a JSON body into a 400; the
                # client must see the 413 instead.
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, counted, guarded)
        if exceeded and not started:
            await _too_large(f"body: over the {limit}-byte limit")(scope, receive, send)


def _too_large(detail: str) -> Response:
    response = problem_response(None, 413, "content_too_large", detail, field="body")
    response.headers["Connection"] = "close"
    return response


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
