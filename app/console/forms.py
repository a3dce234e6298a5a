"""Reading form and filter fields: each problem is a message for the field it concerns."""

from __future__ import annotations

from datetime import datetime

from starlette.datastructures import FormData

from app.audit.exceptions import InvalidFilter
from app.audit.query import parse_time

#: Longest note, reason or free-text filter the console accepts (the orchestrator's limit).
MAX_TEXT = 2000

FieldErrors = dict[str, str]


def required_text(
    form: FormData, name: str, errors: FieldErrors, *, what: str, limit: int = MAX_TEXT
) -> str:
    """The field's text, stripped; an empty or overlong one adds an error for ``name``."""
    raw = form.get(name)
    text = raw.strip() if isinstance(raw, str) else ""
    if not text:
        errors[name] = f"Write {what}: it is required and goes into the audit trail."
    elif len(text) > limit:
        errors[name] = f"Keep it to {limit} characters (this is {len(text)})."
    return text


def choice(form: FormData, name: str, allowed: tuple[str, ...], errors: FieldErrors) -> str:
    """One of ``allowed`` from a button or select; anything else adds an error."""
    raw = form.get(name)
    if isinstance(raw, str) and raw in allowed:
        return raw
    errors[name] = f"Choose one of: {', '.join(allowed)}."
    return ""


def optional_time(raw: str | None, name: str, errors: FieldErrors) -> datetime | None:
    """A filter's date or time (ISO 8601; a date means its midnight UTC; no zone means UTC)."""
    text = (raw or "").strip()
    if not text:
        return None
    try:
        return parse_time(text, name)
    except InvalidFilter:
        errors[name] = "Use a date like 2026-11-23 or a time like 2026-11-23T09:00:00Z."
        return None


def optional_text(
    raw: str | None, name: str, errors: FieldErrors, *, limit: int = 128
) -> str | None:
    """A free-text filter, stripped; ``None`` when empty; too long adds an error."""
    text = (raw or "").strip()
    if not text:
        return None
    if len(text) > limit or "\x00" in text:
        errors[name] = f"Use at most {limit} ordinary characters."
        return None
    return text
