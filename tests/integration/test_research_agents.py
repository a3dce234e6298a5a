"""The research agents, step by step, against a seeded warehouse on each backend.

The engine is not involved: each test builds the ``AgentContext`` the engine would, feeds
every step the JSON outputs of the steps before it, and applies the returned domain writes
to the real database so that their shape is checked by the schema too.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import structlog
from pydantic import SecretStr, ValidationError
from sqlalchemy import insert, select

from app.agents.base import (
    Agent,
    AgentContext,
    DomainWrite,
    NeedsHumanReview,
    PermanentError,
    StepResult,
)
from app.agents.research import (
    DeliveryAgent,
    ExtractionAgent,
    FeasibilityAgent,
    QaAgent,
    RequirementsAgent,
    research_submit_writes,
    sample_research_payloads,
    seed_warehouse,
)
from app.agents.research.cohort import cohort_patient_ids
from app.agents.research.payload import ResearchCriteria
from app.config import Settings
from app.database import Database
from app.database.models import (
    Base,
    DataDelivery,
    FeasibilityReport,
    Patient,
    Request,
    RequirementsData,
    ResearchRequest,
)
from tests.support.deliveries import (
    FULL_DATE,
    csv_rows,
    patient_ids,
    patient_names,
    scan_delivery,
    sha256_of,
)

SEED_PATIENTS = 300

Outputs = dict[str, dict[str, Any]]


class Steps:
    """Runs research steps for one request the way the engine would, recording every write."""

    def __init__(self, database: Database, settings: Settings, payload: dict[str, Any]) -> None:
        self.database = database
        self.settings = settings
        self.payload = payload
        self.request_id = uuid.uuid4()
        self.previous: Outputs = {}
        self.writes: list[DomainWrite] = []

    def context(self, step: str) -> AgentContext:
        """The context the engine gives the agent of ``step``."""
        return AgentContext(
            request_id=self.request_id,
            kind="research",
            step=step,
            attempt=1,
            idempotency_key=f"{self.request_id}:{step}",
            log=structlog.get_logger(),
            warehouse=self.database,
            settings=self.settings,
        )

    async def run(self, step: str, agent: Agent[Any, Any]) -> dict[str, Any]:
        """Run ``agent`` as ``step``; keep its JSON output for later steps and its writes."""
        parsed = agent.parse_input(self.payload, self.previous)
        result = await agent.run(self.context(step), parsed)
        if isinstance(result, StepResult):
            self.writes.extend(result.writes)
            output = result.output
        else:
            output = result
        assert isinstance(output, agent.output_model)
        dumped: dict[str, Any] = json.loads(output.model_dump_json())
        self.previous[step] = dumped
        return dumped

    async def run_all(self) -> dict[str, Any]:
        """Run every step in order; return the delivery output."""
        await self.run("requirements", RequirementsAgent())
        await self.run("feasibility", FeasibilityAgent())
        await self.run("extraction", ExtractionAgent())
        await self.run("qa", QaAgent())
        return await self.run("delivery", DeliveryAgent())

    async def record(self, writes: Sequence[DomainWrite] | None = None) -> None:
        """Insert the request row, its submit-time writes and ``writes`` (default: all so far)."""
        all_writes = [
            *research_submit_writes(self.request_id, self.payload),
            *(self.writes if writes is None else writes),
        ]
        async with self.database.session() as session:
            session.add(
                Request(
                    id=self.request_id,
                    kind="research",
                    state="running",
                    submitted_by="test",
                    payload_digest="0" * 64,
                    payload=self.payload,
                )
            )
            await session.flush()
            for write in all_writes:
                assert write.match is None
                table = Base.metadata.tables[write.table]
                await session.execute(insert(table).values(**write.values))


StepsFactory = Callable[[dict[str, Any]], Steps]


@pytest.fixture
async def warehouse(database: Database) -> AsyncIterator[Database]:
    """The test database with a small synthetic warehouse in it."""
    await seed_warehouse(database, SEED_PATIENTS, seed=42)
    yield database


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings with deliveries under the test's temporary folder."""
    return Settings(delivery_dir=tmp_path / "deliveries", min_cohort_size=10)


@pytest.fixture
def steps(warehouse: Database, settings: Settings) -> StepsFactory:
    """Make a ``Steps`` runner for a payload."""

    def make(payload: dict[str, Any]) -> Steps:
        return Steps(warehouse, settings, payload)

    return make


def _sample(name: str, **overrides: Any) -> dict[str, Any]:
    return {**sample_research_payloads()[name], **overrides}


async def test_research_request_is_delivered_with_files_matching_their_manifest(
    steps: StepsFactory, settings: Settings, warehouse: Database
) -> None:
    run = steps(_sample("type2_diabetes_adults"))
    delivery = await run.run_all()
    await run.record()

    folder = settings.deliveries_path / str(run.request_id)
    assert Path(delivery["folder"]) == folder
    assert not (folder / "staging").exists()
    manifest_path = folder / "manifest.json"
    assert sha256_of(manifest_path) == delivery["manifest_sha256"]
    manifest = json.loads(manifest_path.read_text("utf-8"))
    assert sorted(manifest["files"]) == [
        "conditions.csv",
        "data_dictionary.csv",
        "demographics.csv",
        "encounters.csv",
        "observations.csv",
    ]
    for name, entry in manifest["files"].items():
        path = folder / name
        assert sha256_of(path) == entry["sha256"]
        assert path.stat().st_size == entry["bytes"]
        assert len(csv_rows(path)) == entry["rows"]

    feasibility = run.previous["feasibility"]
    assert feasibility["feasible"] and feasibility["cohort_size"] >= 10
    assert manifest["files"]["demographics.csv"]["rows"] == feasibility["cohort_size"]
    dictionary = csv_rows(folder / "data_dictionary.csv")
    assert {"file", "column", "type", "description"} <= set(dictionary[0])
    assert {(row["file"], row["column"]) for row in dictionary} >= {
        ("demographics.csv", "zip3"),
        ("observations.csv", "loinc_code"),
    }

    async with warehouse.read_session() as session:
        stored = (await session.execute(select(DataDelivery))).scalar_one()
        report = (await session.execute(select(FeasibilityReport))).scalar_one()
        requirements = (await session.execute(select(RequirementsData))).scalar_one()
    assert stored.request_id == run.request_id
    assert stored.manifest_sha256 == delivery["manifest_sha256"]
    assert stored.row_count == delivery["row_count"] > 0
    assert report.cohort_size == feasibility["cohort_size"] and report.feasible
    assert requirements.completeness_score == 1.0 and requirements.issues == []


async def test_delivered_files_hold_no_names_full_dates_or_five_digit_zips(
    steps: StepsFactory, settings: Settings, warehouse: Database
) -> None:
    # Up to age 120, so the over-89 grouping is exercised too.
    run = steps(_sample("type2_diabetes_adults", inclusion_codes=["I10"], age_range={"min": 60}))
    await run.run_all()
    folder = settings.deliveries_path / str(run.request_id)
    names = await patient_names(warehouse)
    ids = await patient_ids(warehouse)
    cells = scan_delivery(folder, names, ids)
    assert cells > 500

    demographics = csv_rows(folder / "demographics.csv")
    oldest = [row for row in demographics if row["age_at_reference"] == "90+"]
    assert oldest, "the seeded warehouse has patients over 89"
    assert all(row["birth_year"] == "" for row in oldest)
    assert all(int(r["age_at_reference"]) <= 89 for r in demographics if r not in oldest)
    assert all(len(row["zip3"]) == 3 for row in demographics)
    assert {"person_id", "sex", "birth_year", "zip3"} <= set(demographics[0])
    assert not {"first_name", "last_name", "mrn", "address", "phone", "email", "city"} & set(
        demographics[0]
    )


async def test_pseudonyms_are_keyed_by_the_deployment_secret(
    warehouse: Database, settings: Settings
) -> None:
    payload = _sample("type2_diabetes_adults", data_elements=["demographics"])
    keyed = settings.model_copy(update={"pseudonym_secret": SecretStr("deployment key")})
    person_ids = []
    for run_settings in (settings, keyed):
        run = Steps(warehouse, run_settings, payload)
        run.request_id = uuid.UUID(int=7)  # the same request both times
        await run.run("requirements", RequirementsAgent())
        await run.run("feasibility", FeasibilityAgent())
        await run.run("extraction", ExtractionAgent())
        staged = run_settings.deliveries_path / str(run.request_id) / "staging"
        person_ids.append({row["person_id"] for row in csv_rows(staged / "demographics.csv")})
        shutil.rmtree(run_settings.deliveries_path)
    plain, secret = person_ids
    assert len(plain) == len(secret) > 10
    assert not plain & secret


async def test_limited_data_set_keeps_dates_but_drops_direct_identifiers(
    steps: StepsFactory, settings: Settings, warehouse: Database
) -> None:
    run = steps(_sample("hypertension_older_adults"))
    await run.run_all()
    folder = settings.deliveries_path / str(run.request_id)
    demographics = csv_rows(folder / "demographics.csv")
    assert {"birth_date", "zip5", "city"} <= set(demographics[0])
    assert all(FULL_DATE.fullmatch(row["birth_date"]) for row in demographics)
    names = await patient_names(warehouse)
    for path in folder.glob("*.csv"):
        text = path.read_text("utf-8").lower()
        assert "@" not in text and "-555-" not in text
        assert not set(re.findall(r"[a-z][a-z'\-]*", text)) & names


async def test_rerunning_extraction_and_delivery_reproduces_the_same_files(
    steps: StepsFactory, settings: Settings
) -> None:
    run = steps(_sample("type2_diabetes_adults"))
    await run.run("requirements", RequirementsAgent())
    await run.run("feasibility", FeasibilityAgent())
    first = await run.run("extraction", ExtractionAgent())
    staging = settings.deliveries_path / str(run.request_id) / "staging"
    (staging / "leftover.csv").write_text("stale\n")
    second = await run.run("extraction", ExtractionAgent())
    assert first == second
    assert not (staging / "leftover.csv").exists()

    await run.run("qa", QaAgent())
    delivered = await run.run("delivery", DeliveryAgent())
    # A crash after publishing but before the step committed: the step runs again.
    again = await run.run("delivery", DeliveryAgent())
    assert again == delivered


async def test_too_small_cohort_escalates_carrying_its_feasibility_report(
    steps: StepsFactory, warehouse: Database
) -> None:
    run = steps(_sample("cystic_fibrosis_under_40"))
    await run.run("requirements", RequirementsAgent())
    with pytest.raises(NeedsHumanReview) as caught:
        await run.run("feasibility", FeasibilityAgent())

    escalation = caught.value
    assert escalation.reason == "cohort_below_minimum"
    assert escalation.detail["cohort_size"] < escalation.detail["min_cohort_size"] == 10
    (report,) = escalation.writes
    assert report.table == "feasibility_reports"
    assert report.values["feasible"] is False
    # Parameterised: the code and the dates are bound, not spelled out in the SQL.
    sql = report.values["sql_text"]
    assert "E84" not in sql and "2015" not in sql

    await run.record(escalation.writes)
    async with warehouse.read_session() as session:
        stored = (await session.execute(select(FeasibilityReport))).scalar_one()
    assert stored.feasible is False
    assert stored.cohort_size == escalation.detail["cohort_size"]


async def test_request_override_can_only_raise_the_minimum_cohort(steps: StepsFactory) -> None:
    run = steps(_sample("type2_diabetes_adults", min_cohort_size=100_000))
    await run.run("requirements", RequirementsAgent())
    with pytest.raises(NeedsHumanReview) as caught:
        await run.run("feasibility", FeasibilityAgent())
    assert caught.value.detail["min_cohort_size"] == 100_000

    lowered = steps(_sample("cystic_fibrosis_under_40", min_cohort_size=1))
    output = await lowered.run("requirements", RequirementsAgent())
    assert output["warnings"]
    with pytest.raises(NeedsHumanReview):
        await lowered.run("feasibility", FeasibilityAgent())


async def test_incomplete_request_escalates_listing_every_reason(
    steps: StepsFactory, warehouse: Database
) -> None:
    payload = _sample("type2_diabetes_adults", irb_number=None, inclusion_codes=["E11", "E11.999"])
    run = steps(payload)
    with pytest.raises(NeedsHumanReview) as caught:
        await run.run("requirements", RequirementsAgent())

    escalation = caught.value
    assert escalation.reason == "incomplete_requirements"
    reasons = {(issue["field"], issue["code"]) for issue in escalation.detail["issues"]}
    assert reasons == {("irb_number", "missing"), ("inclusion_codes", "icd10_unknown")}
    (write,) = escalation.writes
    assert write.table == "requirements_data"
    assert write.values["completeness_score"] < 1.0

    await run.record(escalation.writes)
    async with warehouse.read_session() as session:
        stored = (await session.execute(select(RequirementsData))).scalar_one()
        request = (await session.execute(select(ResearchRequest))).scalar_one()
    assert {issue["code"] for issue in stored.issues} == {"missing", "icd10_unknown"}
    assert request.irb_number is None


async def test_every_kind_of_requirement_problem_is_reported_at_once(
    steps: StepsFactory,
) -> None:
    payload = _sample(
        "type2_diabetes_adults",
        irb_number="  ",
        inclusion_codes=["E11.9", "not-a-code"],
        exclusion_codes=["E11"],
        age_range={"min": 70, "max": 20},
        time_window={"start": "2024-01-01", "end": "2020-01-01"},
        data_elements=["genomics"],
        phi_level="identified",
    )
    with pytest.raises(NeedsHumanReview) as caught:
        await steps(payload).run("requirements", RequirementsAgent())
    reasons = {(issue["field"], issue["code"]) for issue in caught.value.detail["issues"]}
    assert reasons == {
        ("irb_number", "missing"),
        ("inclusion_codes", "icd10_format"),
        ("exclusion_codes", "ambiguous"),
        ("age_range", "inverted"),
        ("time_window", "inverted"),
        ("data_elements", "unknown"),
        ("phi_level", "invalid"),
    }


async def test_qa_rejects_and_deletes_a_staged_file_leaking_identifiers(
    steps: StepsFactory, settings: Settings
) -> None:
    run = steps(_sample("type2_diabetes_adults"))
    requirements = await run.run("requirements", RequirementsAgent())
    await run.run("feasibility", FeasibilityAgent())
    await run.run("extraction", ExtractionAgent())
    criteria = ResearchCriteria.model_validate(requirements["criteria"])
    async with run.database.read_session() as session:
        member = (await cohort_patient_ids(session, criteria))[0]
        patient = await session.get(Patient, member)
    assert patient is not None
    staging = settings.deliveries_path / str(run.request_id) / "staging"
    conditions = staging / "conditions.csv"
    text = conditions.read_text("utf-8")
    person = text.splitlines()[1].split(",")[0]
    note = f"{patient.last_name} {patient.mrn} {patient.phone} {patient.email}"
    conditions.write_text(f"{text}{person},E11.9,{note},2020-03-04\n", "utf-8")

    with pytest.raises(PermanentError) as caught:
        await run.run("qa", QaAgent())
    detail = caught.value.detail
    assert detail["reason"] == "qa_failed"
    assert {
        "sha256_mismatch",
        "row_count_mismatch",
        "name",
        "mrn",
        "phone",
        "email",
        "full_date",
    } <= set(detail["counts"])
    assert {(f["file"], f["column"]) for f in detail["findings"] if f["check"] == "name"} == {
        ("conditions.csv", "description")
    }
    # Findings say where, never what.
    assert patient.last_name not in json.dumps(detail)
    assert not staging.exists()


async def test_submit_writes_record_the_research_request(
    steps: StepsFactory, warehouse: Database
) -> None:
    run = steps(_sample("type2_diabetes_adults"))
    await run.record([])
    async with warehouse.read_session() as session:
        stored = (await session.execute(select(ResearchRequest))).scalar_one()
    assert stored.request_id == run.request_id
    assert stored.irb_number == "IRB-2024-0142"

    with pytest.raises(ValidationError, match="study_title"):
        research_submit_writes(uuid.uuid4(), {"researcher": "x", "irb_number": "1"})


async def test_seeding_again_is_a_no_op_and_a_new_seed_replaces_the_warehouse(
    warehouse: Database,
) -> None:
    again = await seed_warehouse(warehouse, SEED_PATIENTS, seed=42)
    assert again.skipped and again.patients == SEED_PATIENTS

    other = await seed_warehouse(warehouse, 120, seed=7)
    assert not other.skipped
    async with warehouse.read_session() as session:
        count = len((await session.execute(select(Patient.patient_id))).all())
    assert count == 120
