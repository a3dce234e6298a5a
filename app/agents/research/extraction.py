"""Step ``extraction``: fetch the requested elements for the cohort, de-identified, as CSV.

Only the columns a delivery may carry are selected from the warehouse: names, MRNs,
street addresses, phone numbers and e-mail addresses are never read. Rows are then
de-identified per the PHI level (:mod:`app.agents.research.deidentify`) and sorted by
their delivered values, so the order reveals nothing about warehouse identifiers and the
same warehouse always yields byte-identical files.

Files go to ``<DELIVERY_DIR>/<request_id>/staging/``, each written atomically; a re-run
(after a crash) overwrites them with the same bytes, and files that are not part of this
extraction are removed from the staging folder.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.base import Agent, AgentContext, CleanupContext, RemovedFile, remove_files
from app.agents.research.cohort import cohort_count, cohort_ids
from app.agents.research.deidentify import Deidentifier
from app.agents.research.elements import CATALOGUE
from app.agents.research.payload import DataElement, PhiLevel, ResearchCriteria, ResearchPayload
from app.agents.research.requirements import RequirementsOutput
from app.agents.research.storage import (
    StoredFile,
    csv_bytes,
    delivery_folder,
    prune_empty,
    sha256_hex,
    staged_files,
    staging_folder,
    write_atomic,
)
from app.database.models import Condition, Encounter, Observation, Patient


class ExtractionPrevious(BaseModel):
    """Earlier outputs this step reads.

    Not feasibility's: a reviewer may resolve a too-small cohort's escalation with "skip"
    (the IRB accepted it), and extraction then runs on the requirements alone.
    """

    requirements: RequirementsOutput


class ExtractionInput(BaseModel):
    """The payload (unused: the normalised criteria are authoritative) and earlier outputs."""

    payload: ResearchPayload
    previous: ExtractionPrevious


class ExtractionOutput(BaseModel):
    """The staged files (names, row counts, sizes, SHA-256) and the cohort they cover."""

    staging_folder: str
    phi_level: PhiLevel
    cohort_size: int
    files: list[StoredFile]


def _format_value(value: float) -> str:
    return format(value, ".10g")


async def extract_rows(
    session: AsyncSession,
    criteria: ResearchCriteria,
    element: DataElement,
    deid: Deidentifier,
) -> list[list[str]]:
    """The de-identified rows of ``element`` for the cohort, sorted by their values."""
    cohort = cohort_ids(criteria)
    start, end = criteria.time_window.start, criteria.time_window.end
    rows: list[list[str]] = []
    if element is DataElement.demographics:
        result = await session.execute(
            select(
                Patient.patient_id,
                Patient.sex,
                Patient.birth_date,
                Patient.city,
                Patient.state,
                Patient.zip_code,
            ).where(Patient.patient_id.in_(cohort))
        )
        rows = [deid.demographics(*row) for row in result]
    elif element is DataElement.conditions:
        conditions = await session.execute(
            select(
                Condition.patient_id,
                Condition.icd10_code,
                Condition.description,
                Condition.onset_date,
            ).where(
                Condition.patient_id.in_(cohort),
                Condition.onset_date >= start,
                Condition.onset_date <= end,
            )
        )
        rows = [
            [deid.person_id(pid), code, title, deid.event_date(onset)]
            for pid, code, title, onset in conditions
        ]
    elif element is DataElement.encounters:
        encounters = await session.execute(
            select(
                Encounter.patient_id,
                Encounter.encounter_date,
                Encounter.encounter_type,
                Encounter.facility,
            ).where(
                Encounter.patient_id.in_(cohort),
                Encounter.encounter_date >= start,
                Encounter.encounter_date <= end,
            )
        )
        rows = [
            [deid.person_id(pid), deid.event_date(day), kind, facility]
            for pid, day, kind, facility in encounters
        ]
    else:
        observations = await session.execute(
            select(
                Observation.patient_id,
                Observation.loinc_code,
                Observation.name,
                Observation.value,
                Observation.unit,
                Observation.observed_on,
            ).where(
                Observation.patient_id.in_(cohort),
                Observation.observed_on >= start,
                Observation.observed_on <= end,
            )
        )
        rows = [
            [deid.person_id(pid), loinc, name, _format_value(value), unit, deid.event_date(day)]
            for pid, loinc, name, value, unit, day in observations
        ]
    rows.sort()
    return rows


def _write_staging(folder: Path, contents: dict[str, bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.iterdir():
        if stale.is_file() and stale.name not in contents:
            stale.unlink()
    for name, data in contents.items():
        write_atomic(folder / name, data)


class ExtractionAgent(Agent[ExtractionInput, ExtractionOutput]):
    """Writes the de-identified cohort extract to the staging folder (``research.extraction``)."""

    agent_id: ClassVar[str] = "research.extraction"
    input_model: ClassVar[type[BaseModel]] = ExtractionInput
    output_model: ClassVar[type[BaseModel]] = ExtractionOutput

    async def run(self, context: AgentContext, input: ExtractionInput) -> ExtractionOutput:
        """Fetch, de-identify and stage one CSV per requested element."""
        criteria = input.previous.requirements.criteria
        secret = context.settings.pseudonym_secret
        deid = Deidentifier(
            context.request_id,
            criteria.phi_level,
            criteria.reference_date,
            secret.get_secret_value().encode("utf-8") if secret is not None else b"",
        )
        contents: dict[str, bytes] = {}
        files: list[StoredFile] = []
        session: AsyncSession
        async with context.warehouse.read_session() as session:
            cohort_size = int((await session.execute(cohort_count(criteria))).scalar_one())
            for element in criteria.data_elements:
                spec = CATALOGUE[element]
                rows = await extract_rows(session, criteria, element, deid)
                data = csv_bytes(spec.header(criteria.phi_level), rows)
                contents[spec.file_name] = data
                files.append(
                    StoredFile(
                        name=spec.file_name,
                        rows=len(rows),
                        bytes=len(data),
                        sha256=sha256_hex(data),
                    )
                )
        folder = staging_folder(context.settings, context.request_id)
        await asyncio.to_thread(_write_staging, folder, contents)
        context.log.info(
            "extract_staged",
            cohort_size=cohort_size,
            files=len(files),
            rows=sum(f.rows for f in files),
        )
        return ExtractionOutput(
            staging_folder=str(folder),
            phi_level=criteria.phi_level,
            cohort_size=cohort_size,
            files=files,
        )

    async def cleanup(self, context: CleanupContext) -> list[RemovedFile]:
        """Remove the staging folder (a re-run writes it again; QA and delivery read it only
        after this step succeeded)."""

        def remove() -> list[RemovedFile]:
            settings, request_id = context.settings, context.request_id
            removed = remove_files(
                delivery_folder(settings, request_id), staged_files(settings, request_id)
            )
            prune_empty(settings, request_id)
            return removed

        return await asyncio.to_thread(remove)


__all__ = [
    "ExtractionAgent",
    "ExtractionInput",
    "ExtractionOutput",
    "ExtractionPrevious",
    "extract_rows",
]
