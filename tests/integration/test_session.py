"""get_db_session(): commit on clean exit, rollback and re-raise on error."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.database import Database, get_db_session
from app.database.models import ApiClient


class Boom(Exception):
    pass


def _client(name: str) -> ApiClient:
    return ApiClient(name=name, role="admin", key_prefix="lf_abc", key_hash="0" * 64)


async def _count(database: Database, name: str) -> int:
    async with database.read_session() as session:
        return int(
            (await session.execute(select(func.count()).where(ApiClient.name == name))).scalar_one()
        )


async def test_session_commits_on_clean_exit(database: Database) -> None:
    async with get_db_session() as session:
        session.add(_client("committed"))
    assert await _count(database, "committed") == 1


async def test_session_rolls_back_and_reraises_on_exception(database: Database) -> None:
    with pytest.raises(Boom):
        async with get_db_session() as session:
            session.add(_client("rolled-back"))
            await session.flush()  # the row reached the database inside the transaction
            raise Boom
    assert await _count(database, "rolled-back") == 0


async def test_session_closes_its_connection(database: Database) -> None:
    pool = database.engine.pool
    async with get_db_session() as session:
        session.add(_client("closed"))
    assert pool.checkedout() == 0
