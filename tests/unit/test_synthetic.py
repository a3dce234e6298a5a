"""The synthetic warehouse generator: deterministic, realistic enough, QA-friendly names."""

from __future__ import annotations

import re
from datetime import date

import pytest

from app.agents.research import icd10
from app.agents.research.deidentify import RESTRICTED_ZIP3, age_at
from app.agents.research.synthetic import (
    CITIES,
    FACILITIES,
    FIRST_NAMES_F,
    FIRST_NAMES_M,
    LABS,
    LAST_NAMES,
    REFERENCE_DATE,
    generate_warehouse,
)


def test_same_size_and_seed_give_identical_rows() -> None:
    assert generate_warehouse(80, seed=5) == generate_warehouse(80, seed=5)
    assert generate_warehouse(80, seed=5) != generate_warehouse(80, seed=6)


def test_patients_carry_identifiers_and_plausible_values() -> None:
    rows = generate_warehouse(2000, seed=42)
    patients = rows.patients
    assert len({p["patient_id"] for p in patients}) == len({p["mrn"] for p in patients}) == 2000
    assert all(re.fullmatch(r"\d{5}", p["zip_code"]) for p in patients)
    assert all(re.fullmatch(r"\d{3}-555-\d{4}", p["phone"]) for p in patients)
    assert all(p["email"].endswith("@example.org") for p in patients)
    over_89 = [p for p in patients if age_at(p["birth_date"], REFERENCE_DATE) > 89]
    assert 20 <= len(over_89) <= 200
    assert any(p["zip_code"][:3] in RESTRICTED_ZIP3 for p in patients)
    assert all(p["birth_date"] <= REFERENCE_DATE for p in patients)

    births = {p["patient_id"]: p["birth_date"] for p in patients}
    for condition in rows.conditions:
        entry = icd10.lookup(condition["icd10_code"])
        assert entry is not None and entry.billable
        assert condition["description"] == entry.description
        assert births[condition["patient_id"]] <= condition["onset_date"] <= REFERENCE_DATE
    assert all(e["encounter_date"] >= date(2015, 1, 1) for e in rows.encounters)
    assert {o["loinc_code"] for o in rows.observations} == {lab.code for lab in LABS}


def test_no_name_is_also_a_word_of_anything_a_delivery_may_contain() -> None:
    # QA rejects a delivery holding a cohort member's name; these words must not trip it.
    vocabulary = [
        *(entry.description for entry in icd10.ICD10_CODES.values()),
        *(lab.name for lab in LABS),
        *(lab.unit for lab in LABS),
        *FACILITIES,
        *(city for city, *_ in CITIES),
        "outpatient inpatient emergency telehealth urgent_care",
    ]
    words = {word.lower() for text in vocabulary for word in re.findall(r"[A-Za-z']+", text)}
    names = {name.lower() for name in (*FIRST_NAMES_F, *FIRST_NAMES_M, *LAST_NAMES)}
    assert not names & words


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="between 1 and"):
        generate_warehouse(0)
