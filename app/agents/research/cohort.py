"""The cohort (phenotype) query over the warehouse, built with SQLAlchemy Core.

Every criterion is a bound parameter: codes, dates and the age bounds are never formatted
into SQL text. Ages are turned into birth-date bounds in Python (``age >= min`` is
``birth_date <= reference - min years``), so the query is plain date comparison that
behaves the same on SQLite and PostgreSQL and can use an index.

A patient is in the cohort when they have at least one inclusion diagnosis with onset in
the study window, no exclusion diagnosis at any time, and an age in range at the end of
the window.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, Select, distinct, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from app.agents.research import icd10
from app.agents.research.payload import DataElement, ResearchCriteria
from app.database.models import Condition, Encounter, Observation, Patient

#: The patient and date columns of each event element (demographics has no date).
EVENT_COLUMNS: dict[DataElement, tuple[InstrumentedAttribute[str], InstrumentedAttribute[date]]] = {
    DataElement.conditions: (Condition.patient_id, Condition.onset_date),
    DataElement.encounters: (Encounter.patient_id, Encounter.encounter_date),
    DataElement.observations: (Observation.patient_id, Observation.observed_on),
}


def years_before(day: date, years: int) -> date:
    """``day`` moved back ``years`` years; 29 February becomes 28 February in common years."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def code_filter(column: InstrumentedAttribute[str], codes: Sequence[str]) -> ColumnElement[bool]:
    """``column`` matches one of ``codes``; a category (``E11``) also matches its children."""
    if not codes:
        return false()
    clauses: list[ColumnElement[bool]] = [column.in_(list(codes))]
    for code in codes:
        entry = icd10.lookup(code)
        if entry is not None and entry.is_category:
            prefix = code if "." in code else f"{code}."
            clauses.append(column.like(f"{prefix}%"))
    return or_(*clauses)


def cohort_ids(criteria: ResearchCriteria) -> Select[str]:
    """SELECT the ``patient_id`` of every cohort member."""
    window = criteria.time_window
    reference = criteria.reference_date
    oldest_birth_excluded = years_before(reference, criteria.age_range.max + 1)
    youngest_birth = years_before(reference, criteria.age_range.min)
    included = select(Condition.patient_id).where(
        code_filter(Condition.icd10_code, criteria.inclusion_codes),
        Condition.onset_date >= window.start,
        Condition.onset_date <= window.end,
    )
    stmt = select(Patient.patient_id).where(
        Patient.patient_id.in_(included),
        Patient.birth_date > oldest_birth_excluded,
        Patient.birth_date <= youngest_birth,
    )
    if criteria.exclusion_codes:
        excluded = select(Condition.patient_id).where(
            code_filter(Condition.icd10_code, criteria.exclusion_codes)
        )
        stmt = stmt.where(Patient.patient_id.not_in(excluded))
    return stmt


def cohort_count(criteria: ResearchCriteria) -> Select[int]:
    """SELECT the number of cohort members."""
    return select(func.count()).select_from(cohort_ids(criteria).subquery("cohort"))


def element_count(criteria: ResearchCriteria, element: DataElement) -> Select[int]:
    """SELECT how many cohort members have data for ``element`` in the study window."""
    if element is DataElement.demographics:
        # Sex and birth date are mandatory warehouse columns: every member has them.
        return cohort_count(criteria)
    patient_id, day = EVENT_COLUMNS[element]
    return select(func.count(distinct(patient_id))).where(
        patient_id.in_(cohort_ids(criteria)),
        day >= criteria.time_window.start,
        day <= criteria.time_window.end,
    )


async def compiled_sql(session: AsyncSession, stmt: Any) -> str:
    """The SQL ``stmt`` runs as on this session's database, with bind placeholders."""
    connection = await session.connection()
    compiled = stmt.compile(dialect=connection.dialect, compile_kwargs={"render_postcompile": True})
    return str(compiled)


async def cohort_patient_ids(session: AsyncSession, criteria: ResearchCriteria) -> list[str]:
    """Every cohort member's ``patient_id``, sorted."""
    result = await session.execute(cohort_ids(criteria).order_by(Patient.patient_id))
    return list(result.scalars())


__all__ = [
    "EVENT_COLUMNS",
    "code_filter",
    "cohort_count",
    "cohort_ids",
    "cohort_patient_ids",
    "compiled_sql",
    "element_count",
    "years_before",
]
