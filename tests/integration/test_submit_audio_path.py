"""A transcription whose ``audio_file_path`` lies outside ``AUDIO_DIR`` is refused when it
is submitted through the Python API (``Orchestrator.submit``), not later by a worker, and
nothing is written."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.config import Settings, get_settings
from app.database import Database
from app.database.models import AuditLog, Recording, Request
from app.orchestrator.catalog import default_workflows
from app.orchestrator.engine import Orchestrator
from app.orchestrator.exceptions import InvalidRequest

REFUSED = [("payload.audio_file_path", "lies outside AUDIO_DIR")]


def payload(path: str) -> dict[str, str]:
    return {"patient_id": "P000123", "clinician_id": "C042", "audio_file_path": path}


async def counts(database: Database) -> tuple[int, ...]:
    async with database.read_session() as session:
        return tuple(
            [
                int((await session.execute(select(func.count()).select_from(table))).scalar_one())
                for table in (Request, Recording, AuditLog)
            ]
        )


async def test_submit_refuses_paths_out_of_audio_dir_and_writes_nothing(
    database: Database, tmp_path: Path
) -> None:
    audio = tmp_path / "audio"
    audio.mkdir()
    (audio / "escape").symlink_to(tmp_path)
    settings = Settings(_env_file=None, audio_dir=audio)
    orchestrator = Orchestrator(database, default_workflows(), settings=settings)
    before = await counts(database)

    for raw in ("../x.wav", "/etc/hosts", str(tmp_path / "audio2" / "x.wav"), "escape/x.wav"):
        with pytest.raises(InvalidRequest) as raised:
            await orchestrator.submit("transcription", payload(raw), "svc-python")
        assert raised.value.field == "payload.audio_file_path"
        assert [(p.field, p.message) for p in raised.value.problems] == REFUSED
        assert raw not in raised.value.message

    assert await counts(database) == before
    accepted = await orchestrator.submit("transcription", payload("in/x.wav"), "svc-python")
    assert accepted.state == "pending"


async def test_without_settings_the_process_audio_dir_is_the_fence(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUDIO_DIR", str(tmp_path / "audio"))
    get_settings.cache_clear()
    try:
        orchestrator = Orchestrator(database, default_workflows())
        with pytest.raises(InvalidRequest) as raised:
            await orchestrator.submit("transcription", payload("../x.wav"), "svc-python")
        assert [(p.field, p.message) for p in raised.value.problems] == REFUSED
        inside = str(tmp_path / "audio" / "x.wav")
        assert (await orchestrator.submit("transcription", payload(inside), "py")).id
    finally:
        get_settings.cache_clear()
