"""The database itself refuses to change audit rows and checkpoints, on both backends."""

from __future__ import annotations

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import select, text

from app.audit import AuditAccess
from app.database import Database
from app.database.models import AuditCheckpoint, AuditLog
from tests.support.audit_rows import run_engine_requests


async def _one_row(database: Database) -> dict[str, object]:
    async with database.read_session() as session:
        row = (await session.execute(select(AuditLog).order_by(AuditLog.occurred_at))).scalars()
        first = next(iter(row))
        return {c.name: getattr(first, c.key) for c in AuditLog.__table__.columns}


async def _raw(database: Database, sql: str, **params: object) -> None:
    async with database.engine.begin() as connection:
        await connection.execute(text(sql), params)


def _key(database: Database, value: object) -> object:
    # Raw SQL sees SQLite's UUIDs as 32 hex digits.
    return value.hex if database.dialect == "sqlite" else value  # type: ignore[attr-defined]


async def test_update_and_delete_on_audit_logs_are_refused_and_change_nothing(
    database: Database,
) -> None:
    await run_engine_requests(database, 1, kind="single")
    before = await _one_row(database)
    rid = _key(database, before["id"])
    with pytest.raises(sa_exc.DBAPIError, match="audit_logs is append-only: UPDATE refused"):
        await _raw(database, "UPDATE audit_logs SET actor = 'mallory' WHERE id = :id", id=rid)
    with pytest.raises(sa_exc.DBAPIError, match="audit_logs is append-only: DELETE refused"):
        await _raw(database, "DELETE FROM audit_logs WHERE id = :id", id=rid)
    with pytest.raises(sa_exc.DBAPIError, match="append-only: DELETE refused"):
        await _raw(database, "DELETE FROM audit_logs")
    if database.dialect == "postgresql":
        with pytest.raises(sa_exc.DBAPIError, match="append-only: TRUNCATE refused"):
            await _raw(database, "TRUNCATE audit_logs CASCADE")
    assert await _one_row(database) == before


async def test_checkpoints_are_append_only_too(database: Database) -> None:
    await run_engine_requests(database, 1, kind="single")
    made = await AuditAccess(database, "dr-audit").checkpoint()
    cid = _key(database, made.id)
    with pytest.raises(sa_exc.DBAPIError, match="audit_checkpoints is append-only: UPDATE"):
        await _raw(database, "UPDATE audit_checkpoints SET digest = 'x' WHERE id = :id", id=cid)
    with pytest.raises(sa_exc.DBAPIError, match="audit_checkpoints is append-only: DELETE"):
        await _raw(database, "DELETE FROM audit_checkpoints WHERE id = :id", id=cid)
    if database.dialect == "postgresql":
        with pytest.raises(sa_exc.DBAPIError, match="append-only: TRUNCATE refused"):
            await _raw(database, "TRUNCATE audit_checkpoints")
    async with database.read_session() as session:
        stored = await session.get(AuditCheckpoint, made.id)
    assert stored is not None and stored.digest == made.digest
