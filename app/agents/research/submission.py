"""What submitting a research request accepts: the payload's shapes plus the data-free rules.

:class:`ResearchSubmission` is :class:`~app.agents.research.payload.ResearchPayload` with
the rules of :mod:`app.agents.research.rules` attached to the fields they judge, so that a
payload with several mistakes is refused with all of them at once, each under its field
(``payload.age_range: min 80 is above max 30``). The research workflow validates with it at
submit; the HTTP API documents it as the request body.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from app.agents.research import rules
from app.agents.research.payload import AgeRange, PhiLevel, ResearchPayload, TimeWindow
from app.validation import rule_error


def _holds(rule: Callable[[str], str | None]) -> Callable[[str], str]:
    def check(value: str) -> str:
        problem = rule(value)
        if problem is not None:
            raise rule_error(problem)
        return value

    return check


CodeText = Annotated[str, AfterValidator(_holds(rules.code_format_problem))]
ElementText = Annotated[str, AfterValidator(_holds(rules.data_element_problem))]
PhiLevelText = Annotated[str, AfterValidator(_holds(rules.phi_level_problem))]


class CheckedAgeRange(AgeRange):
    """An age range whose bounds are in order and within 0 to ``MAX_AGE``."""

    @model_validator(mode="after")
    def _in_order(self) -> CheckedAgeRange:
        problems = rules.age_range_problems(self.min, self.max)
        if problems:
            raise rule_error("; ".join(problems))
        return self


class CheckedTimeWindow(TimeWindow):
    """A study window that does not end before it starts."""

    @model_validator(mode="after")
    def _in_order(self) -> CheckedTimeWindow:
        problem = rules.time_window_problem(self.start, self.end)
        if problem is not None:
            raise rule_error(problem)
        return self


class ResearchSubmission(ResearchPayload):
    """A research data request as submitted: shapes and data-free rules, all checked at once."""

    inclusion_codes: list[CodeText] = Field(default_factory=list, max_length=200)
    exclusion_codes: list[CodeText] = Field(default_factory=list, max_length=200)
    age_range: CheckedAgeRange = Field(default_factory=CheckedAgeRange)
    time_window: CheckedTimeWindow | None = None
    data_elements: list[ElementText] = Field(default_factory=list, max_length=20)
    phi_level: PhiLevelText = PhiLevel.deidentified.value


__all__ = ["CheckedAgeRange", "CheckedTimeWindow", "ResearchSubmission"]
