"""Refusing oversize bodies with 413 before they are read into memory, and NUL characters
in the query string with 400 (PostgreSQL cannot store them).

An ASGI middleware: a ``Content-Length`` over the limit is refused at once; a chunked body
is counted as it streams and refused when it passes the limit. Recording uploads get
``AUDIO_MAX_BYTES`` plus room for the multipart framing; everything else
``API_MAX_BODY_BYTES``.
"""

from __future__ import annotations

from collections.abc import Callable

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
            response = problem_response(None, 413, "content_too_large", detail, field="body")
            response.headers["Connection"] = "close"
            await response(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise ApiError(
                        413,
                        "content_too_large",
                        f"body: over the {limit}-byte limit",
                        field="body",
                    )
            return message

        await self.app(scope, counted, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
