"""Reading a research delivery back and scanning it for identifiers."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from pathlib import Path
from typing import Any

from sqlalchemy import select

from app.database import Database
from app.database.models import Patient

FULL_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
ZIP5 = re.compile(r"(?<![\w.-])\d{5}(?![\w.-])")
WORDS = re.compile(r"[A-Za-z][A-Za-z'\-]*")


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file's bytes, in hex."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def csv_rows(path: Path) -> list[dict[str, str]]:
    """A CSV file's rows as dicts."""
    return list(csv.DictReader(io.StringIO(path.read_text("utf-8"))))


def read_manifest(folder: Path) -> dict[str, Any]:
    """The delivery's ``manifest.json``."""
    manifest: dict[str, Any] = json.loads((folder / "manifest.json").read_text("utf-8"))
    return manifest


async def patient_names(database: Database) -> set[str]:
    """Every first and last name in the warehouse, lower-cased."""
    async with database.read_session() as session:
        result = await session.execute(select(Patient.first_name, Patient.last_name))
        return {name.lower() for pair in result for name in pair}


async def patient_ids(database: Database) -> set[str]:
    """Every warehouse patient id (the MRN-like identifier)."""
    async with database.read_session() as session:
        return set((await session.execute(select(Patient.patient_id))).scalars())


def scan_delivery(folder: Path, names: set[str], ids: set[str]) -> int:
    """Assert no data file holds a name, a full date, a five-digit ZIP or a patient id.

    Returns the number of cells scanned, so a caller can check the scan saw real data.
    """
    cells = 0
    for path in sorted(folder.glob("*.csv")):
        if path.name == "data_dictionary.csv":
            continue
        for row in csv_rows(path):
            for column, value in row.items():
                cells += 1
                assert not {w.lower() for w in WORDS.findall(value)} & names, (path.name, column)
                assert not FULL_DATE.search(value), (path.name, column)
                assert not ZIP5.search(value), (path.name, column)
                assert value not in ids, (path.name, column)
    return cells
