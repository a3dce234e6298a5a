"""Cross-checks: the tables beside the chain must say what the chain says.

While a request's chain is scanned, :class:`ChainFacts` keeps what the chain recorded about
the columns other tables hold: each ``state_changed`` (one per ``state_transitions`` row),
the payload digest of ``request_submitted``, each step's output digest
(``agent_succeeded``; an escalation resolved with ``skip`` records a fixed marker) and the
result digest of ``request_completed``. :func:`cross_check` then holds the request's
``requests`` row and its ``state_transitions`` rows to those facts:

* every transition row matches exactly one ``state_changed`` event on every column
  (``from_state``, ``to_state``, ``step``, ``actor``, ``reason``, ``created_at`` =
  ``occurred_at``), and every such event has its row (``transition_mismatch``);
* ``requests.state`` is the last ``state_changed``'s ``to_state``;
* ``requests.payload`` and ``payload_digest`` digest to ``request_submitted``'s
  ``payload_digest``; ``requests.result`` holds exactly the recorded step outputs, and a
  completed request's whole result digests to ``request_completed``'s ``result_digest``
  (``ledger_mismatch``, naming the column).

A payload emptied by retention (``purged_at`` set, ``payload`` ``{}``, ``result`` null) is
expected only when the system chain records that purge (``data_purged``, category
``payload``) for the request.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from app.audit.canonical import ACTOR, EVENT_DATA, EVENT_TYPE, ID, OCCURRED_AT, SEQ, RawRow
from app.audit.chain import canonical_json, digest
from app.audit.problems import Kind, Problem

#: Event types whose data the cross-checks read (every other row is only hashed).
FACT_EVENTS = frozenset(
    {
        "request_submitted",
        "state_changed",
        "agent_succeeded",
        "escalation_resolved",
        "request_completed",
    }
)
_TRANSITION_COLUMNS = ("from_state", "to_state", "step", "actor", "reason", "created_at")


def skipped_output(actor: str) -> dict[str, Any]:
    """What a step resolved with ``skip`` leaves in ``requests.result`` (see the engine)."""
    return {"skipped": True, "by": actor}


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class Transition:
    """One change of state, as a ``state_transitions`` row or a ``state_changed`` event."""

    from_state: str | None
    to_state: str
    step: str | None
    actor: str
    reason: str | None
    #: Canonical UTC text (``...Z``) of ``created_at`` / ``occurred_at``.
    created_at: str
    #: The row it was read from (a ``state_transitions`` or an ``audit_logs`` id).
    row_id: str = ""
    seq: int | None = None

    def key(self) -> tuple[Any, ...]:
        """What must be equal for a row and an event to be the same transition."""
        return (self.from_state, self.to_state, self.step, self.actor, self.reason, self.created_at)


class ChainFacts:
    """What one request chain recorded about its request's other tables."""

    __slots__ = ("completed_digest", "outputs", "payload_digest", "transitions")

    def __init__(self) -> None:
        self.transitions: list[Transition] = []
        self.payload_digest: str | None = None
        self.outputs: dict[str, str] = {}
        self.completed_digest: str | None = None

    def feed(self, row: RawRow) -> None:
        """Read one row of the chain (rows in ``seq`` order); ignores other event types."""
        event_type = row[EVENT_TYPE]
        if event_type not in FACT_EVENTS:
            return
        try:
            data = json.loads(row[EVENT_DATA])
        except (TypeError, ValueError):
            return  # the row cannot hash right either; the chain reports it
        if not isinstance(data, dict):
            return
        if event_type == "state_changed":
            self.transitions.append(
                Transition(
                    data.get("from_state"),
                    str(data.get("to_state")),
                    data.get("step"),
                    row[ACTOR],
                    data.get("reason"),
                    str(row[OCCURRED_AT]),
                    str(row[ID]),
                    row[SEQ],
                )
            )
        elif event_type == "request_submitted":
            self.payload_digest = data.get("payload_digest")
        elif event_type == "agent_succeeded":
            self.outputs[str(data.get("step"))] = str(data.get("output_digest"))
        elif event_type == "escalation_resolved" and data.get("resolution") == "skip":
            self.outputs[str(data.get("step"))] = digest(skipped_output(row[ACTOR]))
        elif event_type == "request_completed":
            self.completed_digest = data.get("result_digest")

    @property
    def last_state(self) -> str | None:
        """The state the chain says the request is in."""
        return self.transitions[-1].to_state if self.transitions else None


@dataclass(frozen=True, slots=True)
class RequestRow:
    """The columns of a ``requests`` row the cross-checks read (JSON still as text)."""

    id: str
    audit_seq: int
    audit_head: str
    state: str
    payload: str | None
    result: str | None
    purged: bool
    payload_digest: str


def json_digest(text: str | None) -> tuple[str, Any]:
    """``(digest, value)`` of stored JSON text (``value`` is ``None`` for SQL NULL).

    The stored text is hashed as it is first (ledgerflow writes canonical JSON) and only
    re-encoded when that does not give the canonical digest.
    """
    if text is None:
        return digest(None), None
    value = json.loads(text)
    canonical = canonical_json(value)
    return hashlib.sha256(canonical).hexdigest(), value


def _problem(
    request: RequestRow,
    kind: Kind,
    column: str,
    detail: str,
    *,
    table: str = "requests",
    row_id: str | None = None,
    seq: int | None = None,
    related: Iterable[str] = (),
) -> Problem:
    rid = _uuid(row_id if row_id is not None else request.id)
    return Problem(
        request.id,
        rid,
        seq,
        kind,
        detail,
        tuple(r for r in (_uuid(x) for x in related) if r is not None),
        table=table,
        column=column,
    )


def check_transitions(
    request: RequestRow, events: list[Transition], rows: list[Transition]
) -> list[Problem]:
    """Each ``state_transitions`` row against exactly one ``state_changed`` event."""
    extra = Counter(r.key() for r in rows)
    extra.subtract(e.key() for e in events)
    if not any(extra.values()):
        return []
    unmatched_rows = [r for r in rows if _take(extra, r.key(), +1)]
    unmatched_events = [e for e in events if _take(extra, e.key(), -1)]
    problems: list[Problem] = []
    for row, event in zip(unmatched_rows, unmatched_events, strict=False):
        columns = [
            c for c, a, b in zip(_TRANSITION_COLUMNS, row.key(), event.key(), strict=True) if a != b
        ]
        said = ", ".join(
            f"{c}={getattr(row, c)!r} but the event says {getattr(event, c)!r}" for c in columns
        )
        problems.append(
            _problem(
                request,
                "transition_mismatch",
                ",".join(columns),
                f"state_transitions row {row.row_id}: {said} (state_changed at seq {event.seq})",
                table="state_transitions",
                row_id=row.row_id,
                related=[event.row_id],
            )
        )
    for row in unmatched_rows[len(unmatched_events) :]:
        problems.append(
            _problem(
                request,
                "transition_mismatch",
                "id",
                f"state_transitions row {row.row_id} ({row.from_state} → {row.to_state}) is "
                "recorded by no state_changed event (inserted)",
                table="state_transitions",
                row_id=row.row_id,
            )
        )
    for event in unmatched_events[len(unmatched_rows) :]:
        problems.append(
            _problem(
                request,
                "transition_mismatch",
                "id",
                f"the state_changed event at seq {event.seq} ({event.from_state} → "
                f"{event.to_state}) has no state_transitions row (deleted)",
                table="audit_logs",
                row_id=event.row_id,
                seq=event.seq,
            )
        )
    return problems


def _take(counts: Counter[tuple[Any, ...]], key: tuple[Any, ...], sign: int) -> bool:
    """Consume one unmatched occurrence of ``key`` on the side ``sign`` (+ rows, - events)."""
    if counts[key] * sign > 0:
        counts[key] -= sign
        return True
    return False


def check_request(request: RequestRow, facts: ChainFacts, purge_recorded: bool) -> list[Problem]:
    """``requests.state``, ``payload`` and ``result`` against the chain's facts."""
    problems: list[Problem] = []
    last = facts.last_state
    if last is not None and request.state != last:
        problems.append(
            _problem(
                request,
                "ledger_mismatch",
                "state",
                f"requests.state is {request.state!r} but the last state_changed says {last!r}",
            )
        )
    expected = facts.payload_digest
    if expected is None:
        return problems
    if request.payload_digest != expected:
        problems.append(
            _problem(
                request,
                "ledger_mismatch",
                "payload_digest",
                f"requests.payload_digest {request.payload_digest[:12]}… is not the submitted "
                f"{expected[:12]}…",
            )
        )
    try:
        payload_digest, payload = json_digest(request.payload)
        _, result = json_digest(request.result)
    except ValueError:
        return [*problems, _problem(request, "ledger_mismatch", "payload", "not valid JSON")]
    emptied = request.purged and payload == {} and result is None
    if emptied:
        if not purge_recorded:
            problems.append(
                _problem(
                    request,
                    "ledger_mismatch",
                    "payload",
                    "payload and result were emptied (purged_at is set) but no data_purged "
                    "event on the system chain records a purge of this request",
                )
            )
        return problems
    if payload_digest != expected:
        problems.append(
            _problem(
                request,
                "ledger_mismatch",
                "payload",
                f"digests to {payload_digest[:12]}…, not the submitted {expected[:12]}…",
            )
        )
    problems.extend(_check_result(request, facts, result))
    return problems


def _check_result(request: RequestRow, facts: ChainFacts, result: Any) -> list[Problem]:
    outputs: Mapping[str, Any] = result if isinstance(result, dict) else {}
    if result is not None and not isinstance(result, dict):
        return [_problem(request, "ledger_mismatch", "result", "is not a JSON object")]
    wrong = sorted(
        step
        for step in set(outputs) | set(facts.outputs)
        if step not in outputs
        or step not in facts.outputs
        or digest(outputs[step]) != facts.outputs[step]
    )
    problems = []
    if wrong:
        problems.append(
            _problem(
                request,
                "ledger_mismatch",
                "result",
                f"step output(s) {', '.join(wrong)} differ from what the chain recorded",
            )
        )
    completed = facts.completed_digest
    if completed is not None and not wrong and digest(result or {}) != completed:
        problems.append(
            _problem(
                request,
                "ledger_mismatch",
                "result",
                f"digests to {digest(result or {})[:12]}…, not request_completed's "
                f"{completed[:12]}…",
            )
        )
    return problems
