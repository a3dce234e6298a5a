"""Pages from Jinja2 templates: one environment, the filters pages share, and ``render``.

Autoescaping is on for every template, so text from requests, notes or agents is always
shown as text. Times are rendered as ``<time datetime=...>`` in UTC; the console's script
rewrites them into the viewer's time zone and keeps UTC in the tooltip.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from app.database.types import utcnow

#: Characters of an id shown in tables (the full id is in the tooltip and the copy button).
SHORT_ID = 8


def short_id(value: uuid.UUID | str | None) -> str:
    """An id as tables show it: its first characters, and for a time-ordered id (UUIDv7,
    whose first digits are the creation time and so alike for neighbours) its last four."""
    if value is None:
        return ""
    text = str(value)
    if len(text) == 36 and text[14] == "7":
        return f"{text[:SHORT_ID]}…{text[-4:]}"
    return text[:SHORT_ID]


def iso_utc(moment: datetime | None) -> str:
    """Machine-readable UTC (``2026-11-26T09:00:00Z``) for ``<time datetime>``."""
    if moment is None:
        return ""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def human_utc(moment: datetime | None) -> str:
    """People-readable UTC (``2026-11-26 09:00:00 UTC``), the text before the script runs."""
    if moment is None:
        return ""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def age(moment: datetime | None, now: datetime | None = None) -> str:
    """How long ago, coarsely: ``45 s``, ``12 min``, ``3 h 5 min``, ``2 d 4 h``.

    Numbers and units are joined by no-break spaces, so a line never ends between them.
    """
    if moment is None:
        return ""
    seconds = max(0, int(((now or utcnow()) - moment).total_seconds()))
    if seconds < 60:
        parts = [(seconds, "s")]
    elif seconds < 3600:
        parts = [(seconds // 60, "min")]
    elif seconds < 48 * 3600:
        parts = [(seconds // 3600, "h"), (seconds % 3600 // 60, "min")]
    else:
        parts = [(seconds // 86400, "d"), (seconds % 86400 // 3600, "h")]
    shown = [f"{n}\u00a0{unit}" for i, (n, unit) in enumerate(parts) if n or i == 0]
    return " ".join(shown)


def words(name: str | None) -> str:
    """``awaiting_approval`` → ``awaiting approval``."""
    return "" if name is None else str(name).replace("_", " ")


def compact(data: dict[str, Any], limit: int = 400) -> str:
    """``key: value; key: value`` on one line (nested values as compact JSON), cut at ``limit``."""
    parts = []
    for key, item in data.items():
        if item is None or item == {} or item == []:
            continue
        text = (
            item if isinstance(item, str) else json.dumps(item, separators=(",", ":"), default=str)
        )
        parts.append(f"{key}: {text}")
    line = "; ".join(parts)
    return line if len(line) <= limit else line[: limit - 1] + "…"


def is_mapping(value: Any) -> bool:
    """Jinja test: a dict (rendered as a definition list)."""
    return isinstance(value, dict)


def is_sequence(value: Any) -> bool:
    """Jinja test: a list or tuple (rendered as a list)."""
    return isinstance(value, list | tuple)


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("app.console", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        short_id=short_id,
        iso_utc=iso_utc,
        human_utc=human_utc,
        age=age,
        words=words,
        compact=compact,
    )
    env.tests.update(mapping_value=is_mapping, sequence_value=is_sequence)
    return env


ENVIRONMENT = _environment()


def base_path(request: Request) -> str:
    """Where the console is mounted (``/console``, behind any proxy prefix)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def render(
    request: Request,
    template: str,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """Render ``template`` with the page context every template may use.

    ``base`` (the mount path), ``user`` (the signed-in :class:`~app.auth.ConsoleUser` or
    ``None``), ``csrf`` (the form token or ``None``), ``now`` and ``section`` (for the
    navigation) come first; ``context`` adds to or overrides them.
    """
    page: dict[str, Any] = {
        "base": base_path(request),
        "user": getattr(request.state, "user", None),
        "csrf": getattr(request.state, "csrf", None),
        "now": utcnow(),
        "section": None,
        "notice": None,
    }
    page.update(context)
    html = ENVIRONMENT.get_template(template).render(page)
    return HTMLResponse(html, status_code=status, headers=headers)
