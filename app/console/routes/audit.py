"""Audit: search with every filter of ``audit query``, keyset pages, one request's trail,
exports (CSV, JSONL, JSON, FHIR), verify, and checkpoints (create and download).

Auditors and admins only, as ``/v1/audit-logs`` and friends. Every read goes through
:class:`app.audit.AuditAccess` as the signed-in client, so each page of rows, each trail,
export, verify and checkpoint leaves exactly one ``audit_accessed`` record, as the API's
reads do (``format: html`` for rows shown on a page).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from app.audit import EVENT_TYPES, AuditAccess, AuditFilter, InvalidFilter
from app.audit.checkpoint import configured_hmac_key, load_checkpoint, looks_like_digest
from app.audit.query import SEVERITIES
from app.audit.status import latest_checkpoints
from app.audit.streaming import stream_export
from app.auth import ConsoleUser, Role
from app.console.access import services_of, viewer
from app.console.errors import error_page
from app.console.forms import FieldErrors
from app.console.render import base_path, render
from app.database.types import utcnow
from app.orchestrator.exceptions import NotFound

router = APIRouter()

PAGE_SIZES = (50, 100, 500)
#: Export formats offered, with their media type and file suffix.
EXPORTS: dict[str, tuple[str, str]] = {
    "csv": ("text/csv; charset=utf-8", "csv"),
    "jsonl": ("application/x-ndjson", "jsonl"),
    "json": ("application/json", "json"),
    "fhir": ("application/fhir+json", "fhir.json"),
    "fhir-ndjson": ("application/fhir+ndjson", "fhir.ndjson"),
}
_FILTER_FIELDS = (
    "request_id",
    "actor",
    "agent_id",
    "severity",
    "since",
    "until",
    "patient_id",
)


def _auditor(action: str) -> Any:
    return Depends(viewer(Role.AUDITOR, audit_action=action))


def _filter_values(request: Request) -> dict[str, Any]:
    """The filter fields as sent (for re-showing the form and building links)."""
    params = request.query_params
    values: dict[str, Any] = {name: params.get(name, "").strip() for name in _FILTER_FIELDS}
    values["event_type"] = [v for v in params.getlist("event_type") if v]
    return values


def _parse_filter(values: dict[str, Any], errors: FieldErrors) -> AuditFilter | None:
    try:
        return AuditFilter.parse(
            request_id=values["request_id"] or None,
            actor=values["actor"] or None,
            agent_id=values["agent_id"] or None,
            event_types=tuple(values["event_type"]),
            severity=values["severity"] or None,
            since=values["since"] or None,
            until=values["until"] or None,
            patient_id=values["patient_id"] or None,
        )
    except InvalidFilter as exc:
        field = exc.field if exc.field in (*_FILTER_FIELDS, "event_types") else "filters"
        errors["event_type" if field == "event_types" else field] = exc.message.split(": ", 1)[-1]
        return None


def _query_string(values: dict[str, Any], **extra: Any) -> str:
    pairs: list[tuple[str, str]] = [(k, v) for k, v in values.items() if isinstance(v, str) and v]
    pairs += [("event_type", v) for v in values.get("event_type", [])]
    pairs += [(k, str(v)) for k, v in extra.items() if v not in (None, "")]
    return urlencode(pairs)


@router.get("/audit")
async def audit_log(
    request: Request,
    user: Annotated[ConsoleUser, _auditor("query")],
    order: str = "newest",
    limit: int = 100,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> HTMLResponse:
    """One keyset page of the audit log under the filters (each page view is audited)."""
    services = services_of(request)
    values = _filter_values(request)
    errors: FieldErrors = {}
    if limit not in PAGE_SIZES:
        errors["limit"] = f"Choose {', '.join(map(str, PAGE_SIZES))} rows a page."
    if order not in ("newest", "oldest"):
        errors["order"] = "Choose newest or oldest first."
    audit_filter = _parse_filter(values, errors)
    page = None
    if audit_filter is not None and not errors:
        try:
            page = await AuditAccess(services.database, user.principal.name).query(
                audit_filter,
                cursor=cursor or None,
                limit=limit,
                newest_first=order == "newest",
                fmt="html",
            )
        except InvalidFilter as exc:
            errors[exc.field or "filters"] = exc.message.split(": ", 1)[-1]
    here = f"{base_path(request)}/audit"
    async with services.database.read_session() as session:
        checkpoints = await latest_checkpoints(session, 5)
    return render(
        request,
        "audit.html",
        status=422 if errors else 200,
        title="Audit log",
        section="audit",
        page=page,
        errors=errors,
        values=values,
        order=order,
        limit=limit,
        page_sizes=PAGE_SIZES,
        event_types=sorted(EVENT_TYPES),
        severities=SEVERITIES,
        exports=EXPORTS,
        export_query=_query_string(values, order=order),
        next_url=(
            f"{here}?{_query_string(values, order=order, limit=limit, cursor=page.next_cursor)}"
            if page and page.next_cursor
            else None
        ),
        first_url=f"{here}?{_query_string(values, order=order, limit=limit)}" if cursor else None,
        checkpoints=checkpoints,
        signing=configured_hmac_key() is not None,
    )


@router.get("/audit/export")
async def export(
    request: Request,
    user: Annotated[ConsoleUser, _auditor("export")],
    format: str = "csv",
    order: str = "oldest",
) -> Response:
    """Download every row under the filters, streamed (the export is audited on completion)."""
    services = services_of(request)
    errors: FieldErrors = {}
    audit_filter = _parse_filter(_filter_values(request), errors)
    if format not in EXPORTS:
        errors["format"] = f"choose one of {', '.join(EXPORTS)}"
    if audit_filter is None or errors:
        field, message = next(iter(errors.items()))
        return error_page(request, 422, f"{field}: {message}")
    media, suffix = EXPORTS[format]
    chunks = stream_export(
        services.database.url, services.settings, user.principal.name, audit_filter, format
    )
    first = await anext(chunks, "")

    async def body() -> AsyncIterator[str]:
        yield first
        async for chunk in chunks:
            yield chunk

    stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(
        body(),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="audit-{stamp}.{suffix}"'},
    )


@router.get("/audit/trail/{request_id}")
async def trail(
    request: Request, request_id: uuid.UUID, user: Annotated[ConsoleUser, _auditor("trail")]
) -> HTMLResponse:
    """One request's audit timeline, oldest first (audited as a trail read)."""
    services = services_of(request)
    try:
        records = await AuditAccess(services.database, user.principal.name).trail(
            request_id, fmt="html"
        )
    except InvalidFilter as exc:
        raise NotFound(f"There is no request {request_id}.") from exc
    return render(
        request,
        "trail.html",
        title=f"Trail of {str(request_id)[:8]}",
        section="audit",
        request_id=request_id,
        trail=records,
        export_query=urlencode({"request_id": str(request_id)}),
        exports=EXPORTS,
    )


@router.post("/audit/verify")
async def verify(
    request: Request, user: Annotated[ConsoleUser, _auditor("verify")]
) -> HTMLResponse:
    """Re-compute every chain (or one request's), optionally against a stored checkpoint."""
    services = services_of(request)
    form = await request.form()
    errors: FieldErrors = {}
    raw_id = str(form.get("request_id") or "").strip()
    raw_checkpoint = str(form.get("checkpoint") or "").strip().lower()
    request_id = None
    if raw_id:
        try:
            request_id = uuid.UUID(raw_id)
        except ValueError:
            errors["request_id"] = "Give a full request id (a UUID), or leave it empty for all."
    if raw_checkpoint and not looks_like_digest(raw_checkpoint):
        errors["checkpoint"] = "Give a checkpoint digest (64 hex digits), or leave it empty."
    if errors:
        return render(
            request,
            "verify.html",
            status=422,
            title="Verify",
            section="audit",
            report=None,
            errors=errors,
            request_id=raw_id,
            checkpoint=raw_checkpoint,
        )
    report = await AuditAccess(services.database, user.principal.name).verify(
        request_id, raw_checkpoint or None, hmac_key=configured_hmac_key()
    )
    return render(
        request,
        "verify.html",
        title="Verify",
        section="audit",
        report=report,
        errors={},
        request_id=raw_id,
        checkpoint=raw_checkpoint,
    )


@router.post("/audit/checkpoints")
async def checkpoint(
    request: Request, user: Annotated[ConsoleUser, _auditor("checkpoint")]
) -> HTMLResponse:
    """Record a checkpoint over every chain head (signed when ``AUDIT_HMAC_KEY`` is set)."""
    services = services_of(request)
    made = await AuditAccess(services.database, user.principal.name).checkpoint(
        configured_hmac_key()
    )
    return render(
        request,
        "checkpoint.html",
        status=201,
        title="Checkpoint",
        section="audit",
        checkpoint=made,
    )


@router.get("/audit/checkpoints/{digest}.json")
async def download_checkpoint(
    request: Request, digest: str, user: Annotated[ConsoleUser, _auditor("checkpoint")]
) -> Response:
    """A stored checkpoint as the file ``audit verify --checkpoint FILE`` reads."""
    if not looks_like_digest(digest):
        raise NotFound(f"There is no checkpoint {digest[:64]}.")
    found = await load_checkpoint(services_of(request).database, digest.lower())
    return Response(
        found.to_file(),
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="checkpoint-{found.digest[:16]}.json"'
        },
    )
