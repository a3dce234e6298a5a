"""A request's history as one list of moments, oldest first: who did what, and when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.orchestrator.views import History


@dataclass(frozen=True)
class Moment:
    """One line of the timeline."""

    at: datetime
    what: str
    who: str | None
    detail: str | None = None
    #: ``transition``, ``step``, ``approval`` or ``escalation`` (for styling and filtering).
    kind: str = "transition"


def _duration(ms: int | None) -> str:
    if ms is None:
        return ""
    return f"{ms} ms" if ms < 10_000 else f"{ms / 1000:.1f} s"


def timeline(history: History) -> list[Moment]:
    """Transitions, step attempts, approval gates and escalations merged in time order."""
    moments: list[Moment] = []
    for t in history.transitions:
        moved = f"{t.from_state or 'new'} → {t.to_state}".replace("_", " ")
        moments.append(
            Moment(t.created_at, moved + (f" at {t.step}" if t.step else ""), t.actor, t.reason)
        )
    for e in history.executions:
        took = _duration(e.duration_ms)
        detail = "; ".join(part for part in (took, e.error) if part) or None
        moments.append(
            Moment(
                e.started_at,
                f"step {e.step}, attempt {e.attempt}: {e.status.replace('_', ' ')}",
                e.worker_id,
                detail,
                "step",
            )
        )
    for a in history.approvals:
        moments.append(
            Moment(a.requested_at, f"approval requested after {a.step}", None, None, "approval")
        )
        if a.decided_at is not None:
            moments.append(
                Moment(a.decided_at, f"approval {a.status}", a.decided_by, a.note, "approval")
            )
    for x in history.escalations:
        moments.append(
            Moment(
                x.opened_at,
                f"escalated at {x.step}: {x.reason.replace('_', ' ')}",
                None,
                None,
                "escalation",
            )
        )
        if x.resolved_at is not None:
            what = f"escalation {x.status}" + (f": {x.resolution}" if x.resolution else "")
            moments.append(Moment(x.resolved_at, what, x.resolved_by, x.note, "escalation"))
    return sorted(moments, key=lambda m: m.at)
