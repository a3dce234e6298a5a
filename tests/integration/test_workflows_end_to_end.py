"""Both reference workflows end to end through the engine, on each backend.

Requests are submitted through the :class:`Orchestrator`, driven by a real
:class:`Worker` with the reference agents (PocketSphinx really decodes; the research
agents query a seeded synthetic warehouse), and steered by a reviewer through the same
Python API the HTTP layer uses. After every run the ledger is checked for consistency and
the audit rows are searched for patient names and transcript text.

Word error rate threshold: one sentence may reach :data:`MAX_WER` = 0.5. The committed
``chest_pain.wav`` fixture measured 0.125 with PocketSphinx 5.1.1's bundled en-us model
(see ``tests/integration/test_transcription_agents.py`` for all fixtures' rates).
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
from sqlalchemy import func, select

from app.agents.research import sample_research_payloads, seed_warehouse
from app.agents.transcription import LOW_CONFIDENCE_REVIEW, word_error_rate
from app.bootstrap import Services, build_services
from app.config import Settings
from app.database import Database
from app.database.models import (
    AgentExecution,
    AuditLog,
    DataDelivery,
    Recording,
)
from app.logging import configure_logging
from app.orchestrator.views import RequestView
from app.orchestrator.worker import Worker
from tests.support.checks import assert_ledger_consistent, drive_until_settled, event_types
from tests.support.deliveries import (
    WORDS,
    patient_ids,
    patient_names,
    read_manifest,
    scan_delivery,
    sha256_of,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "audio"
SENTENCES: dict[str, str] = json.loads((FIXTURES / "sentences.json").read_text())
SEED_PATIENTS = 300
MAX_WER = 0.5
REVIEWER = "dr.reviewer"


@dataclass
class Flow:
    """A seeded database with the reference services, and a way to drive requests."""

    services: Services
    settings: Settings

    @property
    def database(self) -> Database:
        """The orchestrator (and warehouse) database."""
        return self.services.database

    async def submit(self, kind: str, payload: dict[str, Any]) -> RequestView:
        """Submit as the test service."""
        return await self.services.orchestrator.submit(kind, payload, "svc-e2e")

    async def drive(self) -> None:
        """Run workers until no request is pending or running."""
        await drive_until_settled(
            lambda: Worker(
                self.services.orchestrator,
                self.services.agents,
                settings=self.settings,
                concurrency=4,
                warehouse=self.services.warehouse,
            ),
            self.database,
            passes=100,
        )

    async def get(self, request_id: uuid.UUID) -> RequestView:
        """The request as it is now."""
        return await self.services.orchestrator.get(request_id)

    async def approve(self, request_id: uuid.UUID) -> None:
        """Approve the request's one pending approval as the reviewer."""
        (approval,) = [
            a for a in await self.services.orchestrator.approvals() if a.request_id == request_id
        ]
        await self.services.orchestrator.decide_approval(approval.id, REVIEWER, "approve")


@pytest.fixture
async def flow(database: Database, tmp_path: Path) -> AsyncIterator[Flow]:
    """Reference services on the test database, with a seeded warehouse and audio folder."""
    await seed_warehouse(database, SEED_PATIENTS, seed=42)
    audio = tmp_path / "audio"
    audio.mkdir()
    for name in [*SENTENCES, "noisy_speech.wav"]:
        shutil.copy(FIXTURES / name, audio / name)
    settings = Settings(
        _env_file=None,
        delivery_dir=tmp_path / "deliveries",
        audio_dir=audio,
        min_cohort_size=10,
        audio_max_bytes=1024 * 1024,
        audio_max_seconds=60.0,
        transcript_min_confidence=0.4,
        lease_seconds=30.0,
    )
    yield Flow(build_services(settings, database), settings)
    await assert_ledger_consistent(database)


def research(name: str, **overrides: Any) -> dict[str, Any]:
    """A sample research payload, with ``overrides``."""
    return {**sample_research_payloads()[name], **overrides}


def transcription(file_name: str) -> dict[str, Any]:
    """A transcription payload for a recording in the audio folder."""
    return {"patient_id": "P000123", "clinician_id": "C042", "audio_file_path": file_name}


async def audit_text(database: Database) -> str:
    """Every audit row's actor and JSON data, one row per line, lower-cased."""
    async with database.read_session() as session:
        rows = await session.execute(select(AuditLog.actor, AuditLog.event_data))
        return "\n".join(f"{actor} {json.dumps(data)}".lower() for actor, data in rows)


async def assert_audit_holds_no_names(database: Database) -> None:
    """No warehouse patient's first or last name appears in any audit row."""
    words = set(WORDS.findall(await audit_text(database)))
    leaked = {name for name in await patient_names(database) if name in words}
    assert not leaked, f"patient names in audit rows: {sorted(leaked)[:5]}"


# --------------------------------------------------------------------------- research


async def test_research_request_is_delivered_de_identified_and_matching_its_manifest(
    flow: Flow,
) -> None:
    view = await flow.submit("research", research("type2_diabetes_adults"))
    await flow.drive()
    assert (await flow.get(view.id)).state == "awaiting_approval"
    (gate,) = await flow.services.orchestrator.approvals()
    assert gate.summary is not None  # the reviewer sees the normalised criteria
    assert gate.summary["output"]["criteria"]["inclusion_codes"] == ["E11"]
    assert gate.summary["output"]["completeness_score"] == 1.0
    await flow.approve(view.id)
    await flow.drive()

    done = await flow.get(view.id)
    assert done.state == "completed", done.error
    assert done.result is not None
    folder = Path(done.result["delivery"]["folder"])
    assert folder == flow.settings.deliveries_path / str(view.id)
    manifest = read_manifest(folder)
    assert set(manifest["files"]) == {
        "conditions.csv",
        "data_dictionary.csv",
        "demographics.csv",
        "encounters.csv",
        "observations.csv",
    }
    for name, entry in manifest["files"].items():
        assert sha256_of(folder / name) == entry["sha256"], name
    async with flow.database.read_session() as session:
        delivery = (
            await session.execute(select(DataDelivery).where(DataDelivery.request_id == view.id))
        ).scalar_one()
    assert delivery.manifest_sha256 == sha256_of(folder / "manifest.json")
    assert delivery.manifest_sha256 == done.result["delivery"]["manifest_sha256"]

    names = await patient_names(flow.database)
    cells = scan_delivery(folder, names, await patient_ids(flow.database))
    assert cells > 500
    assert event_types_in_order(await event_types(flow.database, view.id)) == [
        "request_submitted",
        "approval_requested",
        "approval_decided",
        "request_completed",
    ]
    await assert_audit_holds_no_names(flow.database)


def event_types_in_order(types: list[str]) -> list[str]:
    """The milestone events among ``types``, in order (agent and state events left out)."""
    milestones = {
        "request_submitted",
        "approval_requested",
        "approval_decided",
        "escalation_opened",
        "escalation_resolved",
        "request_completed",
        "request_failed",
    }
    return [t for t in types if t in milestones]


@pytest.mark.parametrize(("resolution", "final_state"), [("skip", "completed"), ("fail", "failed")])
async def test_cohort_below_minimum_escalates_and_goes_on_as_the_reviewer_decides(
    flow: Flow, resolution: Literal["skip", "fail"], final_state: str
) -> None:
    view = await flow.submit("research", research("cystic_fibrosis_under_40"))
    await flow.drive()
    await flow.approve(view.id)
    await flow.drive()

    stopped = await flow.get(view.id)
    assert (stopped.state, stopped.current_step) == ("escalated", "feasibility")
    (escalation,) = await flow.services.orchestrator.escalations()
    assert escalation.request_id == view.id
    assert escalation.reason == "cohort_below_minimum"
    assert escalation.detail is not None
    assert escalation.detail["cohort_size"] < escalation.detail["min_cohort_size"] == 10

    await flow.services.orchestrator.resolve_escalation(
        escalation.id,
        REVIEWER,
        resolution,
        note="small cohort accepted by the IRB",
    )
    await flow.drive()

    done = await flow.get(view.id)
    assert done.state == final_state
    async with flow.database.read_session() as session:
        delivered = (
            await session.execute(
                select(func.count())
                .select_from(DataDelivery)
                .where(DataDelivery.request_id == view.id)
            )
        ).scalar_one()
    assert delivered == (1 if resolution == "skip" else 0)
    milestones = event_types_in_order(await event_types(flow.database, view.id))
    assert milestones[-3:] == [
        "escalation_opened",
        "escalation_resolved",
        "request_completed" if resolution == "skip" else "request_failed",
    ]


async def test_incomplete_request_stops_for_human_review_with_its_reasons(flow: Flow) -> None:
    payload = research("type2_diabetes_adults", irb_number=None, inclusion_codes=["E11", "Q99.X7"])
    view = await flow.submit("research", payload)
    await flow.drive()

    stopped = await flow.get(view.id)
    assert (stopped.state, stopped.current_step) == ("escalated", "requirements")
    (escalation,) = await flow.services.orchestrator.escalations()
    assert escalation.reason == "incomplete_requirements"
    assert escalation.detail is not None
    issues = {issue["field"]: issue["message"] for issue in escalation.detail["issues"]}
    assert set(issues) >= {"irb_number", "inclusion_codes"}
    assert "Q99.X7" in issues["inclusion_codes"]
    assert escalation.detail["completeness_score"] < 1.0
    async with flow.database.read_session() as session:
        ran = (
            await session.execute(
                select(AgentExecution.step).where(AgentExecution.request_id == view.id)
            )
        ).scalars()
        assert list(ran) == ["requirements"]


# --------------------------------------------------------------------------- transcription


async def recording(database: Database, request_id: uuid.UUID) -> Recording:
    """The request's ``recordings`` row."""
    async with database.read_session() as session:
        return (
            await session.execute(select(Recording).where(Recording.request_id == request_id))
        ).scalar_one()


async def test_recording_is_transcribed_within_the_measured_word_error_rate(flow: Flow) -> None:
    view = await flow.submit("transcription", transcription("chest_pain.wav"))
    await flow.drive()

    done = await flow.get(view.id)
    assert done.state == "completed", done.error
    row = await recording(flow.database, view.id)
    assert row.transcript is not None and row.status == "verified"
    wer = word_error_rate(SENTENCES["chest_pain.wav"], row.transcript)
    assert wer < MAX_WER, (wer, row.transcript)
    assert row.verification_results is not None and row.verification_results["passed"]
    assert row.processed_at is not None and row.duration_seconds is not None

    text = await audit_text(flow.database)
    assert row.transcript.strip(), "an empty transcript would make the next check vacuous"
    assert row.transcript.lower() not in text
    spoken = SENTENCES["chest_pain.wav"].split()
    for i in range(len(spoken) - 2):
        assert " ".join(spoken[i : i + 3]) not in text, "transcript words in the audit trail"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (lambda whole: whole[:30], "corrupt WAV file: header is truncated"),
        (lambda whole: b"this is a text file, not audio\n", "not a WAV file (no RIFF header)"),
    ],
    ids=["truncated", "not-wav"],
)
async def test_broken_audio_fails_permanently_without_retries(
    flow: Flow, content: Any, message: str
) -> None:
    broken = flow.settings.audio_path / "broken.wav"
    broken.write_bytes(content((FIXTURES / "no_allergies.wav").read_bytes()))
    view = await flow.submit("transcription", transcription("broken.wav"))
    await flow.drive()

    done = await flow.get(view.id)
    assert done.state == "failed"
    assert done.error is not None and message in json.dumps(done.error)
    async with flow.database.read_session() as session:
        runs = (
            await session.execute(
                select(AgentExecution.attempt, AgentExecution.status).where(
                    AgentExecution.request_id == view.id
                )
            )
        ).all()
    assert [tuple(run) for run in runs] == [(1, "failed")]
    assert "agent_retry_scheduled" not in await event_types(flow.database, view.id)
    row = await recording(flow.database, view.id)
    assert (row.status, row.error_message) == ("failed", message)


async def test_low_confidence_transcript_waits_for_a_clinician(flow: Flow) -> None:
    view = await flow.submit("transcription", transcription("noisy_speech.wav"))
    await flow.drive()

    assert (await flow.get(view.id)).state == "awaiting_approval"
    (approval,) = await flow.services.orchestrator.approvals()
    assert (approval.request_id, approval.step) == (view.id, "verify")
    assert approval.summary is not None
    assert approval.summary["reason"] == LOW_CONFIDENCE_REVIEW
    await flow.services.orchestrator.decide_approval(
        approval.id, "dr.clinician", "approve", note="checked against the dictation"
    )
    await flow.drive()
    assert (await flow.get(view.id)).state == "completed"
    row = await recording(flow.database, view.id)
    assert row.verification_results is not None
    assert row.verification_results["passed"] is False
    if row.transcript:
        assert row.transcript.lower() not in await audit_text(flow.database)


# --------------------------------------------------------------------------- logs


async def test_logs_of_both_workflows_hold_no_names_ids_or_transcript(
    flow: Flow, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    configure_logging("DEBUG", "json", force=True)
    capsys.readouterr()
    research_view = await flow.submit("research", research("type2_diabetes_adults"))
    dictation = await flow.submit("transcription", transcription("chest_pain.wav"))
    await flow.drive()
    await flow.approve(research_view.id)
    await flow.drive()
    assert (await flow.get(research_view.id)).state == "completed"
    assert (await flow.get(dictation.id)).state == "completed"
    logged = capsys.readouterr().err
    lines = logged.splitlines()
    assert len(lines) > 10 and all(json.loads(line) for line in lines)

    words = set(WORDS.findall(logged.lower()))
    leaked_names = {name for name in await patient_names(flow.database) if name in words}
    assert not leaked_names, sorted(leaked_names)[:5]
    tokens = set(re.findall(r"[A-Za-z0-9]+", logged))
    ids = await patient_ids(flow.database) | {transcription("x")["patient_id"]}
    assert not ids & tokens, sorted(ids & tokens)[:5]
    transcript = (await recording(flow.database, dictation.id)).transcript
    assert transcript
    spoken = transcript.lower().split()
    for i in range(len(spoken) - 2):
        assert " ".join(spoken[i : i + 3]) not in logged.lower(), "transcript text in the logs"
