"""scripts/seed_db.py as ops run it: a subprocess against a real database."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy import func, select

from app.database import Database
from app.database.models import Observation, Patient, Recording, Request

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "seed_db.py"


def _seed(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(env),
        stdin=subprocess.DEVNULL,
    )


async def test_seed_script_fills_the_warehouse_once_and_refuses_bad_arguments(
    database: Database, subprocess_env: Mapping[str, str]
) -> None:
    done = _seed(subprocess_env, "--patients", "50", "--seed", "3")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("warehouse seeded (seed 3): 50 patients")
    again = _seed(subprocess_env, "--patients", "50", "--seed", "3")
    assert again.returncode == 0 and "already seeded" in again.stdout

    async with database.read_session() as session:
        patients = (await session.execute(select(func.count(Patient.patient_id)))).scalar_one()
        labs = (await session.execute(select(func.count(Observation.id)))).scalar_one()
    assert patients == 50 and labs > 0

    bad = _seed(subprocess_env, "--patients", "zero")
    assert bad.returncode == 2 and "--patients" in bad.stderr
    unsupported = _seed(subprocess_env, "--database-url", "mysql://somewhere/db")
    assert unsupported.returncode == 2 and "unsupported driver" in unsupported.stderr
    for result in (bad, unsupported):
        assert "Traceback" not in result.stderr


async def test_sample_requests_are_submitted_once_with_their_recordings(
    database: Database, subprocess_env: Mapping[str, str], tmp_path: Path
) -> None:
    env = {**subprocess_env, "AUDIO_DIR": str(tmp_path / "audio")}
    first = _seed(env, "--patients", "30", "--requests")
    assert first.returncode == 0, first.stderr
    again = _seed(env, "--patients", "30", "--requests")
    assert again.returncode == 0, again.stderr
    # The same request ids both times: the fixed idempotency keys made the rerun a no-op.
    assert first.stdout.splitlines()[1:] == again.stdout.splitlines()[1:]

    async with database.read_session() as session:
        kinds = sorted((await session.execute(select(Request.kind))).scalars())
        recordings = (await session.execute(select(Recording.audio_file_path))).scalars().all()
    assert kinds == ["research"] * 3 + ["transcription"] * 3
    assert len(recordings) == 3
    assert sorted(p.name for p in (tmp_path / "audio").iterdir()) == [
        "chest_pain.wav",
        "no_allergies.wav",
        "noisy_speech.wav",
    ]
