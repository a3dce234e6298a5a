"""Fixtures: the API app on a fresh database of each backend, with one client per role."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from app.agents.research import sample_research_payloads
from app.api import create_app, create_client
from app.audit import parse_event
from app.audit.events import AccessDenied
from app.bootstrap import Services, build_services
from app.config import Settings
from app.database import Database
from app.database.models import AuditLog
from app.orchestrator.worker import Worker

#: Client names by role; ``other`` is a second submitter.
CLIENTS = {
    "submitter": ("svc-research", "submitter"),
    "other": ("svc-other", "submitter"),
    "reviewer": ("dr-review", "reviewer"),
    "auditor": ("compliance-1", "auditor"),
    "admin": ("ops-admin", "admin"),
}


@pytest.fixture
def settings(database: Database, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database.url.render_as_string(hide_password=False),
        audio_dir=tmp_path / "audio",
        delivery_dir=tmp_path / "deliveries",
        poll_seconds=0.05,
        metrics_cache_seconds=0,
    )


@pytest.fixture
async def services(settings: Settings, database: Database) -> AsyncIterator[Services]:
    built = build_services(settings, database=database)
    yield built
    if built.warehouse is not database:
        await built.warehouse.dispose()


@pytest.fixture
async def app(services: Services) -> AsyncIterator[FastAPI]:
    api = create_app(services)
    yield api
    await api.state.readiness.close()


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://ledgerflow.test") as c:
        yield c


@pytest.fixture
async def keys(database: Database) -> dict[str, str]:
    """A live API key per role name in :data:`CLIENTS`."""
    out = {}
    for label, (name, role) in CLIENTS.items():
        out[label] = (await create_client(database, name, role)).key
    return out


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def research_body(name: str = "type2_diabetes_adults", **changes: object) -> dict[str, object]:
    payload = {**sample_research_payloads()[name], **changes}
    return {"kind": "research", "payload": payload}


async def denials(database: Database) -> list[tuple[str, AccessDenied]]:
    """(actor, event) of every ``access_denied`` row, oldest first, all on the system chain."""
    async with database.read_session() as session:
        rows = (
            await session.execute(
                select(AuditLog)
                .where(AuditLog.event_type == "access_denied")
                .order_by(AuditLog.occurred_at, AuditLog.seq)
            )
        ).scalars()
        out = []
        for row in rows:
            assert row.chain_key == "system"
            event = parse_event(row.event_type, row.event_data)
            assert isinstance(event, AccessDenied)
            out.append((row.actor, event))
        return out


async def run_workers_until_idle(services: Services) -> None:
    """Run the real workflows in-process until nothing is claimable."""
    worker = Worker(
        services.orchestrator,
        services.agents,
        settings=services.settings,
        concurrency=2,
        warehouse=services.warehouse,
    )
    await worker.run(until_idle=True)
