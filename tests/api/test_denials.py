"""Refusals are recorded in batches: each one, none lost, few transactions, 503 when they
cannot be recorded."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI
from sqlalchemy import delete, func, select

from app.audit.chain import SYSTEM_CHAIN
from app.audit.denials import configure_denial_log
from app.audit.verify import verify_database
from app.database import Database
from app.database.models import AuditChain, AuditLog
from tests.support.ledger import guards_off


async def _denied(database: Database) -> list[dict[str, object]]:
    async with database.read_session() as session:
        rows = await session.execute(
            select(AuditLog.event_data, AuditLog.actor).where(
                AuditLog.event_type == "access_denied"
            )
        )
        return [{**data, "actor": actor} for data, actor in rows]


async def test_a_burst_of_refusals_is_each_recorded_in_a_few_transactions(
    app: FastAPI, client: httpx.AsyncClient, database: Database
) -> None:
    log = configure_denial_log(database, linger=0.05)
    answers = await asyncio.gather(
        *(
            client.get("/v1/requests", headers={"Authorization": f"Bearer lf_{i:08x}_{'A' * 43}"})
            for i in range(150)
        ),
        *(client.get("/v1/approvals") for _ in range(50)),
    )
    assert [a.status_code for a in answers] == [401] * 200
    rows = await _denied(database)
    assert len(rows) == 200  # every refusal, with who, route, reason and key prefix
    assert {r["route"] for r in rows} == {"/v1/requests", "/v1/approvals"}
    assert sorted(r["key_prefix"] for r in rows if r["key_prefix"]) == sorted(
        f"lf_{i:08x}" for i in range(150)
    )
    assert {r["reason"] for r in rows} == {"unknown key", "missing bearer token"}
    assert log.recorded == 200 and log.batches <= 20, log.batches
    async with database.read_session() as session:
        _, problems = await verify_database(session)
    assert problems == []


async def test_a_refusal_that_cannot_be_recorded_is_not_answered_as_a_refusal(
    app: FastAPI, client: httpx.AsyncClient, database: Database
) -> None:
    before = len(await _denied(database))
    async with guards_off(database) as connection:  # the system chain's head row is gone
        await connection.execute(delete(AuditChain).where(AuditChain.chain_key == SYSTEM_CHAIN))
    answers = await asyncio.gather(*(client.get("/v1/requests") for _ in range(5)))
    assert {a.status_code for a in answers} == {503}
    assert {a.json()["code"] for a in answers} == {"denial_not_recorded"}
    assert len(await _denied(database)) == before


async def test_past_its_bound_the_log_turns_calls_away_with_503_and_records_the_rest(
    app: FastAPI, client: httpx.AsyncClient, database: Database
) -> None:
    log = configure_denial_log(database, max_waiting=3, linger=0.3)
    answers = await asyncio.gather(*(client.get("/v1/requests") for _ in range(10)))
    codes = sorted(a.status_code for a in answers)
    assert codes.count(401) >= 1 and codes.count(503) >= 1 and set(codes) == {401, 503}
    turned = [a for a in answers if a.status_code == 503]
    assert all(a.headers["retry-after"] == "1" for a in turned)
    assert all(a.json()["code"] == "denial_log_full" for a in turned)
    async with database.read_session() as session:
        count = await session.execute(
            select(func.count()).where(AuditLog.event_type == "access_denied")
        )
    assert count.scalar_one() == codes.count(401) == log.recorded
    assert log.turned_away == codes.count(503)
