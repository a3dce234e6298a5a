"""Errors as pages: sign-in redirects, 403/404/409/422/503 pages, never a traceback.

The console's own exception handlers (the API's problem+json handlers stay with the API):
an unknown id or route is a 404 page, a refused page a 403 page, a request that is no
longer in a state that allows the action a 409 page saying so, an unreachable database a
503 page. Anything unexpected is logged with its traceback and answered with a plain 500
page.
"""

from __future__ import annotations

from urllib.parse import quote

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.console.access import Refused, SignInRequired
from app.console.render import base_path, render
from app.exceptions import LedgerflowError
from app.results import RangeNotSatisfiable

log = structlog.get_logger(__name__)

_TITLES = {
    400: "Bad request",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Not possible now",
    410: "Gone",
    412: "Changed meanwhile",
    413: "Too large",
    416: "Range not satisfiable",
    422: "Invalid input",
    428: "Version needed",
    500: "Something went wrong",
    503: "Database unavailable",
}
#: Our error codes shown as pages with their own status (the rest are 500 pages).
_STATUS_BY_CODE = {
    "not_found": 404,
    "checkpoint_not_found": 404,
    "illegal_transition": 409,
    "lease_lost": 409,
    "idempotency_conflict": 409,
    "integrity_violation": 409,
    "not_ready": 409,
    "forbidden": 403,
    "gone": 410,
    "version_mismatch": 412,
    "content_too_large": 413,
    "range_not_satisfiable": 416,
    "precondition_required": 428,
    "invalid_request": 422,
    "invalid_filter": 422,
    "database_unavailable": 503,
    "database_busy": 503,
    "database_read_only": 503,
    "schema_not_ready": 503,
    "denial_log_full": 503,
}


def error_page(
    request: Request, status: int, message: str, headers: dict[str, str] | None = None
) -> HTMLResponse:
    """The error page for ``status`` with ``message``."""
    headers = {**(headers or {}), **({"Retry-After": "5"} if status == 503 else {})}
    return render(
        request,
        "error.html",
        status=status,
        headers=headers,
        title=_TITLES.get(status, "Error"),
        status_code=status,
        message=message,
    )


def sign_in_redirect(request: Request, ended: str | None) -> RedirectResponse:
    """See-other to the sign-in page, remembering where the user was going (GET only)."""
    target = f"{base_path(request)}/sign-in"
    params = []
    if request.method == "GET":
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        params.append(f"next={quote(here, safe='')}")
    if ended in ("idle", "expired", "revoked"):
        params.append(f"ended={ended}")
    return RedirectResponse(target + ("?" + "&".join(params) if params else ""), status_code=303)


def install_error_pages(console: FastAPI) -> None:
    """Register the handlers that turn every error into a page."""

    async def on_sign_in(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInRequired)
        return sign_in_redirect(request, exc.ended)

    async def on_refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Refused)
        return error_page(request, exc.status, exc.message)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        # Path parameters are ids: one that is not even a UUID names nothing we have.
        if any(e.get("loc", ("",))[0] == "path" for e in exc.errors()):
            return error_page(request, 404, "There is nothing here with that id.")
        first = exc.errors()[0] if exc.errors() else {}
        field = ".".join(str(p) for p in first.get("loc", ())[1:]) or "input"
        return error_page(request, 422, f"{field}: {first.get('msg', 'invalid')}")

    async def on_ledgerflow(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LedgerflowError)
        status = _STATUS_BY_CODE.get(exc.code, 500)
        if status == 500:
            log.error("console_error", code=exc.code, error=exc.message, path=request.url.path)
            return error_page(request, 500, "The server failed; its log says why.")
        if status == 503:
            log.warning("console_database_unavailable", code=exc.code, error=exc.message)
            return error_page(
                request, 503, "The server is busy or the database unavailable; try again shortly."
            )
        headers: dict[str, str] = {}
        if isinstance(exc, RangeNotSatisfiable):
            headers["Content-Range"] = f"bytes */{exc.size}"
        # A purged file's message says when and why (``Gone``); others name the problem.
        return error_page(request, status, exc.message, headers)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        message = {404: "There is no such page.", 405: "This page does not take that method."}
        detail = message.get(exc.status_code, str(exc.detail))
        return error_page(request, exc.status_code, detail)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.exception("console_unhandled_error", path=request.url.path)
        return error_page(request, 500, "The server failed; its log says why.")

    console.add_exception_handler(SignInRequired, on_sign_in)
    console.add_exception_handler(Refused, on_refused)
    console.add_exception_handler(RequestValidationError, on_validation)
    console.add_exception_handler(LedgerflowError, on_ledgerflow)
    console.add_exception_handler(StarletteHTTPException, on_http)
    console.add_exception_handler(Exception, on_unexpected)
