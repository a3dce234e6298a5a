"""Shared set-up for the results tests: real services, real agents, a transcribed recording."""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from app.agents.research import sample_research_payloads
from app.audit import parse_event
from app.audit.events import AuditEvent
from app.auth import Principal, Role
from app.bootstrap import Services, build_services
from app.config import Settings
from app.database import Database
from app.database.models import AuditLog
from app.orchestrator.worker import Worker
from tests.support.checks import drive_until_settled

AUDIO = Path(__file__).resolve().parents[1] / "fixtures" / "audio"
OWNER = "svc-clinic"
OWNER_VIEWER = Principal(OWNER, Role.SUBMITTER)
OTHER_VIEWER = Principal("svc-other", Role.SUBMITTER)
REVIEWER_VIEWER = Principal("dr-review", Role.REVIEWER)
AUDITOR_VIEWER = Principal("compliance-1", Role.AUDITOR)
ADMIN_VIEWER = Principal("ops-admin", Role.ADMIN)


def results_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings with the test's own audio and delivery folders."""
    values: dict[str, Any] = {
        "audio_dir": tmp_path / "audio",
        "delivery_dir": tmp_path / "deliveries",
        "audio_max_bytes": 1024 * 1024,
        "audio_max_seconds": 60.0,
        "transcript_min_confidence": 0.4,
        "poll_seconds": 0.05,
        **overrides,
    }
    return Settings(_env_file=None, **values)


@dataclass
class Results:
    """Services over the test database and helpers to make recordings and deliveries."""

    services: Services

    @property
    def database(self) -> Database:
        """The test database."""
        return self.services.database

    async def drive(self) -> None:
        """Run real workers until no request is pending or running."""
        await drive_until_settled(
            lambda: Worker(
                self.services.orchestrator,
                self.services.agents,
                settings=self.services.settings,
                concurrency=4,
                warehouse=self.services.warehouse,
            ),
            self.database,
            passes=50,
        )

    async def submit_recording(
        self, name: str = "chest_pain.wav", patient_id: str = "P00042", by: str = OWNER
    ) -> uuid.UUID:
        """Copy a fixture into the audio folder and submit its transcription (not run)."""
        folder = self.services.settings.audio_path
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(AUDIO / name, folder / name)
        view = await self.services.orchestrator.submit(
            "transcription",
            {"patient_id": patient_id, "clinician_id": "C007", "audio_file_path": name},
            by,
        )
        return view.id

    async def transcribed(self, name: str = "chest_pain.wav") -> uuid.UUID:
        """A recording run through validate → transcribe → verify by real agents."""
        recording_id = await self.submit_recording(name)
        await self.drive()
        return recording_id

    async def research(self, by: str = OWNER) -> uuid.UUID:
        """A research request submitted, approved by a reviewer and delivered."""
        payload = sample_research_payloads()["type2_diabetes_adults"]
        view = await self.services.orchestrator.submit("research", payload, by)
        await self.drive()
        [approval] = [
            a for a in await self.services.orchestrator.approvals() if a.request_id == view.id
        ]
        await self.services.orchestrator.decide_approval(approval.id, "dr-review", "approve")
        await self.drive()
        assert (await self.services.orchestrator.get(view.id)).state == "completed"
        return view.id


def make_results(database: Database, settings: Settings) -> Results:
    """Reference services over ``database``."""
    return Results(build_services(settings, database=database))


async def audit_events(
    database: Database, *event_types: str
) -> list[tuple[str, uuid.UUID | None, AuditEvent]]:
    """(actor, request id, typed event) of every audit row of these types, oldest first."""
    async with database.read_session() as session:
        rows = (
            await session.execute(
                select(AuditLog)
                .where(AuditLog.event_type.in_(event_types))
                .order_by(AuditLog.chain_key, AuditLog.seq)
            )
        ).scalars()
        return [(r.actor, r.request_id, parse_event(r.event_type, r.event_data)) for r in rows]


async def audit_text(database: Database) -> str:
    """Every audit row's event data and actor, as one lower-case string (for PHI scans)."""
    async with database.read_session() as session:
        rows = (await session.execute(select(AuditLog.event_data, AuditLog.actor))).all()
    return " ".join(f"{data} {actor}" for data, actor in rows).lower()


def word_runs(text: str, length: int = 3) -> set[str]:
    """Every run of ``length`` consecutive words of ``text``, lower-cased."""
    words = text.lower().split()
    return {" ".join(words[i : i + length]) for i in range(len(words) - length + 1)}
