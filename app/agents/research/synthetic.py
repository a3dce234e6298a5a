"""A deterministic synthetic clinical warehouse: patients, diagnoses, visits and labs.

Everything is drawn from one ``random.Random(seed)``, so a (size, seed) pair always gives
the same rows, byte for byte, on any machine. Patients carry the direct identifiers that
de-identification must remove (names, MRN, street address, phone, e-mail, 5-digit ZIP),
about 4 % are over 89, and some live in the low-population ZIP3 areas Safe Harbor reports
as ``000``. Diagnoses come from the ICD-10-CM table with age- and sex-aware prevalences;
labs and vitals are LOINC-coded, with higher HbA1c and glucose for diabetic patients.

Name lists are chosen so that no first or last name is also a word of a diagnosis title,
lab name, facility, city or encounter type: QA looks for names in delivered text, and a
surname such as "White" or "Long" would make that check cry wolf.

Re-running is safe: :func:`seed_warehouse` does nothing when the warehouse already holds
exactly the rows this size and seed produce, and otherwise deletes all warehouse rows and
inserts the new ones in a single transaction (never a half-seeded warehouse).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, inspect, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.research import icd10
from app.database.engine import Database
from app.database.exceptions import SchemaNotReady, translated_errors
from app.database.models import Condition, Encounter, Observation, Patient, WarehouseBase

#: "Today" in the synthetic world: ages and the latest event dates are relative to it.
REFERENCE_DATE = date(2024, 12, 31)
#: Earliest diagnosis onset and earliest visit or lab.
FIRST_ONSET = date(2005, 1, 1)
FIRST_EVENT = date(2015, 1, 1)
#: Upper bound of ``--patients``.
MAX_PATIENTS = 1_000_000

FIRST_NAMES_F = (
    "Aaliyah", "Abigail", "Amara", "Anika", "Anneliese", "Beatriz", "Camila", "Chiara",
    "Cosima", "Delphine", "Elif", "Esperanza", "Fatima", "Florentina", "Ingrid", "Isabela",
    "Lakshmi", "Leilani", "Margarethe", "Mireille", "Nadia", "Ngozi", "Niamh", "Priya",
    "Rosalind", "Saoirse", "Thandiwe", "Valentina", "Ximena", "Zainab", "Zora", "Ottilie",
)  # fmt: skip
FIRST_NAMES_M = (
    "Adrian", "Aiden", "Arjun", "Bartholomew", "Bodhi", "Dario", "Desmond", "Dmitri",
    "Emeka", "Evander", "Finnegan", "Giovanni", "Hamid", "Hiroshi", "Jamal", "Joaquin",
    "Kaito", "Keanu", "Lorenzo", "Mateo", "Olumide", "Oskar", "Quentin", "Rafael", "Soren",
    "Tariq", "Ulrich", "Yusuf", "Thaddeus", "Ignatius", "Leopold", "Casimir",
)  # fmt: skip
LAST_NAMES = (
    "Abernathy", "Achterberg", "Adeyemi", "Alvarado", "Bergstrom", "Bianchi", "Castellanos",
    "Chaudhry", "Delacroix", "Dimitriou", "Dubois", "Eriksen", "Esposito", "Fairweather",
    "Fitzgerald", "Gallagher", "Gonzaga", "Haddad", "Halvorsen", "Henningsen", "Ibarra",
    "Iwasaki", "Jablonski", "Jovanovic", "Kowalczyk", "Kuznetsov", "Lindqvist", "Lombardi",
    "Mahlangu", "Marchetti", "Nakamura", "Novak", "Okonkwo", "Oyelaran", "Ostrowski",
    "Papadakis", "Pellegrini", "Quintero", "Rasmussen", "Rinaldi", "Szabo", "Takahashi",
    "Thorvaldsen", "Uchenna", "Vasquez", "Villanueva", "Wojcik", "Xiong", "Yamamoto",
    "Zielinski", "Brennan", "Castiglione", "Obuya", "Svensson",
)  # fmt: skip
STREETS = (
    "Maple", "Cedar", "Elm", "Oak", "Birch", "Willow", "Juniper", "Sycamore", "Chestnut",
    "Magnolia", "Hawthorn", "Linden", "Spruce", "Aspen", "Poplar", "Hickory",
)  # fmt: skip
STREET_SUFFIXES = ("Street", "Avenue", "Road", "Lane", "Drive", "Court", "Terrace")
#: (city, state, ZIP3, area code, weight). The last five are Safe Harbor restricted ZIP3s.
CITIES = (
    ("Boston", "MA", "021", "617", 10),
    ("Worcester", "MA", "016", "508", 6),
    ("Providence", "RI", "029", "401", 6),
    ("Hartford", "CT", "061", "860", 6),
    ("Burlington", "VT", "054", "802", 4),
    ("Manchester", "NH", "031", "603", 5),
    ("Portland", "ME", "041", "207", 5),
    ("Albany", "NY", "122", "518", 5),
    ("Buffalo", "NY", "142", "716", 6),
    ("Newark", "NJ", "071", "973", 6),
    ("Pittsburgh", "PA", "152", "412", 6),
    ("Columbus", "OH", "432", "614", 6),
    ("Denver", "CO", "802", "303", 6),
    ("Phoenix", "AZ", "850", "602", 6),
    ("Charlestown", "NH", "036", "603", 1),
    ("Island Pond", "VT", "059", "802", 1),
    ("Ainsworth", "NE", "692", "402", 1),
    ("Jackson", "WY", "830", "307", 1),
    ("Ely", "NV", "893", "775", 1),
)
FACILITIES = (
    "Northgate Medical Center",
    "Harborview Clinic",
    "Lakeside Family Practice",
    "Summit Health Pavilion",
    "Riverbend Community Hospital",
    "Eastfield Urgent Care",
)
#: (type, weight)
ENCOUNTER_TYPES = (
    ("outpatient", 60),
    ("telehealth", 15),
    ("emergency", 10),
    ("urgent_care", 8),
    ("inpatient", 7),
)
#: (age band low, high inclusive, weight): about 4 % of patients are over 89.
AGE_BANDS = ((0, 17, 20), (18, 39, 27), (40, 64, 32), (65, 89, 17), (90, 104, 4))


@dataclass(frozen=True)
class LabSpec:
    """A LOINC-coded measurement and its synthetic distribution."""

    code: str
    name: str
    unit: str
    mean: float
    sd: float
    decimals: int
    #: Added to the mean for diabetic patients.
    diabetic_shift: float = 0.0


LABS = (
    LabSpec("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 5.5, 0.4, 1, 2.0),
    LabSpec("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", 95, 12, 0, 55),
    LabSpec("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", 190, 30, 0),
    LabSpec("2089-1", "Cholesterol in LDL [Mass/volume] in Serum or Plasma", "mg/dL", 110, 25, 0),
    LabSpec("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.95, 0.2, 2),
    LabSpec("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 13.8, 1.4, 1),
    LabSpec("8480-6", "Systolic blood pressure", "mm[Hg]", 124, 14, 0),
    LabSpec("8462-4", "Diastolic blood pressure", "mm[Hg]", 79, 9, 0),
    LabSpec("39156-5", "Body mass index (BMI) [Ratio]", "kg/m2", 27.5, 5.0, 1),
)


@dataclass(frozen=True)
class ConditionSpec:
    """How often a diagnosis occurs: prevalence among eligible patients, from what age."""

    code: str
    prevalence: float
    min_age: int = 0
    sex: str | None = None
    earliest: date = FIRST_ONSET


CONDITIONS = (
    ConditionSpec("I10", 0.30, 30),
    ConditionSpec("E78.5", 0.20, 30),
    ConditionSpec("E78.00", 0.04, 25),
    ConditionSpec("E11.9", 0.12, 30),
    ConditionSpec("E11.65", 0.05, 35),
    ConditionSpec("E11.22", 0.03, 40),
    ConditionSpec("E11.40", 0.02, 40),
    ConditionSpec("E10.9", 0.008, 3),
    ConditionSpec("Z79.4", 0.03, 30),
    ConditionSpec("J45.909", 0.07, 3),
    ConditionSpec("J45.20", 0.03, 3),
    ConditionSpec("J44.9", 0.05, 45),
    ConditionSpec("J44.1", 0.015, 50),
    ConditionSpec("F32.A", 0.05, 14),
    ConditionSpec("F32.9", 0.03, 14),
    ConditionSpec("F41.1", 0.04, 14),
    ConditionSpec("F41.9", 0.03, 14),
    ConditionSpec("E66.9", 0.10, 10),
    ConditionSpec("E66.01", 0.03, 18),
    ConditionSpec("N18.30", 0.04, 50),
    ConditionSpec("N18.4", 0.01, 55),
    ConditionSpec("N18.6", 0.004, 55),
    ConditionSpec("I50.9", 0.03, 55),
    ConditionSpec("I48.91", 0.04, 55),
    ConditionSpec("I25.10", 0.05, 45),
    ConditionSpec("I63.9", 0.015, 55),
    ConditionSpec("G30.9", 0.04, 70),
    ConditionSpec("C50.911", 0.01, 35, "F"),
    ConditionSpec("C50.912", 0.01, 35, "F"),
    ConditionSpec("C34.90", 0.006, 50),
    ConditionSpec("E84.0", 0.003, 0),
    ConditionSpec("E84.9", 0.002, 0),
    ConditionSpec("E28.2", 0.04, 15, "F"),
    ConditionSpec("E03.9", 0.05, 20),
    ConditionSpec("K21.9", 0.08, 20),
    ConditionSpec("M54.50", 0.08, 18),
    ConditionSpec("M17.11", 0.04, 50),
    ConditionSpec("M81.0", 0.04, 60, "F"),
    ConditionSpec("E55.9", 0.05, 0),
    ConditionSpec("D64.9", 0.04, 0),
    ConditionSpec("G47.33", 0.04, 30),
    ConditionSpec("G43.909", 0.05, 12),
    ConditionSpec("F17.210", 0.07, 18),
    ConditionSpec("J06.9", 0.12, 0),
    ConditionSpec("J18.9", 0.03, 0),
    ConditionSpec("N39.0", 0.05, 0),
    ConditionSpec("R51.9", 0.05, 5),
    ConditionSpec("U07.1", 0.08, 0, earliest=date(2020, 2, 1)),
)


@dataclass
class WarehouseRows:
    """The generated rows of every warehouse table, as dicts ready for bulk insert."""

    patients: list[dict[str, Any]] = field(default_factory=list)
    conditions: list[dict[str, Any]] = field(default_factory=list)
    encounters: list[dict[str, Any]] = field(default_factory=list)
    observations: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class SeedSummary:
    """What :func:`seed_warehouse` did: row counts, seed, whether it skipped, how long."""

    patients: int
    conditions: int
    encounters: int
    observations: int
    seed: int
    skipped: bool
    seconds: float

    def describe(self) -> str:
        """One line for people."""
        verb = "already seeded" if self.skipped else "seeded"
        return (
            f"warehouse {verb} (seed {self.seed}): {self.patients} patients, "
            f"{self.conditions} conditions, {self.encounters} encounters, "
            f"{self.observations} observations in {self.seconds:.2f}s"
        )


def _day_between(rng: random.Random, first: date, last: date) -> date:
    return first + timedelta(days=rng.randint(0, (last - first).days))


def _add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def _patient(rng: random.Random, number: int, mrn: int) -> dict[str, Any]:
    sex = rng.choice("FM")
    first = rng.choice(FIRST_NAMES_F if sex == "F" else FIRST_NAMES_M)
    last = rng.choice(LAST_NAMES)
    low, high, _ = rng.choices(AGE_BANDS, weights=[band[2] for band in AGE_BANDS])[0]
    age = rng.randint(low, high)
    birth = REFERENCE_DATE - timedelta(days=int(age * 365.25) + rng.randint(0, 364))
    city, state, zip3, area, _ = rng.choices(CITIES, weights=[c[4] for c in CITIES])[0]
    return {
        "patient_id": f"P{number:07d}",
        "mrn": f"MRN{mrn:08d}",
        "first_name": first,
        "last_name": last,
        "birth_date": birth,
        "sex": sex,
        "address": f"{rng.randint(1, 9999)} {rng.choice(STREETS)} {rng.choice(STREET_SUFFIXES)}",
        "city": city,
        "state": state,
        "zip_code": f"{zip3}{rng.randint(0, 99):02d}",
        "phone": f"{area}-555-{rng.randint(0, 9999):04d}",
        "email": f"{first}.{last}{number}@example.org".lower(),
    }


def _conditions(rng: random.Random, patient: dict[str, Any]) -> list[dict[str, Any]]:
    birth: date = patient["birth_date"]
    rows: list[dict[str, Any]] = []
    for spec in CONDITIONS:
        # Draw for every spec so that one patient's eligibility never shifts the stream.
        draw = rng.random()
        first = max(_add_years(birth, spec.min_age), spec.earliest)
        if draw >= spec.prevalence or first > REFERENCE_DATE:
            continue
        if spec.sex is not None and spec.sex != patient["sex"]:
            continue
        entry = icd10.lookup(spec.code)
        assert entry is not None, spec.code
        rows.append(
            {
                "patient_id": patient["patient_id"],
                "icd10_code": spec.code,
                "description": entry.description,
                "onset_date": _day_between(rng, first, REFERENCE_DATE),
            }
        )
    return rows


def _encounters(rng: random.Random, patient: dict[str, Any]) -> list[dict[str, Any]]:
    first = max(patient["birth_date"], FIRST_EVENT)
    kinds = [kind for kind, _ in ENCOUNTER_TYPES]
    weights = [weight for _, weight in ENCOUNTER_TYPES]
    return [
        {
            "patient_id": patient["patient_id"],
            "encounter_date": _day_between(rng, first, REFERENCE_DATE),
            "encounter_type": rng.choices(kinds, weights=weights)[0],
            "facility": rng.choice(FACILITIES),
        }
        for _ in range(rng.randint(1, 8))
    ]


def _observations(
    rng: random.Random, patient: dict[str, Any], diabetic: bool
) -> list[dict[str, Any]]:
    first = max(patient["birth_date"], FIRST_EVENT)
    rows: list[dict[str, Any]] = []
    for _ in range(rng.randint(0, 6)):
        lab = rng.choice(LABS)
        mean = lab.mean + (lab.diabetic_shift if diabetic else 0.0)
        value = max(round(rng.gauss(mean, lab.sd), lab.decimals), 0.0)
        rows.append(
            {
                "patient_id": patient["patient_id"],
                "loinc_code": lab.code,
                "name": lab.name,
                "value": float(value),
                "unit": lab.unit,
                "observed_on": _day_between(rng, first, REFERENCE_DATE),
            }
        )
    return rows


def generate_warehouse(patients: int = 2000, seed: int = 42) -> WarehouseRows:
    """Generate the rows of a warehouse of ``patients`` patients from ``seed``."""
    if not 1 <= patients <= MAX_PATIENTS:
        raise ValueError(f"patients must be between 1 and {MAX_PATIENTS}, not {patients}")
    rng = random.Random(seed)
    mrns = rng.sample(range(10_000_000, 100_000_000), patients)
    rows = WarehouseRows()
    for number in range(1, patients + 1):
        patient = _patient(rng, number, mrns[number - 1])
        conditions = _conditions(rng, patient)
        diabetic = any(row["icd10_code"].startswith("E11") for row in conditions)
        rows.patients.append(patient)
        rows.conditions.extend(conditions)
        rows.encounters.extend(_encounters(rng, patient))
        rows.observations.extend(_observations(rng, patient, diabetic))
    return rows


_PATIENT_COLUMNS = (
    "patient_id",
    "mrn",
    "first_name",
    "last_name",
    "birth_date",
    "sex",
    "address",
    "city",
    "state",
    "zip_code",
    "phone",
    "email",
)


async def _count(session: AsyncSession, column: Any) -> int:
    return int((await session.execute(select(func.count(column)))).scalar_one())


async def _already_seeded(session: AsyncSession, rows: WarehouseRows) -> bool:
    """True when the warehouse holds exactly these patients and as many events of each kind."""
    if await _count(session, Patient.patient_id) != len(rows.patients):
        return False
    counts = (
        (Condition.id, rows.conditions),
        (Encounter.id, rows.encounters),
        (Observation.id, rows.observations),
    )
    for column, generated in counts:
        if await _count(session, column) != len(generated):
            return False
    columns = [getattr(Patient, name) for name in _PATIENT_COLUMNS]
    stored = await session.execute(select(*columns).order_by(Patient.patient_id))
    expected = sorted(tuple(p[name] for name in _PATIENT_COLUMNS) for p in rows.patients)
    return [tuple(row) for row in stored] == expected


def _has_warehouse_tables(connection: Connection) -> bool:
    names = set(inspect(connection).get_table_names())
    return all(table in names for table in WarehouseBase.metadata.tables)


#: Rows per INSERT while seeding (one progress report each).
SEED_CHUNK_ROWS = 5000

#: ``progress(rows_written, rows_total)``.
SeedProgress = Callable[[int, int | None], None]


async def seed_warehouse(
    database: Database,
    patients: int = 2000,
    seed: int = 42,
    *,
    create_tables: bool = False,
    force: bool = False,
    progress: SeedProgress | None = None,
) -> SeedSummary:
    """Fill the warehouse tables of ``database`` with the (``patients``, ``seed``) warehouse.

    Skips when the warehouse already holds exactly those rows (unless ``force``); otherwise
    replaces every warehouse row in one transaction. ``create_tables`` creates missing
    warehouse tables (for a warehouse kept in its own database); without it, missing
    tables raise :class:`SchemaNotReady`. ``progress(rows_written, rows_total)`` is called
    after every chunk of inserted rows (for a progress bar).
    """
    started = time.perf_counter()
    rows = generate_warehouse(patients, seed)
    with translated_errors(database.url):
        async with database.engine.begin() as connection:
            if create_tables:
                await connection.run_sync(WarehouseBase.metadata.create_all)
            elif not await connection.run_sync(_has_warehouse_tables):
                raise SchemaNotReady(
                    "the warehouse tables do not exist; run scripts/init_database.py first"
                )
    async with database.session() as session:
        skipped = not force and await _already_seeded(session, rows)
        if not skipped:
            for model in (Observation, Encounter, Condition, Patient):
                await session.execute(delete(model))
            tables = (
                (Patient, rows.patients),
                (Condition, rows.conditions),
                (Encounter, rows.encounters),
                (Observation, rows.observations),
            )
            total = sum(len(batch) for _, batch in tables)
            written = 0
            for model, batch in tables:
                for start in range(0, len(batch), SEED_CHUNK_ROWS):
                    chunk = batch[start : start + SEED_CHUNK_ROWS]
                    await session.execute(insert(model), chunk)
                    written += len(chunk)
                    if progress is not None:
                        progress(written, total)
    return SeedSummary(
        patients=len(rows.patients),
        conditions=len(rows.conditions),
        encounters=len(rows.encounters),
        observations=len(rows.observations),
        seed=seed,
        skipped=skipped,
        seconds=time.perf_counter() - started,
    )


__all__ = [
    "CITIES",
    "CONDITIONS",
    "FACILITIES",
    "FIRST_NAMES_F",
    "FIRST_NAMES_M",
    "LABS",
    "LAST_NAMES",
    "REFERENCE_DATE",
    "SeedSummary",
    "WarehouseRows",
    "generate_warehouse",
    "seed_warehouse",
]
