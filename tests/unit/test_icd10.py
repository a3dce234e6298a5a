"""The ICD-10-CM table: normalisation, format and membership."""

from __future__ import annotations

import pytest

from app.agents.research import icd10
from app.agents.research.synthetic import CONDITIONS


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("e119", "E11.9"),
        ("E11.9", "E11.9"),
        (" i10 ", "I10"),
        ("j45909", "J45.909"),
        ("f32a", "F32.A"),
        ("E 11.65", "E11.65"),
        ("e11", "E11"),
    ],
)
def test_codes_are_normalised_to_upper_case_dotted_form(raw: str, expected: str) -> None:
    assert icd10.normalise(raw) == expected


@pytest.mark.parametrize("raw", ["", "11.9", "E1", "EE1.9", "E11.12345", "E11-9", "E11..9", "é119"])
def test_malformed_codes_are_refused(raw: str) -> None:
    with pytest.raises(icd10.Icd10FormatError):
        icd10.normalise(raw)


def test_well_formed_codes_outside_the_table_are_unknown() -> None:
    assert icd10.lookup(icd10.normalise("E11.999")) is None
    assert icd10.lookup("Z99.99") is None


def test_categories_are_known_but_not_billable() -> None:
    category = icd10.lookup("E11")
    assert category is not None and category.is_category
    code = icd10.lookup("E11.9")
    assert code is not None and code.billable
    assert code.description == "Type 2 diabetes mellitus without complications"


def test_every_table_entry_is_well_formed_and_fits_the_warehouse_column() -> None:
    for code, entry in icd10.ICD10_CODES.items():
        assert icd10.normalise(code) == code == entry.code
        assert len(code) <= 8 and 0 < len(entry.description) <= 128


def test_billable_codes_sit_under_a_category_only_when_it_is_in_the_table() -> None:
    for entry in icd10.billable_codes():
        head = icd10.lookup(entry.code[:3])
        assert head is None or head.is_category or head.code == entry.code


def test_every_code_the_seeder_uses_is_a_billable_table_entry() -> None:
    billable = {entry.code for entry in icd10.billable_codes()}
    assert {spec.code for spec in CONDITIONS} <= billable
