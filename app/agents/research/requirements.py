"""Step ``requirements``: validate and normalise the request's criteria, score completeness.

Every problem is collected, none stops the check early, so a reviewer sees the whole list
at once: a missing IRB number, unknown or malformed ICD-10 codes, a code both included and
excluded, inverted age or date ranges, missing or unknown data elements, an unknown PHI
level. Any problem escalates (``incomplete_requirements``) and records the draft criteria
with the issues; otherwise the normalised :class:`ResearchCriteria` go to the next steps.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from app.agents.base import Agent, AgentContext, DomainWrite, NeedsHumanReview, StepResult
from app.agents.research import icd10, rules
from app.agents.research.payload import (
    DataElement,
    ResearchCriteria,
    ResearchPayload,
)

#: The parts of a request the completeness score counts, one point each.
CHECKED_FIELDS = (
    "researcher",
    "study_title",
    "irb_number",
    "inclusion_codes",
    "exclusion_codes",
    "age_range",
    "time_window",
    "data_elements",
    "phi_level",
)


class RequirementIssue(BaseModel):
    """One reason a request cannot go ahead as written."""

    model_config = ConfigDict(frozen=True)

    field: str
    code: str
    message: str


class RequirementsInput(BaseModel):
    """The submitted payload (this is the first step: nothing comes before it)."""

    payload: ResearchPayload
    previous: dict[str, Any] = Field(default_factory=dict)


class RequirementsOutput(BaseModel):
    """Normalised criteria, the completeness score (1.0 here) and non-blocking warnings."""

    criteria: ResearchCriteria
    completeness_score: float
    warnings: list[str] = Field(default_factory=list)


def _codes(field: str, raws: list[str], issues: list[RequirementIssue]) -> list[str]:
    codes: list[str] = []
    for raw in raws:
        shape = rules.code_format_problem(raw)
        if shape is not None:
            issues.append(RequirementIssue(field=field, code="icd10_format", message=shape))
            continue
        code = icd10.normalise(raw)
        if icd10.lookup(code) is None:
            issues.append(
                RequirementIssue(
                    field=field,
                    code="icd10_unknown",
                    message=f"{code} is not a known ICD-10-CM code",
                )
            )
            continue
        if code not in codes:
            codes.append(code)
    return codes


def _excluded_by(code: str, exclusions: list[str]) -> str | None:
    for excluded in exclusions:
        entry = icd10.lookup(excluded)
        if code == excluded or (
            entry is not None and entry.is_category and code.startswith(excluded)
        ):
            return excluded
    return None


def check_requirements(
    payload: ResearchPayload, site_min_cohort_size: int = 0
) -> tuple[dict[str, Any], list[RequirementIssue], list[str]]:
    """Normalise ``payload`` into draft criteria; return them with every issue and warning."""
    issues: list[RequirementIssue] = []
    warnings: list[str] = []

    def issue(field: str, code: str, message: str) -> None:
        issues.append(RequirementIssue(field=field, code=code, message=message))

    if not payload.researcher.strip():
        issue("researcher", "missing", "the researcher's name is required")
    if not payload.study_title.strip():
        issue("study_title", "missing", "a study title is required")
    if payload.irb_number is None or not payload.irb_number.strip():
        issue("irb_number", "missing", "an IRB approval number is required")

    if not payload.inclusion_codes:
        issue("inclusion_codes", "missing", "at least one inclusion ICD-10-CM code is required")
    inclusion = _codes("inclusion_codes", payload.inclusion_codes, issues)
    exclusion = _codes("exclusion_codes", payload.exclusion_codes, issues)
    for code in inclusion:
        excluded = _excluded_by(code, exclusion)
        if excluded is not None:
            issue(
                "exclusion_codes",
                "ambiguous",
                f"{code} is included but excluded by {excluded}",
            )

    ages = payload.age_range
    for problem in rules.age_range_problems(ages.min, ages.max):
        issue("age_range", "inverted" if "above max" in problem else "invalid", problem)

    window = payload.time_window
    if window is None:
        issue("time_window", "missing", "a study window (start and end dates) is required")
    else:
        inverted = rules.time_window_problem(window.start, window.end)
        if inverted is not None:
            issue("time_window", "inverted", inverted)

    elements: list[DataElement] = []
    if not payload.data_elements:
        issue("data_elements", "missing", "at least one data element is required")
    for raw in payload.data_elements:
        unknown = rules.data_element_problem(raw)
        if unknown is not None:
            issue("data_elements", "unknown", unknown)
        elif DataElement(raw.strip().lower()) not in elements:
            elements.append(DataElement(raw.strip().lower()))
    elements.sort(key=list(DataElement).index)

    level = payload.phi_level.strip().lower()
    invalid_level = rules.phi_level_problem(payload.phi_level)
    if invalid_level is not None:
        issue("phi_level", "invalid", invalid_level)

    override = payload.min_cohort_size
    if override is not None and override < site_min_cohort_size:
        warnings.append(
            f"min_cohort_size {override} is below the site minimum {site_min_cohort_size}, "
            "which applies instead"
        )

    draft: dict[str, Any] = {
        "inclusion_codes": inclusion,
        "exclusion_codes": exclusion,
        "age_range": ages.model_dump(mode="json"),
        "time_window": None if window is None else window.model_dump(mode="json"),
        "data_elements": [element.value for element in elements],
        "phi_level": level,
        "min_cohort_size": payload.min_cohort_size,
    }
    return draft, issues, warnings


def completeness_score(issues: list[RequirementIssue]) -> float:
    """The share of :data:`CHECKED_FIELDS` without an issue, rounded to three places."""
    failing = {issue.field for issue in issues}
    passed = sum(1 for field in CHECKED_FIELDS if field not in failing)
    return round(passed / len(CHECKED_FIELDS), 3)


class RequirementsAgent(Agent[RequirementsInput, RequirementsOutput]):
    """Validates and normalises a research request's criteria (``research.requirements``)."""

    agent_id: ClassVar[str] = "research.requirements"
    input_model: ClassVar[type[BaseModel]] = RequirementsInput
    output_model: ClassVar[type[BaseModel]] = RequirementsOutput

    async def run(
        self, context: AgentContext, input: RequirementsInput
    ) -> StepResult[RequirementsOutput]:
        """Check the payload; escalate with every issue, or return the normalised criteria."""
        draft, issues, warnings = check_requirements(
            input.payload, context.settings.min_cohort_size
        )
        score = completeness_score(issues)
        row = {
            "request_id": context.request_id,
            "criteria": draft,
            "completeness_score": score,
            "issues": [issue.model_dump() for issue in issues],
        }
        write = DomainWrite("requirements_data", row)
        if issues:
            context.log.info(
                "requirements_incomplete", issue_count=len(issues), completeness_score=score
            )
            raise NeedsHumanReview(
                "incomplete_requirements",
                f"{len(issues)} problem(s) in the request's criteria",
                detail={
                    "completeness_score": score,
                    "issues": [issue.model_dump() for issue in issues],
                },
                writes=(write,),
            )
        criteria = ResearchCriteria.model_validate(draft)
        context.log.info("requirements_checked", completeness_score=score)
        output = RequirementsOutput(criteria=criteria, completeness_score=score, warnings=warnings)
        return StepResult(output, writes=(write,))


__all__ = [
    "CHECKED_FIELDS",
    "RequirementIssue",
    "RequirementsAgent",
    "RequirementsInput",
    "RequirementsOutput",
    "check_requirements",
    "completeness_score",
]
