"""The research request as submitted (:class:`ResearchPayload`) and as normalised (criteria).

``ResearchPayload`` checks only shapes (strings, ISO dates, integers that are not booleans,
no unknown fields): it is what the requirements agent reads, and that agent lists *every*
problem for a reviewer at once. Submit also applies the rules that need no data (ranges in
order, code format, known elements and PHI levels) through
:class:`~app.agents.research.submission.ResearchSubmission`; missing IRB numbers, codes
missing from the table and empty element lists are left to the requirements step, which
escalates them. ``ResearchCriteria`` is the strict, normalised form the later steps read.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StrictInt

from app.validation import IsoDate


class DataElement(StrEnum):
    """The fixed catalogue of data elements a researcher may request."""

    #: Sex, birth year, age group, state, 3-digit ZIP.
    demographics = "demographics"
    #: ICD-10-CM diagnoses with onset in the study window.
    conditions = "conditions"
    #: Visits in the study window: type and facility.
    encounters = "encounters"
    #: LOINC-coded labs and vitals in the study window.
    observations = "observations"


class PhiLevel(StrEnum):
    """How much protected health information the delivery may carry."""

    #: HIPAA Safe Harbor: direct identifiers removed, dates to year, ZIP to 3 digits.
    deidentified = "deidentified"
    #: HIPAA limited data set (needs a data use agreement): full dates, city and 5-digit ZIP
    #: stay; names, MRN, street address, phone and email are still removed.
    limited = "limited"


class AgeRange(BaseModel):
    """Inclusive age range in whole years, at the end of the study window."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min: StrictInt = 0
    max: StrictInt = 120


class TimeWindow(BaseModel):
    """Inclusive study window; diagnoses must start in it, events are taken from it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: IsoDate = Field(validation_alias=AliasChoices("start", "from"))
    end: IsoDate = Field(validation_alias=AliasChoices("end", "to"))


class ResearchPayload(BaseModel):
    """A research data request as a backend submits it."""

    model_config = ConfigDict(extra="forbid")

    researcher: str = Field(min_length=1, max_length=128)
    #: Optional here so that a request without one is escalated, not refused.
    irb_number: str | None = Field(default=None, max_length=64)
    study_title: str = Field(min_length=1, max_length=512)
    inclusion_codes: list[str] = Field(default_factory=list, max_length=200)
    exclusion_codes: list[str] = Field(default_factory=list, max_length=200)
    age_range: AgeRange = Field(default_factory=AgeRange)
    time_window: TimeWindow | None = None
    data_elements: list[str] = Field(default_factory=list, max_length=20)
    phi_level: str = PhiLevel.deidentified.value
    #: May only raise the site's ``MIN_COHORT_SIZE``, never lower it.
    min_cohort_size: StrictInt | None = Field(default=None, ge=1)


class ResearchCriteria(BaseModel):
    """Normalised, validated cohort criteria: what feasibility, extraction and QA read."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    inclusion_codes: list[str]
    exclusion_codes: list[str]
    age_range: AgeRange
    time_window: TimeWindow
    data_elements: list[DataElement]
    phi_level: PhiLevel
    min_cohort_size: int | None = None

    @property
    def reference_date(self) -> date:
        """The date ages are computed at: the end of the study window."""
        return self.time_window.end

    def effective_min_cohort_size(self, site_minimum: int) -> int:
        """The cohort floor: the site minimum, or the request's stricter override."""
        return max(site_minimum, self.min_cohort_size or 0)


__all__ = [
    "AgeRange",
    "DataElement",
    "PhiLevel",
    "ResearchCriteria",
    "ResearchPayload",
    "TimeWindow",
]
