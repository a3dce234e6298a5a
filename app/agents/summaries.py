"""One line a reviewer reads: what an approval asks them to decide, why an escalation stopped.

Approvals carry the gated step's output and escalations the agent's detail as JSON (see
``app.orchestrator.steps``); these functions turn the shapes the reference agents produce
into a single line of text and fall back to ``key=value`` pairs for any other agent. They
read plain dictionaries, so old rows and unknown agents never fail to print.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

_SEPARATOR = "; "


def approval_line(summary: Mapping[str, Any] | None) -> str:
    """What the reviewer approves: research criteria, or why a transcript needs a look."""
    if not summary:
        return ""
    output = summary.get("output")
    criteria = output.get("criteria") if isinstance(output, Mapping) else None
    if isinstance(criteria, Mapping):
        return criteria_line(criteria)
    if "confidence" in summary:
        return transcript_review_line(summary)
    parts = [str(summary["reason"])] if summary.get("reason") else []
    rest = {k: v for k, v in summary.items() if k not in ("reason", "output")}
    if rest:
        parts.append(_pairs(rest))
    elif not parts and isinstance(output, Mapping):
        parts.append(_pairs(output))
    return _SEPARATOR.join(parts)


def criteria_line(criteria: Mapping[str, Any]) -> str:
    """Research criteria in one line: codes, ages, window, data elements, PHI level."""
    codes = _join(criteria.get("inclusion_codes")) or "no codes"
    excluded = _join(criteria.get("exclusion_codes"))
    if excluded:
        codes += f" excluding {excluded}"
    parts = [codes]
    ages = criteria.get("age_range")
    if isinstance(ages, Mapping):
        parts.append(f"ages {ages.get('min')}-{ages.get('max')}")
    window = criteria.get("time_window")
    if isinstance(window, Mapping):
        parts.append(f"{window.get('start')} to {window.get('end')}")
    parts.append(_join(criteria.get("data_elements")) or "no data elements")
    if criteria.get("phi_level"):
        parts.append(str(criteria["phi_level"]))
    if criteria.get("min_cohort_size"):
        parts.append(f"cohort >= {criteria['min_cohort_size']}")
    return _SEPARATOR.join(parts)


def transcript_review_line(detail: Mapping[str, Any]) -> str:
    """Why a transcript waits for a clinician: reasons, confidence against the minimum."""
    reason = detail.get("reason") or "review"
    parts = [str(reason)]
    confidence, minimum = detail.get("confidence"), detail.get("min_confidence")
    if isinstance(confidence, int | float):
        bar = f" (minimum {minimum:.2f})" if isinstance(minimum, int | float) else ""
        parts.append(f"confidence {confidence:.2f}{bar}")
    coverage = detail.get("speech_coverage")
    if isinstance(coverage, int | float):
        parts.append(f"speech covered {coverage:.0%}")
    reasons = _join(detail.get("reasons"))
    if reasons:
        parts.append(reasons)
    return _SEPARATOR.join(parts)


def escalation_line(reason: str, detail: Mapping[str, Any] | None) -> str:
    """Why a request stopped for a person, in one line (the reason code is shown apart)."""
    detail = dict(detail or {})
    issues = detail.pop("issues", None)
    parts = [str(detail.pop("message"))] if detail.get("message") else []
    if isinstance(issues, Sequence) and not isinstance(issues, str):
        parts.extend(
            f"{i.get('field')}: {i.get('message')}" for i in issues if isinstance(i, Mapping)
        )
        # The issues are the point; the score they lower is for --json.
        detail.pop("completeness_score", None)
    if reason == "attempts_exhausted":
        attempts, error = detail.pop("attempts", None), detail.pop("last_error", None)
        if attempts is not None:
            parts.append(f"{attempts} attempt(s)")
        if error:
            parts.append(f"last error: {error}")
    if reason == "cohort_below_minimum":
        # The message already gives both sizes; availability per element is for --json.
        detail = {}
    if detail:
        parts.append(_pairs(detail))
    return _SEPARATOR.join(parts)


def _join(values: Any) -> str:
    if isinstance(values, Sequence) and not isinstance(values, str):
        return ", ".join(str(v) for v in values)
    return ""


def _pairs(data: Mapping[str, Any]) -> str:
    return " ".join(
        f"{k}={v}" for k, v in sorted(data.items()) if v not in (None, "", [], {}) and k != "output"
    )


__all__ = ["approval_line", "criteria_line", "escalation_line", "transcript_review_line"]
