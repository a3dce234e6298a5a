"""The deliveries service (``app.results.deliveries``) on real databases with real agents:
the manifest, files matching their SHA-256, role rules, reads recorded, retention."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from app.agents.research import seed_warehouse
from app.audit.events import AccessDenied, DataAccessed
from app.database import Database
from app.database.models import Request
from app.database.types import utcnow
from app.ops.retention import purge
from app.orchestrator.exceptions import NotFound
from app.results import FileCorrupt, Forbidden, Gone, NotReady
from tests.support.checks import assert_ledger_consistent
from tests.support.results import (
    AUDITOR_VIEWER,
    OTHER_VIEWER,
    OWNER,
    OWNER_VIEWER,
    REVIEWER_VIEWER,
    Results,
    audit_events,
    make_results,
    results_settings,
)


@pytest.fixture
async def results(database: Database, tmp_path: Path) -> AsyncIterator[Results]:
    await seed_warehouse(database, 300, seed=42)
    yield make_results(database, results_settings(tmp_path))
    await assert_ledger_consistent(database)


@pytest.fixture
async def delivered(results: Results) -> uuid.UUID:
    return await results.research()


async def test_every_file_of_the_manifest_downloads_with_its_sha256_and_is_recorded(
    results: Results, delivered: uuid.UUID
) -> None:
    deliveries = results.services.deliveries
    manifest = await deliveries.manifest(OWNER_VIEWER, delivered)
    names = [f.name for f in manifest.files]
    assert "data_dictionary.csv" in names and len(names) >= 2
    assert manifest.row_count == sum(
        f.rows for f in manifest.files if f.name != "data_dictionary.csv"
    )
    assert manifest.phi_level == "deidentified"
    assert {e.file for e in manifest.data_dictionary} <= set(names)
    assert all(f.url == f"/v1/requests/{delivered}/delivery/{f.name}" for f in manifest.files)

    for listed in manifest.files:
        opened = await deliveries.open_file(REVIEWER_VIEWER, delivered, listed.name)
        data = await opened.read_all()
        assert hashlib.sha256(data).hexdigest() == listed.sha256 == opened.sha256
        assert len(data) == listed.bytes and not opened.range.partial
    whole = await deliveries.open_file(OWNER_VIEWER, delivered, "manifest.json")
    assert hashlib.sha256(await whole.read_all()).hexdigest() == manifest.manifest_sha256

    reads = await audit_events(results.database, "data_accessed")
    assert [(actor, rid) for actor, rid, _ in reads] == [
        *[("dr-review", delivered)] * len(names),
        (OWNER, delivered),
    ]
    files = [e for _, _, e in reads]
    assert all(isinstance(e, DataAccessed) and e.channel == "python" for e in files)
    assert [e.file for e in files] == [*names, "manifest.json"]  # type: ignore[attr-defined]


async def test_a_range_of_a_file_is_served_and_recorded_as_such(
    results: Results, delivered: uuid.UUID
) -> None:
    deliveries = results.services.deliveries
    first = (await deliveries.manifest(OWNER_VIEWER, delivered)).files[0]
    opened = await deliveries.open_file(OWNER_VIEWER, delivered, first.name, "bytes=0-9")
    assert len(await opened.read_all()) == 10
    [(_, _, event)] = await audit_events(results.database, "data_accessed")
    assert isinstance(event, DataAccessed)
    assert (event.bytes_sent, event.byte_range) == (10, f"0-9/{first.bytes}")


async def test_deliveries_are_for_their_submitter_reviewers_and_admins_only(
    results: Results, delivered: uuid.UUID
) -> None:
    deliveries = results.services.deliveries
    missing = uuid.uuid4()
    with pytest.raises(NotFound) as hidden:
        await deliveries.manifest(OTHER_VIEWER, delivered)
    with pytest.raises(NotFound) as absent:
        await deliveries.manifest(OTHER_VIEWER, missing)
    assert (hidden.value.message, absent.value.message) == (
        f"no request {delivered}",
        f"no request {missing}",
    )
    with pytest.raises(NotFound):
        await deliveries.open_file(OTHER_VIEWER, delivered, "data_dictionary.csv")
    with pytest.raises(Forbidden):
        await deliveries.manifest(AUDITOR_VIEWER, delivered)

    denied = [(rid, e) for _, rid, e in await audit_events(results.database, "access_denied")]
    assert [(rid, e.status) for rid, e in denied] == [  # type: ignore[attr-defined]
        (delivered, 404),
        (delivered, 404),
        (None, 403),
    ]
    assert all(isinstance(e, AccessDenied) for _, e in denied)
    assert await audit_events(results.database, "data_accessed") == []


async def test_unknown_files_and_requests_without_a_delivery(
    results: Results, delivered: uuid.UUID
) -> None:
    deliveries = results.services.deliveries
    for name in ("../../etc/passwd", "staging", "nothing.csv"):
        with pytest.raises(NotFound):
            await deliveries.open_file(OWNER_VIEWER, delivered, name)
    transcription = await results.submit_recording()
    with pytest.raises(NotReady) as none:
        await deliveries.manifest(OWNER_VIEWER, transcription)
    assert "research requests deliver files" in none.value.message


async def test_a_file_changed_on_disk_is_refused(results: Results, delivered: uuid.UUID) -> None:
    deliveries = results.services.deliveries
    first = (await deliveries.manifest(OWNER_VIEWER, delivered)).files[0]
    path = results.services.settings.deliveries_path / str(delivered) / first.name
    path.write_bytes(path.read_bytes() + b"tampered\n")
    with pytest.raises(FileCorrupt):
        await deliveries.open_file(OWNER_VIEWER, delivered, first.name)
    assert await audit_events(results.database, "data_accessed") == []


async def test_a_purged_delivery_answers_gone_with_when_and_why(
    results: Results, delivered: uuid.UUID, database: Database
) -> None:
    async with database.session() as session:
        await session.execute(
            update(Request)
            .where(Request.id == delivered)
            .values(completed_at=utcnow() - timedelta(days=200))
        )
    report = await purge(
        database, results.services.settings, actor="ops:retention", categories=["delivery"]
    )
    assert report.count("delivery") == 1
    deliveries = results.services.deliveries
    for call in (
        deliveries.manifest(OWNER_VIEWER, delivered),
        deliveries.open_file(OWNER_VIEWER, delivered, "data_dictionary.csv"),
    ):
        with pytest.raises(Gone) as gone:
            await call
        assert gone.value.purged_at is not None
        assert "kept 180 days" in gone.value.message and "ops:retention" in gone.value.message
