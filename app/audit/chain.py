"""Hash chains: canonical serialisation, row hashes, and appending to a chain head.

Canonical form of a row (what is hashed): a JSON object with exactly the keys
``id, chain_key, seq, request_id, event_type, severity, actor, agent_id, occurred_at,
event_data, prev_hash``; keys sorted at every level, no insignificant whitespace, UTF-8
without escaping, UUIDs as lower-case hyphenated text, ``occurred_at`` as UTC ISO 8601
with exactly six fractional digits and a ``Z``. ``hash = sha256(canonical).hexdigest()``.
The first row of a chain has ``prev_hash = GENESIS``. The same row hashes the same on
SQLite, PostgreSQL and in an exported file.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypedDict

from app.audit.events import AuditEvent
from app.database.types import EncodedDict, canonical_json_text
from app.ids import uuid7

GENESIS = "0" * 64
SYSTEM_CHAIN = "system"


def canonical_json(value: Any) -> bytes:
    """Sorted-key, compact, UTF-8 JSON: the one serialisation every digest uses."""
    return canonical_json_text(value).encode()


def digest(value: Any) -> str:
    """SHA-256 of the canonical JSON of ``value``."""
    return hashlib.sha256(canonical_json(value)).hexdigest()


def format_timestamp(moment: datetime) -> str:
    """UTC, microseconds, ``Z``: ``2026-11-23T09:00:00.000001Z``."""
    if moment.tzinfo is UTC and moment.year >= 1000:
        # The same text as the strftime below, at a fraction of its cost (hot path).
        return moment.isoformat(timespec="microseconds")[:-6] + "Z"
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class AuditRow(TypedDict):
    """One ``audit_logs`` row as written."""

    id: uuid.UUID
    chain_key: str
    seq: int
    request_id: uuid.UUID | None
    event_type: str
    severity: str
    actor: str
    agent_id: str | None
    occurred_at: datetime
    event_data: dict[str, Any]
    prev_hash: str
    hash: str


def row_hash(row: Mapping[str, Any]) -> str:
    """The hash of an audit row given as a mapping of its columns (``hash`` is ignored)."""
    request_id = row["request_id"]
    canonical = {
        "id": str(row["id"]),
        "chain_key": row["chain_key"],
        "seq": row["seq"],
        "request_id": str(request_id) if request_id is not None else None,
        "event_type": row["event_type"],
        "severity": row["severity"],
        "actor": row["actor"],
        "agent_id": row["agent_id"],
        "occurred_at": format_timestamp(row["occurred_at"]),
        "prev_hash": row["prev_hash"],
    }
    # The canonical text of the whole row, with event_data's text spliced in where its key
    # sorts (between chain_key and event_type), so it is encoded once for hash and column.
    # No string value can hold ',"event_type":' unescaped, so the first match is the key.
    text = canonical_json_text(canonical)
    at = text.index(',"event_type":')
    spliced = f'{text[:at]},"event_data":{canonical_json_text(row["event_data"])}{text[at:]}'
    return hashlib.sha256(spliced.encode()).hexdigest()


def chain_key_for(request_id: uuid.UUID | None) -> str:
    """The chain a row belongs to: its request's id, or the system chain."""
    return str(request_id) if request_id is not None else SYSTEM_CHAIN


@dataclass
class ChainHead:
    """The tip of one chain; :meth:`append` builds the next row and moves the tip."""

    chain_key: str
    seq: int = 0
    hash: str = ""

    def append(
        self,
        event: AuditEvent,
        *,
        actor: str,
        occurred_at: datetime,
        request_id: uuid.UUID | None = None,
        agent_id: str | None = None,
    ) -> AuditRow:
        """Return the ``audit_logs`` row for ``event`` and advance."""
        row = AuditRow(
            id=uuid7(),
            chain_key=self.chain_key,
            seq=self.seq + 1,
            request_id=request_id,
            event_type=event.event_type,
            severity=event.severity,
            actor=actor,
            agent_id=agent_id,
            occurred_at=occurred_at,
            event_data=EncodedDict.of(event.data()),
            prev_hash=self.hash or GENESIS,
            hash="",
        )
        row["hash"] = row_hash(row)
        self.seq = row["seq"]
        self.hash = row["hash"]
        return row
