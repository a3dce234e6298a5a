"""Normalising a research request's criteria (pure: no database)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from pydantic import ValidationError

from app.agents.research import ResearchCriteria, ResearchPayload, sample_research_payloads
from app.agents.research.requirements import check_requirements, completeness_score


def _payload(**overrides: Any) -> ResearchPayload:
    raw = {**sample_research_payloads()["type2_diabetes_adults"], **overrides}
    return ResearchPayload.model_validate(raw)


def test_criteria_are_normalised_deduplicated_and_put_in_catalogue_order() -> None:
    payload = _payload(
        inclusion_codes=["e119", "E11.9", " i10 "],
        exclusion_codes=["e109"],
        data_elements=["Observations", "demographics", "observations"],
        phi_level="DeIdentified",
        time_window={"from": "2015-01-01", "to": "2020-12-31"},
    )
    draft, issues, warnings = check_requirements(payload, site_min_cohort_size=10)
    assert issues == [] and warnings == []
    criteria = ResearchCriteria.model_validate(draft)
    assert criteria.inclusion_codes == ["E11.9", "I10"]
    assert criteria.exclusion_codes == ["E10.9"]
    assert [e.value for e in criteria.data_elements] == ["demographics", "observations"]
    assert criteria.reference_date == date(2020, 12, 31)
    assert completeness_score(issues) == 1.0


def test_every_sample_payload_is_complete() -> None:
    for raw in sample_research_payloads().values():
        _, issues, _ = check_requirements(ResearchPayload.model_validate(raw))
        assert issues == []


def test_missing_pieces_lower_the_completeness_score() -> None:
    payload = _payload(irb_number=None, time_window=None, data_elements=[])
    _, issues, _ = check_requirements(payload)
    assert {(i.field, i.code) for i in issues} == {
        ("irb_number", "missing"),
        ("time_window", "missing"),
        ("data_elements", "missing"),
    }
    assert completeness_score(issues) == round(6 / 9, 3)


def test_a_lower_minimum_cohort_is_a_warning_not_an_override() -> None:
    payload = _payload(min_cohort_size=3)
    draft, issues, warnings = check_requirements(payload, site_min_cohort_size=10)
    assert issues == [] and len(warnings) == 1
    assert ResearchCriteria.model_validate(draft).effective_min_cohort_size(10) == 10
    assert ResearchCriteria.model_validate(draft).effective_min_cohort_size(2) == 3


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"study_title": ""}, "study_title"),
        ({"unexpected": 1}, "unexpected"),
        ({"time_window": {"start": "yesterday", "end": "2020-01-01"}}, "start"),
        ({"min_cohort_size": 0}, "min_cohort_size"),
    ],
)
def test_wrongly_shaped_payloads_are_refused_naming_the_field(
    overrides: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError, match=field):
        _payload(**overrides)
