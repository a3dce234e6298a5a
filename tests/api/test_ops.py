"""``/healthz``, ``/readyz`` (through a real outage and back) and ``/metrics``."""

from __future__ import annotations

import os
from pathlib import Path

import asyncpg
import httpx

from app.bootstrap import Services
from app.database import Database
from tests.api.conftest import bearer, research_body, run_workers_until_idle
from tests.databases import PG_ADMIN_URL


async def test_healthz_needs_no_key(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200 and response.json()["status"] == "ok"


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def test_readyz_is_503_while_the_database_is_unreachable_and_recovers(
    client: httpx.AsyncClient, database: Database, backend: str
) -> None:
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["revision"]
    name = str(database.url.database)
    if backend == "postgresql":
        # Refuse new connections to this database and cut the ones it has.
        await _admin(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        await _admin(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        )
        restore = f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true'
    else:
        # The database file goes away (an unmounted volume): move it and its WAL aside.
        moved = [(Path(name + s), Path(name + s + ".away")) for s in ("", "-wal", "-shm")]
        for source, target in moved:
            if source.exists():
                os.replace(source, target)
    try:
        down = await client.get("/readyz")
        assert down.status_code == 503, down.text
        assert down.json()["status"] == "unavailable"
        assert down.json()["reason"] == "database unreachable"  # no host or path
    finally:
        if backend == "postgresql":
            await _admin(restore)
        else:
            for source, target in moved:
                if target.exists():
                    os.replace(target, source)
    back = await client.get("/readyz")
    assert back.status_code == 200, back.text


async def test_readyz_is_503_when_the_schema_is_behind(
    client: httpx.AsyncClient, database: Database
) -> None:
    async with database.session() as session:
        from sqlalchemy import text

        await session.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    response = await client.get("/readyz")
    assert response.status_code == 503 and "ledgerflow db upgrade" in response.json()["reason"]


async def test_metrics_expose_requests_queue_and_steps(
    client: httpx.AsyncClient, keys: dict[str, str], services: Services
) -> None:
    headers = bearer(keys["submitter"])
    await client.post("/v1/requests", json=research_body(), headers=headers)
    await run_workers_until_idle(services)
    await client.post("/v1/requests", json=research_body(), headers=headers)
    response = await client.get("/metrics")
    assert response.status_code == 200
    text = response.text
    assert 'ledgerflow_requests{state="awaiting_approval"} 1.0' in text
    assert 'ledgerflow_requests{state="pending"} 1.0' in text
    assert "ledgerflow_queue_depth 1.0" in text
    assert 'ledgerflow_step_attempts{agent_id="research.requirements",status="succeeded"}' in text
    assert 'ledgerflow_step_duration_seconds_mean{agent_id="research.requirements"}' in text
    assert "ledgerflow_lease_recoveries 0.0" in text
    assert 'ledgerflow_http_requests_total{method="POST",route="/v1/requests",status="201"}' in text
