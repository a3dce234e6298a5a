"""The output files of a delivery: one CSV per data element, with its columns per PHI level.

This catalogue is the single description of what a delivery may contain. Extraction writes
exactly these columns, QA refuses any other header, and delivery's data dictionary is
printed from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.agents.research.payload import DataElement, PhiLevel


@dataclass(frozen=True)
class OutputColumn:
    """One column of a delivered CSV file, as the data dictionary describes it."""

    name: str
    type: str
    description: str


@dataclass(frozen=True)
class ElementFile:
    """The CSV file of one data element and its columns at each PHI level."""

    element: DataElement
    file_name: str
    deidentified: tuple[OutputColumn, ...]
    limited: tuple[OutputColumn, ...]

    def columns(self, level: PhiLevel) -> tuple[OutputColumn, ...]:
        """The columns written at ``level``."""
        return self.deidentified if level is PhiLevel.deidentified else self.limited

    def header(self, level: PhiLevel) -> list[str]:
        """The column names written at ``level``, in file order."""
        return [column.name for column in self.columns(level)]


_PERSON = OutputColumn(
    "person_id",
    "string",
    "Pseudonym of the patient, stable within this delivery only (HMAC-SHA256 of request and "
    "patient identifiers)",
)
_AGE = OutputColumn(
    "age_at_reference",
    "string",
    "Age in whole years at the end of the study window; ages over 89 are reported as 90+",
)
_SEX = OutputColumn("sex", "string", "Administrative sex: F, M or U")
_STATE = OutputColumn("state", "string", "US state, two-letter code")


def _dated(name: str, what: str) -> tuple[OutputColumn, OutputColumn]:
    year = OutputColumn(f"{name}_year", "integer", f"Year of the {what}")
    full = OutputColumn(f"{name}_date", "date", f"Date of the {what} (YYYY-MM-DD)")
    return year, full


_ONSET_YEAR, _ONSET_DATE = _dated("onset", "diagnosis onset")
_ENCOUNTER_YEAR, _ENCOUNTER_DATE = _dated("encounter", "encounter")
_OBSERVED_YEAR, _OBSERVED_DATE = _dated("observed", "observation")

_CODE = OutputColumn("icd10_code", "string", "ICD-10-CM diagnosis code")
_CODE_TITLE = OutputColumn("description", "string", "ICD-10-CM title of the code")
_ENCOUNTER_TYPE = OutputColumn(
    "encounter_type", "string", "outpatient, inpatient, emergency, telehealth or urgent_care"
)
_FACILITY = OutputColumn("facility", "string", "Facility where the encounter took place")
_LOINC = OutputColumn("loinc_code", "string", "LOINC code of the measurement")
_LOINC_NAME = OutputColumn("loinc_name", "string", "LOINC short name of the measurement")
_VALUE = OutputColumn("value", "number", "Measured value")
_UNIT = OutputColumn("unit", "string", "UCUM unit of the value")

#: Every data element's file, in catalogue order.
CATALOGUE: dict[DataElement, ElementFile] = {
    DataElement.demographics: ElementFile(
        DataElement.demographics,
        "demographics.csv",
        deidentified=(
            _PERSON,
            _SEX,
            OutputColumn(
                "birth_year", "integer", "Year of birth; empty when the patient is over 89"
            ),
            _AGE,
            _STATE,
            OutputColumn(
                "zip3",
                "string",
                "First three digits of the ZIP code; 000 where fewer than 20,000 people "
                "share them (HIPAA Safe Harbor)",
            ),
        ),
        limited=(
            _PERSON,
            _SEX,
            OutputColumn("birth_date", "date", "Date of birth (YYYY-MM-DD)"),
            _AGE,
            OutputColumn("city", "string", "City of residence"),
            _STATE,
            OutputColumn("zip5", "string", "Five-digit ZIP code"),
        ),
    ),
    DataElement.conditions: ElementFile(
        DataElement.conditions,
        "conditions.csv",
        deidentified=(_PERSON, _CODE, _CODE_TITLE, _ONSET_YEAR),
        limited=(_PERSON, _CODE, _CODE_TITLE, _ONSET_DATE),
    ),
    DataElement.encounters: ElementFile(
        DataElement.encounters,
        "encounters.csv",
        deidentified=(_PERSON, _ENCOUNTER_YEAR, _ENCOUNTER_TYPE, _FACILITY),
        limited=(_PERSON, _ENCOUNTER_DATE, _ENCOUNTER_TYPE, _FACILITY),
    ),
    DataElement.observations: ElementFile(
        DataElement.observations,
        "observations.csv",
        deidentified=(_PERSON, _LOINC, _LOINC_NAME, _VALUE, _UNIT, _OBSERVED_YEAR),
        limited=(_PERSON, _LOINC, _LOINC_NAME, _VALUE, _UNIT, _OBSERVED_DATE),
    ),
}

#: Column names that would carry a direct identifier: never allowed in any delivery.
IDENTIFIER_COLUMNS = frozenset(
    {
        "patient_id",
        "mrn",
        "first_name",
        "last_name",
        "name",
        "address",
        "street",
        "phone",
        "email",
        "ssn",
    }
)

#: Further columns a Safe Harbor delivery may not carry.
SAFE_HARBOR_FORBIDDEN_COLUMNS = frozenset({"birth_date", "city", "zip5", "zip_code"})

__all__ = [
    "CATALOGUE",
    "IDENTIFIER_COLUMNS",
    "SAFE_HARBOR_FORBIDDEN_COLUMNS",
    "ElementFile",
    "OutputColumn",
]
