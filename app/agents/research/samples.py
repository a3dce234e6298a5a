"""Sample research request payloads that make sense against the synthetic warehouse."""

from __future__ import annotations

from typing import Any


def sample_research_payloads() -> dict[str, dict[str, Any]]:
    """Valid payloads by name, for demos and tests against a seeded warehouse.

    On the default warehouse (2,000 patients, seed 42; also 300 patients, seed 42) with the
    default minimum cohort of 10: ``type2_diabetes_adults`` and ``hypertension_older_adults``
    are feasible, ``cystic_fibrosis_under_40`` is below the minimum and escalates.
    """
    return {
        "type2_diabetes_adults": {
            "researcher": "Dr. A. Researcher",
            "irb_number": "IRB-2024-0142",
            "study_title": "Glycaemic control in adults with type 2 diabetes",
            "inclusion_codes": ["E11"],
            "exclusion_codes": ["E10.9"],
            "age_range": {"min": 30, "max": 80},
            "time_window": {"start": "2010-01-01", "end": "2024-12-31"},
            "data_elements": ["demographics", "conditions", "encounters", "observations"],
            "phi_level": "deidentified",
        },
        "hypertension_older_adults": {
            "researcher": "Dr. B. Investigator",
            "irb_number": "IRB-2024-0207",
            "study_title": "Blood pressure trajectories in older adults",
            "inclusion_codes": ["I10"],
            "exclusion_codes": [],
            "age_range": {"min": 60, "max": 120},
            "time_window": {"start": "2012-01-01", "end": "2024-12-31"},
            "data_elements": ["demographics", "encounters", "observations"],
            "phi_level": "limited",
        },
        "cystic_fibrosis_under_40": {
            "researcher": "Dr. C. Scientist",
            "irb_number": "IRB-2024-0311",
            "study_title": "Cystic fibrosis diagnosed in people under 40",
            "inclusion_codes": ["E84"],
            "exclusion_codes": [],
            "age_range": {"min": 0, "max": 40},
            "time_window": {"start": "2015-01-01", "end": "2024-12-31"},
            "data_elements": ["demographics", "conditions"],
            "phi_level": "deidentified",
        },
    }


__all__ = ["sample_research_payloads"]
