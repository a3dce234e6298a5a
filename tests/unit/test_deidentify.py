"""De-identification rules, one value at a time (no database)."""

from __future__ import annotations

import uuid
from datetime import date

import pytest

from app.agents.research.cohort import years_before
from app.agents.research.deidentify import (
    Deidentifier,
    age_at,
    age_group,
    birth_year,
    pseudonym,
    zip3,
)
from app.agents.research.elements import CATALOGUE
from app.agents.research.payload import DataElement, PhiLevel
from app.agents.research.qa import CohortIdentifiers, scan_cell

REQUEST = uuid.UUID("00000000-0000-4000-8000-000000000001")
OTHER_REQUEST = uuid.UUID("00000000-0000-4000-8000-000000000002")


def test_pseudonyms_are_stable_within_a_request_and_differ_across_requests() -> None:
    first = pseudonym(REQUEST, "P0000001")
    assert first == pseudonym(REQUEST, "P0000001")
    assert len(first) == 16 and int(first, 16) >= 0
    assert first != pseudonym(REQUEST, "P0000002")
    assert first != pseudonym(OTHER_REQUEST, "P0000001")
    assert first != pseudonym(REQUEST, "P0000001", secret=b"deployment key")
    assert "P0000001" not in first


@pytest.mark.parametrize(
    ("birth", "on", "age"),
    [
        (date(1980, 6, 15), date(2024, 6, 14), 43),
        (date(1980, 6, 15), date(2024, 6, 15), 44),
        (date(2000, 2, 29), date(2023, 2, 28), 22),
        (date(2000, 2, 29), date(2024, 2, 29), 24),
    ],
)
def test_age_counts_whole_years_from_the_birthday(birth: date, on: date, age: int) -> None:
    assert age_at(birth, on) == age


@pytest.mark.parametrize(
    "reference", [date(2024, 12, 31), date(2024, 2, 29), date(2023, 2, 28), date(2023, 3, 1)]
)
def test_cohort_birth_date_bounds_agree_with_age_at(reference: date) -> None:
    # The cohort query keeps birth_date <= years_before(reference, n) for "age >= n".
    for n in (0, 18, 65, 89, 90):
        bound = years_before(reference, n)
        assert age_at(bound, reference) >= n
        assert age_at(date.fromordinal(bound.toordinal() + 1), reference) < n


def test_ages_over_89_are_grouped_and_their_birth_year_withheld() -> None:
    assert [age_group(a) for a in (0, 45, 89, 90, 104)] == ["0", "45", "89", "90+", "90+"]
    assert birth_year(date(1930, 1, 1), 94) == ""
    assert birth_year(date(1935, 1, 1), 89) == "1935"
    with pytest.raises(ValueError, match="negative"):
        age_group(-1)


@pytest.mark.parametrize(
    ("zip_code", "expected"),
    [
        ("02134", "021"),
        ("02134-1234", "021"),
        ("03603", "000"),
        ("83001", "000"),
        ("89301", "000"),
        ("1234", "000"),
        ("ABCDE", "000"),
    ],
)
def test_zip_codes_keep_three_digits_except_restricted_areas(zip_code: str, expected: str) -> None:
    assert zip3(zip_code) == expected


def test_safe_harbor_demographics_row_matches_the_catalogue() -> None:
    deid = Deidentifier(REQUEST, PhiLevel.deidentified, date(2024, 12, 31))
    row = deid.demographics("P0000001", "F", date(1930, 5, 1), "Boston", "MA", "02134")
    header = CATALOGUE[DataElement.demographics].header(PhiLevel.deidentified)
    assert dict(zip(header, row, strict=True)) == {
        "person_id": pseudonym(REQUEST, "P0000001"),
        "sex": "F",
        "birth_year": "",
        "age_at_reference": "90+",
        "state": "MA",
        "zip3": "021",
    }
    assert deid.event_date(date(2021, 7, 4)) == "2021"


def test_limited_data_set_keeps_dates_city_and_zip5() -> None:
    deid = Deidentifier(REQUEST, PhiLevel.limited, date(2024, 12, 31))
    row = deid.demographics("P0000001", "M", date(1970, 5, 1), "Boston", "MA", "02134")
    header = CATALOGUE[DataElement.demographics].header(PhiLevel.limited)
    values = dict(zip(header, row, strict=True))
    assert values["birth_date"] == "1970-05-01" and values["zip5"] == "02134"
    assert values["city"] == "Boston" and values["age_at_reference"] == "54"
    assert deid.event_date(date(2021, 7, 4)) == "2021-07-04"


KNOWN = CohortIdentifiers(
    names=frozenset({"nakamura", "priya"}),
    patient_ids=frozenset({"P0000007"}),
    mrns=frozenset({"MRN12345678"}),
    phones=frozenset({"6175550123"}),
    emails=frozenset({"priya.nakamura7@example.org"}),
    addresses=frozenset({"12 maple street"}),
)


@pytest.mark.parametrize(
    ("value", "column_type", "checks"),
    [
        ("Type 2 diabetes mellitus without complications", "string", []),
        ("39156-5", "string", []),
        ("12345.5", "number", []),
        ("2021", "integer", []),
        ("Seen by Nakamura", "string", ["name"]),
        ("p0000007", "string", ["patient_id"]),
        ("MRN12345678", "string", ["mrn"]),
        ("617-555-0123", "string", ["phone"]),
        ("(617) 555 0123", "string", ["phone"]),
        ("priya.nakamura7@example.org", "string", ["name", "email"]),
        ("12 Maple Street", "string", ["address"]),
        ("2021-07-04", "string", ["full_date"]),
        ("7/4/2021", "string", ["full_date"]),
        ("02134", "string", ["zip5"]),
        ("02134-1234", "string", ["zip5"]),
    ],
)
def test_qa_cell_scan_flags_identifiers_and_nothing_else(
    value: str, column_type: str, checks: list[str]
) -> None:
    assert scan_cell(value, column_type, PhiLevel.deidentified, KNOWN) == checks


def test_qa_cell_scan_allows_dates_and_zip5_in_a_limited_data_set() -> None:
    assert scan_cell("2021-07-04", "date", PhiLevel.limited, KNOWN) == []
    assert scan_cell("02134", "string", PhiLevel.limited, KNOWN) == []
    assert scan_cell("Nakamura", "string", PhiLevel.limited, KNOWN) == ["name"]
