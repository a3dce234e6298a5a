"""Hashing audit rows read raw from the driver, without building Python objects per column.

Verification and export read rows as plain tuples in :data:`RAW_COLUMNS` order with every
value as text where the driver allows (ids as hyphenated UUID text, ``occurred_at`` as the
canonical ``...Z`` timestamp, ``event_data`` as JSON text). :func:`canonical_text` splices
them into the canonical form :func:`app.audit.chain.row_hash` hashes, escaping every string
exactly as the canonical JSON encoder does, so a row that matches here matches there.

:func:`hash_ok` tries, cheapest first: the stored ``event_data`` text as it is (ledgerflow
stores canonical JSON, so on SQLite this is the usual case), then that text re-encoded
canonically (PostgreSQL's JSONB prints its own way), and only then the row converted to
Python values and hashed by :func:`row_hash` itself, which is the definition. A row is
reported changed only when the definition says so.

Why splicing is safe: every value but ``event_data`` and ``seq`` is JSON-escaped, so no value
can contain the quote that opens the next key; a spliced ``event_data`` that is not the
original text therefore cannot produce the original bytes.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from json.encoder import encode_basestring  # C-accelerated with ensure_ascii=False
from typing import Any

from app.audit.chain import canonical_json, format_timestamp, row_hash

#: Column order of a raw row (the canonical keys plus ``hash``).
RAW_COLUMNS = (
    "id",
    "chain_key",
    "seq",
    "request_id",
    "event_type",
    "severity",
    "actor",
    "agent_id",
    "occurred_at",
    "event_data",
    "prev_hash",
    "hash",
)
ID, CHAIN_KEY, SEQ, REQUEST_ID, EVENT_TYPE, SEVERITY, ACTOR, AGENT_ID = range(8)
OCCURRED_AT, EVENT_DATA, PREV_HASH, HASH = range(8, 12)

RawRow = tuple[Any, ...]
_NULL = "null"
#: Stands in for an ``occurred_at`` that does not parse (the row cannot hash right).
_UNPARSABLE_TIME = datetime(1, 1, 1, tzinfo=UTC)


def canonical_text(row: RawRow, event_data: str) -> str:
    """The canonical JSON text of a raw row, with ``event_data`` spliced in as given."""
    agent, rid = row[AGENT_ID], row[REQUEST_ID]
    return (
        '{"actor":'
        + encode_basestring(row[ACTOR])
        + ',"agent_id":'
        + (_NULL if agent is None else encode_basestring(agent))
        + ',"chain_key":'
        + encode_basestring(row[CHAIN_KEY])
        + ',"event_data":'
        + event_data
        + ',"event_type":'
        + encode_basestring(row[EVENT_TYPE])
        + ',"id":'
        + encode_basestring(row[ID])
        + ',"occurred_at":'
        + encode_basestring(row[OCCURRED_AT])
        + ',"prev_hash":'
        + encode_basestring(row[PREV_HASH])
        + ',"request_id":'
        + (_NULL if rid is None else encode_basestring(rid))
        + ',"seq":'
        + str(row[SEQ])
        + ',"severity":'
        + encode_basestring(row[SEVERITY])
        + "}"
    )


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _spliced_ok(row: RawRow, stored_is_canonical: bool) -> bool:
    expected = row[HASH]
    text = row[EVENT_DATA]
    if type(row[SEQ]) is not int or type(text) is not str:
        return False
    try:
        if stored_is_canonical and _sha(canonical_text(row, text)) == expected:
            return True
        recoded = canonical_json(json.loads(text)).decode()
        return bool(_sha(canonical_text(row, recoded)) == expected)
    except (TypeError, ValueError):
        return False  # not text where text belongs, or not JSON: the definition decides


def hash_ok(row: RawRow, *, stored_is_canonical: bool = True) -> bool:
    """True when the row's content hashes to its ``hash`` (see the module docstring).

    ``stored_is_canonical=False`` skips the first try (PostgreSQL's JSONB text never is).
    A value of another type than the splice expects (a tampered ``seq`` stored as text, a
    number where text belongs) goes straight to the definition.
    """
    if _spliced_ok(row, stored_is_canonical):
        return True
    return bool(row_hash(typed_row(row)) == row[HASH])


def _uuid(value: Any) -> Any:
    if value is None or isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return value


def parse_time(value: Any) -> datetime:
    """A stored or canonical timestamp as an aware UTC datetime (a sentinel if unparsable)."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return _UNPARSABLE_TIME
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _json_value(value: Any) -> Any:
    """Stored JSON text as its value; text that is not JSON stays text (it cannot hash to
    what was written, so its row reads as modified)."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def typed_row(row: RawRow) -> dict[str, Any]:
    """A raw row as the column → value mapping :func:`row_hash` and diagnosis read."""
    return {
        "id": _uuid(row[ID]),
        "chain_key": row[CHAIN_KEY],
        "seq": row[SEQ],
        "request_id": _uuid(row[REQUEST_ID]),
        "event_type": row[EVENT_TYPE],
        "severity": row[SEVERITY],
        "actor": row[ACTOR],
        "agent_id": row[AGENT_ID],
        "occurred_at": parse_time(row[OCCURRED_AT]),
        "event_data": _json_value(row[EVENT_DATA]),
        "prev_hash": row[PREV_HASH],
        "hash": row[HASH],
    }


def from_json(data: dict[str, Any]) -> RawRow:
    """A row of an export file (``AuditRecord.to_json`` form) as a raw row."""
    event_data = data["event_data"]
    return (
        data["id"],
        data["chain_key"],
        data["seq"],
        data["request_id"],
        data["event_type"],
        data["severity"],
        data["actor"],
        data["agent_id"],
        data["occurred_at"],
        event_data if isinstance(event_data, str) else canonical_json(event_data).decode(),
        data["prev_hash"],
        data["hash"],
    )


def from_typed(row: dict[str, Any]) -> RawRow:
    """A row given as typed column values (as :class:`ChainHead` builds them) as a raw row."""
    request_id = row["request_id"]
    occurred_at = row["occurred_at"]
    return (
        str(row["id"]),
        row["chain_key"],
        row["seq"],
        None if request_id is None else str(request_id),
        row["event_type"],
        row["severity"],
        row["actor"],
        row["agent_id"],
        format_timestamp(occurred_at) if isinstance(occurred_at, datetime) else occurred_at,
        canonical_json(row["event_data"]).decode(),
        row["prev_hash"],
        row["hash"],
    )
