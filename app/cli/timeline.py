"""A request's story for ``ledgerflow requests show``: one dated line per thing that happened.

Transitions, step attempts (started, then finished with their outcome and duration),
approvals (requested, decided) and escalations (opened, resolved) are merged in time
order. Things committed in the same transaction share a timestamp; they are ordered as
they happened: an attempt finishes, the request moves, a gate opens, the next attempt
starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from app.cli.common import id_shortener
from app.cli.tables import duration

if TYPE_CHECKING:
    from app.orchestrator.views import History

# Order of things stamped with the same time (see the module docstring).
_FINISHED, _MOVED, _OPENED, _STARTED = range(4)


@dataclass(frozen=True)
class Entry:
    """One line of the timeline."""

    at: datetime
    rank: int
    what: str


def timeline(history: History, *, wide: bool = False) -> list[Entry]:
    """Everything that happened to the request, oldest first."""
    from app.agents.summaries import approval_line, escalation_line

    entries: list[Entry] = []
    approval_id = id_shortener((a.id for a in history.approvals), wide)
    escalation_id = id_shortener((x.id for x in history.escalations), wide)
    for t in history.transitions:
        moved = f"{t.from_state} -> {t.to_state}" if t.from_state else f"submitted: {t.to_state}"
        where = f" at {t.step}" if t.step else ""
        why = f" ({t.reason})" if t.reason and t.reason != "submitted" else ""
        by = "" if t.reason and t.actor in t.reason else f", by {t.actor}"
        entries.append(Entry(t.created_at, _MOVED, f"{moved}{where}{why}{by}"))
    for e in history.executions:
        attempt = f"{e.step} attempt {e.attempt}"
        worker = f" on {e.worker_id}" if e.worker_id else ""
        entries.append(Entry(e.started_at, _STARTED, f"{attempt} started{worker}"))
        if e.finished_at is not None:
            took = f" in {duration(e.duration_ms)}" if e.duration_ms is not None else ""
            error = f": {e.error}" if e.error else ""
            entries.append(Entry(e.finished_at, _FINISHED, f"{attempt} {e.status}{took}{error}"))
    for a in history.approvals:
        name = f"approval {approval_id(a.id)}"
        summary = approval_line(a.summary)
        entries.append(
            Entry(a.requested_at, _OPENED, f"{name} requested after {a.step}: {summary}")
        )
        if a.decided_at is not None:
            note = f' "{a.note}"' if a.note else ""
            entries.append(
                Entry(a.decided_at, _FINISHED, f"{name} {a.status} by {a.decided_by}{note}")
            )
    for x in history.escalations:
        name = f"escalation {escalation_id(x.id)}"
        detail = escalation_line(x.reason, x.detail)
        entries.append(
            Entry(x.opened_at, _OPENED, f"{name} opened at {x.step}: {x.reason}; {detail}")
        )
        if x.resolved_at is not None:
            note = f' "{x.note}"' if x.note else ""
            entries.append(
                Entry(
                    x.resolved_at,
                    _FINISHED,
                    f"{name} resolved: {x.resolution} by {x.resolved_by}{note}",
                )
            )
    return sorted(entries, key=lambda entry: (entry.at, entry.rank))


__all__ = ["Entry", "timeline"]
