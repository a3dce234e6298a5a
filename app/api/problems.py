"""Errors as RFC 9457 ``application/problem+json``, mapped from our exceptions in one place.

Every error a client sees has ``type``, ``title``, ``status``, ``detail`` and ``instance``,
plus ``code`` (our stable error code) and, for input errors, ``field`` and ``errors``
naming what was wrong. Nothing else leaves the process: an unexpected exception is logged
with its traceback and answered with a bare 500.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.exceptions import LedgerflowError
from app.results.exceptions import Gone, RangeNotSatisfiable, VersionMismatch
from app.validation import FieldProblem, describe, field_problems

log = structlog.get_logger(__name__)

PROBLEM_JSON = "application/problem+json"
_TYPE_BASE = "urn:ledgerflow:problem:"

#: Our error codes → HTTP status. Codes not listed are server errors (500).
STATUS_BY_CODE: dict[str, int] = {
    "invalid_request": 422,
    "invalid_filter": 422,
    "invalid_audio": 422,
    "not_found": 404,
    "checkpoint_not_found": 404,
    "forbidden": 403,
    "idempotency_conflict": 409,
    "illegal_transition": 409,
    "lease_lost": 409,
    "integrity_violation": 409,
    "not_ready": 409,
    "gone": 410,
    "version_mismatch": 412,
    "content_too_large": 413,
    "range_not_satisfiable": 416,
    "precondition_required": 428,
    "queue_full": 429,
    "denial_log_full": 503,
    "too_many_waiters": 503,
    "database_unavailable": 503,
    "database_busy": 503,
    "database_conflict": 503,
    "database_missing": 503,
    "database_login_refused": 503,
    "database_permission_denied": 503,
    "database_read_only": 503,
    "schema_not_ready": 503,
}

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    410: "Gone",
    412: "Precondition failed",
    413: "Content too large",
    415: "Unsupported media type",
    416: "Range not satisfiable",
    422: "Invalid input",
    428: "Precondition required",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


class FieldError(BaseModel):
    """One invalid input: where (``field``, dotted) and what is wrong with it."""

    field: str
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem detail."""

    type: str = Field(description="URI naming the problem type (`urn:ledgerflow:problem:<code>`)")
    title: str
    status: int
    detail: str
    instance: str | None = None
    code: str = Field(description="ledgerflow's stable error code")
    field: str | None = Field(default=None, description="the first invalid field, if any")
    errors: list[FieldError] | None = None
    retry_after: int | None = Field(default=None, description="seconds to wait (429 and 503)")
    current_version: int | None = Field(
        default=None, description="412: the transcript's current version (send it in If-Match)"
    )
    purged_at: datetime | None = Field(default=None, description="410: when retention purged it")
    reason: str | None = Field(default=None, description="410: why it was purged")


class ApiError(Exception):
    """An HTTP-level refusal raised by the API layer itself (auth, limits, bad upload)."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.field = field
        self.headers = headers or {}


def problem_response(
    request: Request | None,
    status: int,
    code: str,
    detail: str,
    *,
    field: str | None = None,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
    retry_after: int | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> JSONResponse:
    """The problem+json response for one error (``extensions``: more :class:`Problem` fields)."""
    body = Problem(
        type=_TYPE_BASE + code,
        title=_TITLES.get(status, "Error"),
        status=status,
        detail=detail,
        instance=request.url.path if request is not None else None,
        code=code,
        field=field,
        errors=errors,
        retry_after=retry_after,
        **(extensions or {}),
    )
    out_headers = dict(headers or {})
    if retry_after is not None:
        out_headers["Retry-After"] = str(retry_after)
    return JSONResponse(
        body.model_dump(mode="json", exclude_none=True),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=out_headers,
    )


#: Tags of the discriminated request bodies, which pydantic puts in error locations.
BODY_TAGS = frozenset({"research", "transcription"})
_SOURCES = ("body", "query", "path", "header")


def _problem_of(error: Mapping[str, Any]) -> FieldProblem:
    """One validation error named as the caller wrote it (``payload.age_range``, ``limit``)."""
    parts = list(error.get("loc", ()))
    source = str(parts.pop(0)) if parts and parts[0] in _SOURCES else None
    # Discriminated unions put the tag in the location: body.research.payload.x, and
    # body.requests.3.research.payload.x in a batch.
    if source == "body":
        parts = [
            part
            for index, part in enumerate(parts)
            if not (
                part in BODY_TAGS
                and index + 1 < len(parts)
                and (index == 0 or isinstance(parts[index - 1], int))
            )
        ]
    if source == "header" and parts:
        parts = [str(parts[0]).replace("_", "-").title()]
    [problem] = field_problems([{**error, "loc": tuple(parts)}])
    if not parts and problem.field == "body" and source is not None:
        return FieldProblem(source, problem.message)
    return problem


def _validation_problem(request: Request, exc: RequestValidationError) -> JSONResponse:
    raw = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in raw):
        message = next(str(e.get("msg")) for e in raw if e.get("type") == "json_invalid")
        return problem_response(
            request, 400, "malformed_body", f"body: not valid JSON ({message})", field="body"
        )
    problems = [_problem_of(e) for e in raw] or [FieldProblem("body", "invalid")]
    return _invalid(request, problems)


def _invalid(request: Request, problems: Sequence[FieldProblem]) -> JSONResponse:
    """422 naming every invalid field: ``detail`` lists them all, ``errors`` one by one."""
    return problem_response(
        request,
        422,
        "invalid_request",
        describe(problems),
        field=problems[0].field,
        errors=[FieldError(field=p.field, message=p.message) for p in problems],
    )


def _ledgerflow_problem(request: Request, exc: LedgerflowError) -> JSONResponse:
    status = STATUS_BY_CODE.get(exc.code, 500)
    if status >= 500 and status != 503:
        log.error("api_error", code=exc.code, error=exc.message, path=request.url.path)
        return problem_response(request, 500, "internal_error", "the server failed; see its log")
    field = getattr(exc, "field", None)
    retry_after: int | None = None
    if status == 429:
        hint = getattr(exc, "retry_after", None) or getattr(exc, "retry_after_seconds", None)
        retry_after = max(1, round(float(hint))) if isinstance(hint, int | float) else 1
    detail = exc.message
    if status == 503 and exc.code == "too_many_waiters":
        # The server is busy, not the database: the message says why and is safe to show.
        retry_after = int(getattr(exc, "retry_after", 2))
    elif status == 503:
        retry_after = 5
        log.warning("api_database_unavailable", code=exc.code, error=exc.message)
        if exc.code != "denial_log_full":
            # The message names the database host; keep it in the log, not in the response.
            detail = "the database is unavailable; try again shortly"
    problems: Sequence[FieldProblem] = getattr(exc, "problems", ())
    if status == 422 and problems:
        return _invalid(request, problems)
    errors = [FieldError(field=field, message=detail)] if isinstance(field, str) else None
    extensions, headers = _specifics(exc)
    return problem_response(
        request,
        status,
        exc.code,
        detail,
        field=field if isinstance(field, str) else None,
        errors=errors,
        headers=headers,
        retry_after=retry_after,
        extensions=extensions,
    )


def _specifics(exc: LedgerflowError) -> tuple[dict[str, Any], dict[str, str]]:
    """What a results error adds to its problem: body fields and headers.

    410 says when and why the data was purged; 412 names the transcript's current version
    (also as its ``ETag``); 416 sends ``Content-Range: bytes */<size>`` (RFC 9110).
    """
    if isinstance(exc, Gone):
        return {"purged_at": exc.purged_at, "reason": exc.reason}, {}
    if isinstance(exc, VersionMismatch):
        return {"current_version": exc.current}, {"ETag": f'"{exc.current}"'}
    if isinstance(exc, RangeNotSatisfiable):
        return {}, {"Content-Range": f"bytes */{exc.size}", "Accept-Ranges": "bytes"}
    return {}, {}


def install_problem_handlers(app: FastAPI) -> None:
    """Register the exception handlers that turn every error into problem+json."""

    async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return problem_response(
            request, exc.status, exc.code, exc.detail, field=exc.field, headers=exc.headers
        )

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return _validation_problem(request, exc)

    async def on_ledgerflow(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, LedgerflowError)
        return _ledgerflow_problem(request, exc)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "")
        return problem_response(
            request, exc.status_code, code, detail, headers=dict(exc.headers or {})
        )

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("api_unhandled_error", path=request.url.path, error_type=type(exc).__name__)
        return problem_response(request, 500, "internal_error", "the server failed; see its log")

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(LedgerflowError, on_ledgerflow)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)


#: Error responses every ``/v1`` operation documents (the OpenAPI post-processing gives
#: them the problem+json media type).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "description": _TITLES[status]}
    for status in (400, 401, 403, 404, 409, 413, 422, 429, 503)
}

#: The 410 of a route that reads data retention may purge.
GONE_RESPONSES: dict[int | str, dict[str, Any]] = {
    410: {"model": Problem, "description": "Purged by retention: `purged_at` and `reason`"}
}
