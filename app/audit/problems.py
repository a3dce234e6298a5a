"""What verification reports: one :class:`Problem` per thing found wrong, in a :class:`Report`.

Every problem names where it is (the chain, and the table, row and column when there is
one) and what kind it is; :data:`PROBLEM_KINDS` says what each kind means (it is also the
table in ``docs/compliance.md``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal[
    "modified",
    "reordered",
    "deleted",
    "inserted",
    "broken_link",
    "head_mismatch",
    "checkpoint_mismatch",
    "checkpoint_deleted",
    "checkpoint_unsigned",
    "chain_missing",
    "request_missing",
    "unregistered",
    "registry_mismatch",
    "transition_mismatch",
    "ledger_mismatch",
]

#: Every kind of problem ``verify`` reports, and what it means.
PROBLEM_KINDS: dict[str, str] = {
    "modified": "the row's content no longer matches its hash",
    "reordered": "the row's content matches its hash at another seq: its seq was changed "
    "(a swap names both rows)",
    "deleted": "seq values are missing inside a chain (named by the row after the gap), at "
    "its end (the recorded head is further on), or a row a checkpoint or the chain registry "
    "recorded is gone (the chain was cut back)",
    "inserted": "a row past the recorded head, a second successor of a row, or a chain with "
    "no head",
    "broken_link": "neighbouring rows do not link and nothing above explains it (one was "
    "re-hashed)",
    "head_mismatch": "the chain's last row is not the recorded head, or a chain head row "
    "(`audit_chains`) is missing",
    "checkpoint_mismatch": "the row at a checkpointed seq is not the checkpointed one, or a "
    "checkpoint itself was edited (its content does not match its digest), does not link "
    "to the checkpoint before it, or its signature fails",
    "checkpoint_deleted": "a stored checkpoint is gone: a gap in the checkpoint sequence, or a "
    "checkpoint recorded on the system chain with no `audit_checkpoints` row",
    "checkpoint_unsigned": "`AUDIT_HMAC_KEY` is set but the checkpoint verified against is not "
    "signed (`--allow-unsigned` turns this into a note)",
    "chain_missing": "the chain registry (or, offline, the checkpoint) records a request chain "
    "that has no rows",
    "request_missing": "a request chain, or the chain registry, names a request that has no "
    "`requests` row",
    "unregistered": "a request or chain the chain registry never recorded, or an ended request "
    "whose end is not in the registry",
    "registry_mismatch": "the row at the terminal seq the registry recorded is not the recorded "
    "one, or the registry's terminal state differs from the request's",
    "transition_mismatch": "a `state_transitions` row that no `state_changed` event records "
    "(edited or inserted), or a `state_changed` event whose row is gone; names the column",
    "ledger_mismatch": "a `requests` column disagrees with the chain: `state` with the last "
    "`state_changed`, `payload`/`payload_digest` with `request_submitted`, `result` with the "
    "recorded step outputs and `request_completed`, an emptied payload with no `data_purged`",
}


@dataclass(frozen=True)
class Problem:
    """One thing found wrong: which chain, which row (if any), what is wrong, rows involved.

    ``table`` is where ``row_id`` lives (``audit_logs`` unless said); ``column`` names the
    column a cross-check found different.
    """

    chain_key: str
    row_id: uuid.UUID | None
    seq: int | None
    kind: Kind
    detail: str
    related: tuple[uuid.UUID, ...] = ()
    table: str = "audit_logs"
    column: str | None = None

    def __str__(self) -> str:
        if self.row_id is not None:
            where = f"row {self.row_id}" + (f" (seq {self.seq})" if self.seq is not None else "")
            if self.table != "audit_logs":
                where = f"{self.table} {where}"
        else:
            where = self.table if self.table != "audit_logs" else "chain"
        if self.column:
            where += f" column {self.column}"
        return f"{self.chain_key}: {where}: {self.kind}: {self.detail}"

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form for reports."""
        return {
            "chain_key": self.chain_key,
            "table": self.table,
            "row_id": str(self.row_id) if self.row_id else None,
            "column": self.column,
            "seq": self.seq,
            "kind": self.kind,
            "detail": self.detail,
            "related": [str(r) for r in self.related],
        }


@dataclass
class Report:
    """What a verification found: rows and chains checked, problems, and notes for people.

    ``checkpoint`` describes the checkpoint the chains were held to (``None``: none).
    """

    rows: int = 0
    chains: int = 0
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checkpoint: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        """The machine-readable report (``--json``, the API)."""
        return {
            "ok": self.ok,
            "rows": self.rows,
            "chains": self.chains,
            "checkpoint": self.checkpoint,
            "problems": [p.to_json() for p in self.problems],
            "notes": self.notes,
        }
