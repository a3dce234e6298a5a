"""The rules of a research request that need no data: one function per rule, one wording.

Each function returns what is wrong (``None`` or an empty list when nothing is). Two places
apply them: submit (:class:`~app.agents.research.submission.ResearchSubmission`, so the
HTTP API, the Python API and the CLI answer 422 / ``InvalidRequest`` at once), and the
requirements step (:func:`~app.agents.research.requirements.check_requirements`), which
keeps checking because a payload may reach it without going through submit (an agent
called directly, a row written before these rules existed).

Rules that need more than the payload stay with the requirements step and escalate to a
reviewer instead: a code missing from the ICD-10 table, a code both included and
excluded, a missing IRB number.
"""

from __future__ import annotations

from datetime import date

from app.agents.research import icd10
from app.agents.research.payload import DataElement, PhiLevel

#: Oldest age a request may ask about.
MAX_AGE = 130


def _shown(raw: str) -> str:
    return repr(raw if len(raw) <= 16 else raw[:16] + "...")


def age_range_problems(low: int, high: int) -> list[str]:
    """Ages are whole years from 0 to :data:`MAX_AGE`, the minimum not above the maximum."""
    problems = []
    if low < 0:
        problems.append(f"min {low} is below 0")
    if high > MAX_AGE:
        problems.append(f"max {high} is above {MAX_AGE}")
    if low > high:
        problems.append(f"min {low} is above max {high}")
    return problems


def time_window_problem(start: date, end: date) -> str | None:
    """The study window's start is not after its end."""
    return f"start {start} is after end {end}" if start > end else None


def code_format_problem(raw: str) -> str | None:
    """The text is shaped like an ICD-10-CM code (whether the code exists is checked later)."""
    try:
        icd10.normalise(raw)
    except icd10.Icd10FormatError:
        return f"{_shown(raw)} is not shaped like an ICD-10-CM code (e.g. E11.9)"
    return None


def data_element_problem(raw: str) -> str | None:
    """The data element is one of the catalogue's (any case, surrounding spaces ignored)."""
    if raw.strip().lower() in DataElement.__members__:
        return None
    return f"{_shown(raw)} is not one of: {', '.join(DataElement)}"


def phi_level_problem(raw: str) -> str | None:
    """The PHI level is one of the known levels (any case, surrounding spaces ignored)."""
    if raw.strip().lower() in PhiLevel.__members__:
        return None
    return f"{_shown(raw)} is not one of: {', '.join(PhiLevel)}"


__all__ = [
    "MAX_AGE",
    "age_range_problems",
    "code_format_problem",
    "data_element_problem",
    "phi_level_problem",
    "time_window_problem",
]
