"""Constraints hold on both backends: idempotency keys, foreign keys."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from app.database import Database, IntegrityViolation, get_db_session
from app.database.models import Request, StateTransition


def _request(submitted_by: str, key: str | None) -> Request:
    return Request(
        kind="research",
        state="pending",
        submitted_by=submitted_by,
        idempotency_key=key,
        payload_digest="0" * 64,
        payload={},
    )


async def _requests(database: Database) -> int:
    async with database.read_session() as session:
        return int((await session.execute(select(func.count()).select_from(Request))).scalar_one())


async def test_idempotency_key_is_unique_per_submitter(database: Database) -> None:
    async with get_db_session() as session:
        session.add(_request("svc-a", "k1"))
        session.add(_request("svc-b", "k1"))  # same key, other submitter: allowed
        session.add(_request("svc-a", None))
        session.add(_request("svc-a", None))  # no key: never conflicts
    with pytest.raises(IntegrityViolation):
        async with get_db_session() as session:
            session.add(_request("svc-a", "k1"))
    assert await _requests(database) == 4


async def test_foreign_keys_are_enforced(database: Database) -> None:
    with pytest.raises(IntegrityViolation):
        async with get_db_session() as session:
            session.add(StateTransition(request_id=uuid.uuid4(), to_state="pending", actor="x"))
    async with database.read_session() as session:
        count = (
            await session.execute(select(func.count()).select_from(StateTransition))
        ).scalar_one()
    assert count == 0
