"""Data written through one engine comes back intact through a brand-new process."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime

from app.database import Database, get_db_session
from app.database.models import Request

READER = """
import asyncio, json, sys, uuid
from app.database import Database
from app.database.models import Request

async def main():
    db = Database.from_url()
    async with db.read_session() as session:
        row = await session.get(Request, uuid.UUID(sys.argv[1]))
        print(json.dumps({"payload": row.payload, "created_at": row.created_at.isoformat(),
                          "kind": row.kind, "priority": row.priority}))
    await db.dispose()

asyncio.run(main())
"""


async def test_rows_survive_into_a_new_process_with_json_and_microseconds(
    database: Database, subprocess_env: dict[str, str]
) -> None:
    stamp = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)
    payload = {
        "criteria": {"icd10": ["E11.9", "I10"], "age": [18, 65]},
        "note": "naïve ✓",
        "n": 1.5,
    }
    request_id = uuid.uuid4()
    async with get_db_session() as session:
        session.add(
            Request(
                id=request_id,
                kind="research",
                state="pending",
                priority=3,
                submitted_by="svc",
                payload_digest="0" * 64,
                payload=payload,
                created_at=stamp,
                updated_at=stamp,
                not_before=stamp,
            )
        )
    await database.dispose()

    out = subprocess.run(
        [sys.executable, "-c", READER, str(request_id)],
        env=subprocess_env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    row = json.loads(out.stdout)
    assert row["payload"] == payload
    assert row["created_at"] == "2026-03-04T05:06:07.123456+00:00"
    assert (row["kind"], row["priority"]) == ("research", 3)


async def test_timestamps_come_back_as_utc_whatever_zone_went_in(database: Database) -> None:
    from datetime import timedelta, timezone

    local = datetime(2026, 1, 1, 12, 0, 0, 1, tzinfo=timezone(timedelta(hours=-5)))
    request_id = uuid.uuid4()
    async with get_db_session() as session:
        session.add(
            Request(
                id=request_id,
                kind="research",
                state="pending",
                submitted_by="svc",
                payload_digest="0" * 64,
                payload={},
                created_at=local,
            )
        )
    async with database.read_session() as session:
        row = await session.get(Request, request_id)
        assert row is not None
        assert row.created_at == local
        assert row.created_at.tzinfo == UTC
        assert row.created_at.hour == 17 and row.created_at.microsecond == 1
