"""Column types that behave the same on SQLite and PostgreSQL (dialect differences live here)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Dialect
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator

#: One encoder for every JSON text ledgerflow writes and hashes: sorted keys at every level,
#: no insignificant whitespace, UTF-8 unescaped. (``json.dumps`` with these options builds a
#: new encoder per call, which costs more than the encoding of the small objects of a step.)
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json_text(value: Any) -> str:
    """``value`` as canonical JSON text: what JSON columns store and audit digests hash.

    Storing the canonical text lets verification hash SQLite's stored ``event_data`` as
    it is, without parsing it (PostgreSQL's JSONB keeps its own form).
    """
    if type(value) is EncodedDict:
        return value.canonical_text
    return _CANONICAL.encode(value)


class EncodedDict(dict[str, Any]):
    """A JSON object that carries its canonical text, encoded once where it was built.

    It is an ordinary ``dict`` to every reader; :func:`canonical_json_text` (and so the
    bulk writer and every digest) uses the carried text instead of encoding it again. Build
    it with :meth:`of`; never mutate one (the text would no longer match).
    """

    __slots__ = ("canonical_text",)
    canonical_text: str

    @classmethod
    def of(cls, value: dict[str, Any]) -> EncodedDict:
        """``value`` with its canonical JSON text."""
        made = cls(value)
        made.canonical_text = _CANONICAL.encode(value)
        return made


#: JSON on SQLite, JSONB on PostgreSQL; Python ``None`` is SQL NULL, not JSON ``null``.
JSONType = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp with microseconds on both backends.

    PostgreSQL stores ``timestamptz``. SQLite has no timestamp type; SQLAlchemy stores a
    fixed-width ``YYYY-MM-DD HH:MM:SS.ffffff`` string, which sorts correctly, so we store
    UTC there and re-attach the zone on the way out. Naive datetimes are refused: a
    timestamp without a zone is a bug waiting to happen in an audit trail.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC timestamp column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)
