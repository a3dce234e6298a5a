"""Step ``qa``: re-read the staged files and prove they carry no identifiers.

Checks, all run so that every finding is reported at once:

- integrity: exactly the files extraction reported, with its row counts and SHA-256;
  demographics has one row per cohort member;
- structure: each header is the catalogue's for the PHI level; no identifier columns;
- content, against the cohort's own warehouse identifiers: no first or last names, patient
  ids, MRNs, phone numbers, e-mail addresses or street addresses; at the Safe Harbor level
  also no full dates, no 5-digit ZIP codes, no ages above 89 and no restricted ZIP3 areas.

A failure raises :class:`PermanentError` rather than :class:`NeedsHumanReview`: a leak is a
de-identification defect, not a judgement call, and an escalation may be resolved with
"skip", which would let the leaking files go on to delivery. The staged files are deleted
so that identifiable data does not sit on disk; extraction is deterministic, so they can be
regenerated to investigate. Findings name the file, row, column and check, never the value.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.base import Agent, AgentContext, PermanentError
from app.agents.research.cohort import cohort_ids
from app.agents.research.deidentify import AGE_GROUP_OVER_89, MAX_REPORTED_AGE, RESTRICTED_ZIP3
from app.agents.research.elements import (
    CATALOGUE,
    IDENTIFIER_COLUMNS,
    SAFE_HARBOR_FORBIDDEN_COLUMNS,
    ElementFile,
)
from app.agents.research.extraction import ExtractionOutput
from app.agents.research.payload import DataElement, PhiLevel, ResearchCriteria, ResearchPayload
from app.agents.research.requirements import RequirementsOutput
from app.agents.research.storage import StoredFile, read_csv, sha256_hex, staging_folder
from app.database.models import Patient

#: At most this many findings are listed in the error (all are counted).
MAX_LISTED_FINDINGS = 100

_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*")
_TOKEN = re.compile(r"[A-Za-z0-9]+")
_FULL_DATE = re.compile(r"\b\d{4}-\d{1,2}-\d{1,2}\b|\b\d{1,2}/\d{1,2}/\d{2,4}\b")
#: A 5-digit ZIP (or ZIP+4) standing alone: not part of a LOINC code (``39156-5``), a
#: decimal number or a longer token.
_ZIP5 = re.compile(r"(?<![\w.\-])\d{5}(?:-\d{4})?(?![\w.\-])")
_PHONE = re.compile(r"\(?\b\d{3}\)?[\s.\-]?\d{3}[\s.\-]\d{4}\b")
_PHONE_CHARS = re.compile(r"[\d\s().+\-]{10,}")
_EMAIL = re.compile(r"[\w.+\-]+@[\w\-]+\.[\w.\-]+")


class QaPrevious(BaseModel):
    """Earlier outputs this step reads."""

    requirements: RequirementsOutput
    extraction: ExtractionOutput


class QaInput(BaseModel):
    """The payload (unused: the normalised criteria are authoritative) and earlier outputs."""

    payload: ResearchPayload
    previous: QaPrevious


class QaOutput(BaseModel):
    """What was checked: files, rows, the names of the checks run. Only passing runs return."""

    passed: bool
    files_checked: int
    rows_checked: int
    checks: list[str]


class QaFinding(BaseModel):
    """One problem: where (file, 1-based data row or 0 for the file itself, column) and what."""

    file: str
    row: int
    column: str | None
    check: str


@dataclass(frozen=True)
class CohortIdentifiers:
    """The direct identifiers of the cohort, normalised for matching."""

    names: frozenset[str]
    patient_ids: frozenset[str]
    mrns: frozenset[str]
    phones: frozenset[str]
    emails: frozenset[str]
    addresses: frozenset[str]


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


async def cohort_identifiers(
    session: AsyncSession, criteria: ResearchCriteria
) -> CohortIdentifiers:
    """Read the cohort's names, ids, MRNs, phones, e-mails and addresses from the warehouse."""
    result = await session.execute(
        select(
            Patient.patient_id,
            Patient.mrn,
            Patient.first_name,
            Patient.last_name,
            Patient.phone,
            Patient.email,
            Patient.address,
        ).where(Patient.patient_id.in_(cohort_ids(criteria)))
    )
    names: set[str] = set()
    ids: set[str] = set()
    mrns: set[str] = set()
    phones: set[str] = set()
    emails: set[str] = set()
    addresses: set[str] = set()
    for patient_id, mrn, first, last, phone, email, address in result:
        names.update(word.lower() for word in _WORD.findall(f"{first} {last}"))
        ids.add(patient_id.upper())
        mrns.add(mrn.upper())
        phones.add(_digits(phone))
        emails.add(email.lower())
        addresses.add(address.lower())
    return CohortIdentifiers(
        frozenset(names),
        frozenset(ids),
        frozenset(mrns),
        frozenset(phones),
        frozenset(emails),
        frozenset(addresses),
    )


def scan_cell(value: str, column_type: str, level: PhiLevel, known: CohortIdentifiers) -> list[str]:
    """The names of the checks ``value`` fails (empty when it is clean)."""
    failed: list[str] = []
    if any(word.lower() in known.names for word in _WORD.findall(value)):
        failed.append("name")
    tokens = {token.upper() for token in _TOKEN.findall(value)}
    if tokens & known.patient_ids:
        failed.append("patient_id")
    if tokens & known.mrns:
        failed.append("mrn")
    lowered = value.lower()
    if _EMAIL.search(value) or lowered in known.emails:
        failed.append("email")
    if _PHONE.search(value) or (
        _PHONE_CHARS.fullmatch(value) is not None and _digits(value) in known.phones
    ):
        failed.append("phone")
    if lowered.strip() in known.addresses:
        failed.append("address")
    if level is PhiLevel.deidentified:
        if _FULL_DATE.search(value):
            failed.append("full_date")
        if column_type != "number" and _ZIP5.search(value):
            failed.append("zip5")
    return failed


def _check_safe_harbor_column(column: str, value: str) -> str | None:
    if column == "age_at_reference":
        if value == AGE_GROUP_OVER_89:
            return None
        if not value.isdigit() or int(value) > MAX_REPORTED_AGE:
            return "age_over_89"
    if (
        column == "zip3"
        and value != "000"
        and (len(value) != 3 or not value.isdigit() or value in RESTRICTED_ZIP3)
    ):
        return "restricted_zip3"
    return None


def check_file(
    spec: ElementFile,
    data: bytes,
    expected: StoredFile,
    level: PhiLevel,
    known: CohortIdentifiers,
) -> tuple[int, list[QaFinding]]:
    """Check one staged file; return its data-row count and its findings."""
    name = spec.file_name
    findings: list[QaFinding] = []

    def found(row: int, column: str | None, check: str) -> None:
        findings.append(QaFinding(file=name, row=row, column=column, check=check))

    if sha256_hex(data) != expected.sha256:
        found(0, None, "sha256_mismatch")
    header, rows = read_csv(data)
    if len(rows) != expected.rows:
        found(0, None, "row_count_mismatch")
    if header != spec.header(level):
        found(0, None, "header_mismatch")
    for column in header:
        if column.lower() in IDENTIFIER_COLUMNS:
            found(0, column, "identifier_column")
        elif level is PhiLevel.deidentified and (
            column.lower() in SAFE_HARBOR_FORBIDDEN_COLUMNS or column.lower().endswith("_date")
        ):
            found(0, column, "safe_harbor_column")
    types = {column.name: column.type for column in spec.columns(level)}
    for number, row in enumerate(rows, start=1):
        if len(row) != len(header):
            found(number, None, "row_shape")
        for column, value in zip(header, row, strict=False):
            for check in scan_cell(value, types.get(column, "string"), level, known):
                found(number, column, check)
            if level is PhiLevel.deidentified:
                rule = _check_safe_harbor_column(column, value)
                if rule is not None:
                    found(number, column, rule)
    if spec.element is DataElement.demographics:
        people = [row[0] for row in rows if row]
        if len(set(people)) != len(people):
            found(0, "person_id", "duplicate_person")
    return len(rows), findings


def _read_staged(folder: Path, names: list[str]) -> tuple[dict[str, bytes], list[str]]:
    contents = {name: (folder / name).read_bytes() for name in names if (folder / name).is_file()}
    present = sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
    return contents, present


class QaAgent(Agent[QaInput, QaOutput]):
    """Checks the staged extract for identifiers and integrity (``research.qa``)."""

    agent_id: ClassVar[str] = "research.qa"
    input_model: ClassVar[type[BaseModel]] = QaInput
    output_model: ClassVar[type[BaseModel]] = QaOutput

    async def run(self, context: AgentContext, input: QaInput) -> QaOutput:
        """Run every check; raise :class:`PermanentError` listing the findings if any fail."""
        criteria = input.previous.requirements.criteria
        extraction = input.previous.extraction
        level = extraction.phi_level
        folder = staging_folder(context.settings, context.request_id)
        expected = {stored.name: stored for stored in extraction.files}
        by_file = {spec.file_name: spec for spec in CATALOGUE.values()}
        session: AsyncSession
        async with context.warehouse.read_session() as session:
            known = await cohort_identifiers(session, criteria)
        contents, present = await asyncio.to_thread(_read_staged, folder, sorted(expected))

        findings: list[QaFinding] = []
        rows_checked = 0
        for name in sorted(set(present) - set(expected)):
            findings.append(QaFinding(file=name, row=0, column=None, check="file_unexpected"))
        for name, stored in sorted(expected.items()):
            spec = by_file.get(name)
            if spec is None or name not in contents:
                check = "file_missing" if spec is not None else "file_unexpected"
                findings.append(QaFinding(file=name, row=0, column=None, check=check))
                continue
            count, file_findings = check_file(spec, contents[name], stored, level, known)
            rows_checked += count
            findings.extend(file_findings)
            if spec.element is DataElement.demographics and count != extraction.cohort_size:
                findings.append(
                    QaFinding(file=name, row=0, column=None, check="cohort_size_mismatch")
                )

        if findings:
            counts = Counter(finding.check for finding in findings)
            context.log.warning("extract_rejected", findings=len(findings), checks=dict(counts))
            await asyncio.to_thread(shutil.rmtree, folder, True)
            raise PermanentError(
                f"QA found {len(findings)} problem(s) in the staged extract; it was deleted",
                detail={
                    "reason": "qa_failed",
                    "counts": dict(sorted(counts.items())),
                    "findings": [f.model_dump() for f in findings[:MAX_LISTED_FINDINGS]],
                },
            )
        checks = ["integrity", "structure", "identifiers"]
        if level is PhiLevel.deidentified:
            checks.append("safe_harbor")
        context.log.info("extract_checked", files=len(expected), rows=rows_checked)
        return QaOutput(
            passed=True, files_checked=len(expected), rows_checked=rows_checked, checks=checks
        )


__all__ = [
    "CohortIdentifiers",
    "QaAgent",
    "QaFinding",
    "QaInput",
    "QaOutput",
    "QaPrevious",
    "check_file",
    "cohort_identifiers",
    "scan_cell",
]
