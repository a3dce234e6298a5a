"""Input errors in ledgerflow's words, the same from the HTTP API, the Python API and the CLI.

Pydantic's messages are written for programmers ("Input tag 'reserch' found using 'kind'
does not match any of the expected tags"). :func:`field_problems` turns every error of a
validation into a :class:`FieldProblem`, a dotted field name and a short message
(``payload.patient_id: required``), so all of a payload's problems are reported at once.

It also holds the strict input types the edges share: a date or time is ISO 8601 text
(a number is not a time), and a rule broken by a value is raised with :func:`rule_error`.

Submit-time rules that need the deployment (a file must lie inside ``AUDIO_DIR``) read it
from pydantic's validation context, a :class:`SubmitContext` that
:meth:`~app.orchestrator.workflows.Workflow.validate_payload` passes; a stored payload read
back without one is not checked again (the agents check at run time as well).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BeforeValidator, ValidationInfo
from pydantic_core import PydanticCustomError

if TYPE_CHECKING:
    from app.config import Settings

#: Error type of a broken rule (see :func:`rule_error`); its message is shown as it is.
RULE = "rule"


@dataclass(frozen=True)
class FieldProblem:
    """One invalid input: where (``field``, dotted) and what is wrong with it."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def describe(problems: Sequence[FieldProblem]) -> str:
    """All problems on one line: ``a: required; b.c: min 80 is above max 30``."""
    return "; ".join(str(problem) for problem in problems)


def rule_error(message: str) -> PydanticCustomError:
    """A validation error whose message is shown to the caller word for word."""
    return PydanticCustomError(RULE, "{reason}", {"reason": message})


def field_problems(
    errors: Iterable[Mapping[str, Any]], prefix: str = "", *, skip: frozenset[str] = frozenset()
) -> list[FieldProblem]:
    """Each pydantic error as a :class:`FieldProblem` named ``prefix`` + its location.

    Location parts in ``skip`` are left out (a discriminated union puts the tag there).
    """
    problems: list[FieldProblem] = []
    for error in errors:
        parts = [str(p) for p in error.get("loc", ()) if str(p) not in skip]
        ctx = error.get("ctx") or {}
        if error.get("type") in ("union_tag_invalid", "union_tag_not_found"):
            parts.append(_unquote(str(ctx.get("discriminator", "kind"))))
        field = ".".join([prefix, *parts] if prefix else parts) or prefix or "body"
        problems.append(FieldProblem(field, message_of(error)))
    return problems


def message_of(error: Mapping[str, Any]) -> str:
    """A short message for one pydantic error."""
    kind = str(error.get("type", ""))
    ctx: Mapping[str, Any] = error.get("ctx") or {}
    value = error.get("input")
    simple = _SIMPLE.get(kind)
    if simple is not None:
        return simple
    if kind == "union_tag_invalid":
        what = _unquote(str(ctx.get("discriminator", "kind")))
        known = ", ".join(_unquote(t.strip()) for t in str(ctx.get("expected_tags")).split(","))
        return f"unknown {what} {ctx.get('tag')!r} (known: {known})"
    if kind == "string_too_short":
        return (
            "must not be empty"
            if ctx.get("min_length") == 1
            else (f"must be at least {ctx.get('min_length')} characters")
        )
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind in ("too_short", "too_long"):
        bound = "at least" if kind == "too_short" else "at most"
        limit = ctx.get("min_length") if kind == "too_short" else ctx.get("max_length")
        return f"must have {bound} {limit} items"
    if kind in _BOUNDS:
        return f"must be {_BOUNDS[kind]} {ctx.get(_BOUND_KEYS[kind])}"
    if kind in ("literal_error", "enum"):
        return f"{value!r} is not one of: {_options(str(ctx.get('expected', '')))}"
    if kind == "string_pattern_mismatch":
        return f"{_shown(value)} does not match {ctx.get('pattern')}"
    if kind.startswith(("date_", "datetime_")):
        what = "date (YYYY-MM-DD)" if kind.startswith("date_") else "ISO 8601 time"
        return f"{_shown(value)} is not an {what}"
    if kind in (RULE, "value_error", "assertion_error"):
        return str(ctx.get("reason") or error.get("msg", "")).removeprefix("Value error, ")
    message = str(error.get("msg", "invalid"))
    return message[:1].lower() + message[1:]


_SIMPLE = {
    "missing": "required",
    "union_tag_not_found": "required",
    "extra_forbidden": "unknown field",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "uuid_type": "must be a UUID",
    "uuid_parsing": "must be a UUID",
    "is_iso_text": "must be ISO 8601 text",
}
_BOUNDS = {
    "greater_than_equal": "at least",
    "greater_than": "more than",
    "less_than_equal": "at most",
    "less_than": "less than",
}
_BOUND_KEYS = {
    "greater_than_equal": "ge",
    "greater_than": "gt",
    "less_than_equal": "le",
    "less_than": "lt",
}


def _unquote(text: str) -> str:
    return text.strip().strip("'\"")


def _options(expected: str) -> str:
    return ", ".join(
        _unquote(part) for part in expected.replace(" or ", ",").split(",") if part.strip()
    )


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:40] + "...")
    return repr(value)


def _iso_text(value: Any) -> Any:
    """Refuse numbers (and numeric text) where a date or time is expected.

    Pydantic's lax mode reads ``0.5`` or ``"1700000000"`` as seconds since 1970; a caller
    who sends a number meant something else.
    """
    if isinstance(value, date | datetime):
        return value
    if not isinstance(value, str):
        raise PydanticCustomError("is_iso_text", "must be ISO 8601 text")
    try:
        float(value)
    except ValueError:
        return value
    raise PydanticCustomError("is_iso_text", "must be ISO 8601 text")


@dataclass(frozen=True)
class SubmitContext:
    """What a submit-time rule may consult besides the payload: the deployment's settings."""

    settings: Settings


def submit_context(info: ValidationInfo) -> SubmitContext | None:
    """The :class:`SubmitContext` of this validation, or None (a payload read back)."""
    context = info.context
    return context if isinstance(context, SubmitContext) else None


def inside_folder(raw: str, root: Path) -> Path | None:
    """``raw`` as an absolute path, or None when it lies outside ``root``.

    A relative ``raw`` is taken from ``root``; symlinks and ``..`` are resolved first (of
    ``root`` too), so a link inside the folder that points out of it is outside. The file
    need not exist yet.
    """
    base = root.resolve()
    candidate = Path(raw)
    path = (candidate if candidate.is_absolute() else base / candidate).resolve()
    return path if path.is_relative_to(base) else None


#: A date given as ISO 8601 text (``2024-12-31``), never as a number.
IsoDate = Annotated[date, BeforeValidator(_iso_text)]
#: A time given as ISO 8601 text (``2024-12-31T09:00:00Z``), never as a number.
IsoDateTime = Annotated[datetime, BeforeValidator(_iso_text)]


__all__ = [
    "RULE",
    "FieldProblem",
    "IsoDate",
    "IsoDateTime",
    "SubmitContext",
    "describe",
    "field_problems",
    "inside_folder",
    "message_of",
    "rule_error",
    "submit_context",
]
