"""An audit row as read back: its columns plus its typed event.

The JSON form (:meth:`AuditRecord.to_json`) is what JSON, JSONL and CSV exports carry: the
row's canonical columns (see :mod:`app.audit.chain`) plus its ``hash``, so a file can be
re-hashed and verified offline exactly as the database is.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.audit.chain import format_timestamp, row_hash
from app.audit.events import AuditEvent, parse_event
from app.audit.exceptions import BadExportFile, CorruptRow

#: The columns of an audit row in export order (the canonical keys plus ``hash``).
COLUMNS = (
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


def _timestamp(moment: datetime) -> str:
    """:func:`format_timestamp`, without strftime's cost for the UTC values rows carry."""
    if moment.tzinfo is UTC and moment.year >= 1000:
        return moment.isoformat(timespec="microseconds")[:-6] + "Z"
    return format_timestamp(moment)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One ``audit_logs`` row with its ``event_data`` parsed into the typed event."""

    id: uuid.UUID
    chain_key: str
    seq: int
    request_id: uuid.UUID | None
    event_type: str
    severity: str
    actor: str
    agent_id: str | None
    occurred_at: datetime
    #: The JSON stored (and hashed) exactly as read; :attr:`event` is its typed form.
    event_data: dict[str, Any]
    prev_hash: str
    hash: str
    event: AuditEvent

    @classmethod
    def from_row(cls, row: Any) -> AuditRecord:
        """Build from a mapping of the ``audit_logs`` columns, or a row selecting
        :data:`COLUMNS` in that order (unpacked by position: the export hot path)."""
        if isinstance(row, dict):
            values = tuple(row[name] for name in COLUMNS)
        else:
            values = tuple(row)
        (rid, chain_key, seq, request_id, event_type, severity, actor, agent_id, occurred_at,
         event_data, prev_hash, hash_) = values  # fmt: skip
        try:
            event = parse_event(event_type, event_data)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise CorruptRow(
                f"audit row {rid}: its event_data is not a valid {event_type!r} event "
                "— run `ledgerflow audit verify`"
            ) from exc
        return cls(
            rid,
            chain_key,
            seq,
            request_id,
            event_type,
            severity,
            actor,
            agent_id,
            occurred_at,
            event_data,
            prev_hash,
            hash_,
            event,
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AuditRecord:
        """Read back what :meth:`to_json` wrote; anything else is a :class:`BadExportFile`."""
        try:
            request_id = data["request_id"]
            return cls.from_row(
                {
                    **data,
                    "id": uuid.UUID(data["id"]),
                    "seq": int(data["seq"]),
                    "request_id": uuid.UUID(request_id) if request_id else None,
                    "agent_id": data["agent_id"] or None,
                    "occurred_at": datetime.fromisoformat(data["occurred_at"]),
                }
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BadExportFile(f"not an audit row ({type(exc).__name__}: {exc})") from exc

    def row(self) -> dict[str, Any]:
        """The row's columns (what :func:`app.audit.chain.row_hash` and verify read)."""
        return {name: getattr(self, name) for name in COLUMNS}

    def to_json(self) -> dict[str, Any]:
        """JSON-ready columns: UUIDs as text, ``occurred_at`` in the canonical timestamp form."""
        return {
            "id": str(self.id),
            "chain_key": self.chain_key,
            "seq": self.seq,
            "request_id": str(self.request_id) if self.request_id else None,
            "event_type": self.event_type,
            "severity": self.severity,
            "actor": self.actor,
            "agent_id": self.agent_id,
            "occurred_at": _timestamp(self.occurred_at),
            "event_data": self.event_data,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }

    @property
    def hash_ok(self) -> bool:
        """True when the row's content still hashes to its ``hash``."""
        return row_hash(self.row()) == self.hash
