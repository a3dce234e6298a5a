"""Retention: purge finished requests' bodies and files past their age; legal holds block it.

What goes, per category, once a request has been finished (``completed_at``: completed,
failed or cancelled) for longer than the category's age (``0`` days: never):

* ``payload`` (``RETENTION_PAYLOAD_DAYS``) — ``requests.payload`` becomes ``{}``,
  ``requests.result`` and every ``agent_executions.output`` become null, and a
  transcription's ``recordings.transcript`` and the text of every one of its
  ``transcript_versions`` are cleared (their digests stay);
* ``audio`` (``RETENTION_AUDIO_DAYS``) — the recording's file under ``AUDIO_DIR``;
* ``delivery`` (``RETENTION_DELIVERY_DAYS``) — the request's folder under ``DELIVERY_DIR``;
* ``staging`` (``RETENTION_STAGING_HOURS``) — staging files a crash left behind under
  ``DELIVERY_DIR/<id>/staging`` for a request that finished (or that does not exist), when
  nothing in the folder changed for that long (recorded as ``files_removed``, ``stale``).

What stays, always: the request row with its ``payload_digest``, every digest
(``audio_sha256``, ``manifest_sha256``), every state transition and execution row, and the
whole audit trail — audit rows are append-only and kept ``AUDIT_RETENTION_YEARS`` (6 by
default); this module never deletes them and only reports how many are past that age.

Each purged (request, category) appends one ``data_purged`` event; each hold and release
one ``legal_hold_placed`` / ``legal_hold_released`` event. They go to the ``system`` chain
(with the request id): a request's own chain is written by its lease holder only, and a
hold may be placed on a running request. A hold is checked under the row lock in the
transaction that purges, so a hold placed meanwhile always wins. Placing or releasing a
hold does not bump ``requests.version``: it must never fence out a running worker.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import structlog
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.base import remove_files
from app.audit.events import DataPurged, LegalHoldPlaced, LegalHoldReleased
from app.audit.system import SystemEntry, append_system
from app.config import Settings, get_settings
from app.database import Database
from app.database.models import (
    AgentExecution,
    AuditLog,
    DataDelivery,
    Recording,
    Request,
    TranscriptVersion,
)
from app.database.types import utcnow
from app.ops.exceptions import OpsError, RetentionRefused
from app.orchestrator.cleanup import record_removed
from app.orchestrator.states import TERMINAL

log = structlog.get_logger(__name__)

Category = Literal["payload", "audio", "delivery", "staging"]
CATEGORIES: tuple[Category, ...] = ("payload", "audio", "delivery", "staging")
_FINISHED = tuple(str(s) for s in TERMINAL)
_BATCH = 200
_MAX_REASON = 2000


@dataclass
class PurgeReport:
    """What a purge did (or, with ``dry_run``, would do)."""

    dry_run: bool
    cutoffs: dict[str, datetime]
    purged: dict[str, list[uuid.UUID]] = field(default_factory=dict)
    held: dict[str, list[uuid.UUID]] = field(default_factory=dict)
    skipped: list[tuple[uuid.UUID, str, str]] = field(default_factory=list)
    files_deleted: int = 0
    bytes_deleted: int = 0
    audit_retention_years: int = 6
    audit_rows_past_retention: int = 0

    def count(self, category: str) -> int:
        """How many requests were (or would be) purged in ``category``."""
        return len(self.purged.get(category, []))


@dataclass(frozen=True)
class Hold:
    """A request's legal hold as placed or released."""

    request_id: uuid.UUID
    held_at: datetime
    held_by: str
    reason: str
    released_at: datetime | None = None


# --------------------------------------------------------------------------- holds


def _require_reason(reason: str | None, *, optional: bool = False) -> str | None:
    if reason is None and optional:
        return None
    if not isinstance(reason, str) or not reason.strip():
        raise RetentionRefused("--reason: must say why (a case or matter reference)")
    if len(reason) > _MAX_REASON:
        raise RetentionRefused(f"--reason: must be at most {_MAX_REASON} characters")
    return reason.strip()


def _require_actor(actor: str) -> str:
    if not isinstance(actor, str) or not actor.strip() or len(actor) > 128:
        raise RetentionRefused("--as: must name who acts (at most 128 characters)")
    return actor.strip()


async def _locked_request(session: AsyncSession, request_id: uuid.UUID) -> Any:
    row = (
        await session.execute(
            select(
                Request.id,
                Request.legal_hold_at,
                Request.legal_hold_by,
                Request.legal_hold_reason,
            )
            .where(Request.id == request_id)
            .with_for_update()
        )
    ).one_or_none()
    if row is None:
        raise RetentionRefused(f"REQUEST_ID: no request {request_id}")
    return row


async def place_hold(database: Database, request_id: uuid.UUID, reason: str, actor: str) -> Hold:
    """Put ``request_id`` on legal hold; refused when it already is (nothing changes)."""
    clean = _require_reason(reason)
    assert clean is not None
    actor = _require_actor(actor)
    now = utcnow()
    async with database.session() as session:
        row = await _locked_request(session, request_id)
        if row.legal_hold_at is not None:
            raise RetentionRefused(
                f"request {request_id} is already on legal hold since "
                f"{row.legal_hold_at.isoformat()} by {row.legal_hold_by} "
                f"({row.legal_hold_reason}); release it first"
            )
        # No version bump: a hold must never fence out the worker holding the lease.
        await session.execute(
            update(Request)
            .where(Request.id == request_id)
            .values(legal_hold_at=now, legal_hold_by=actor, legal_hold_reason=clean)
        )
        await append_system(
            session,
            [SystemEntry(LegalHoldPlaced(reason=clean), actor=actor, request_id=request_id)],
            now,
        )
    log.info("legal_hold_placed", request_id=str(request_id), held_by=actor)
    return Hold(request_id, now, actor, clean)


async def release_hold(
    database: Database, request_id: uuid.UUID, actor: str, reason: str | None = None
) -> Hold:
    """Release ``request_id``'s legal hold; refused when there is none (nothing changes)."""
    note = _require_reason(reason, optional=True)
    actor = _require_actor(actor)
    now = utcnow()
    async with database.session() as session:
        row = await _locked_request(session, request_id)
        if row.legal_hold_at is None:
            raise RetentionRefused(f"request {request_id} is not on legal hold")
        await session.execute(
            update(Request)
            .where(Request.id == request_id)
            .values(legal_hold_at=None, legal_hold_by=None, legal_hold_reason=None)
        )
        event = LegalHoldReleased(held_since=row.legal_hold_at, reason=note)
        await append_system(session, [SystemEntry(event, actor=actor, request_id=request_id)], now)
    log.info("legal_hold_released", request_id=str(request_id), released_by=actor)
    return Hold(request_id, row.legal_hold_at, row.legal_hold_by, row.legal_hold_reason, now)


# --------------------------------------------------------------------------- purge


def _ages(settings: Settings) -> dict[Category, float]:
    """Each category's retention age in days (0: never)."""
    return {
        "payload": settings.retention_payload_days,
        "audio": settings.retention_audio_days,
        "delivery": settings.retention_delivery_days,
        "staging": settings.retention_staging_hours / 24,
    }


async def purge(
    database: Database,
    settings: Settings | None = None,
    *,
    actor: str,
    dry_run: bool = False,
    categories: Sequence[str] | None = None,
) -> PurgeReport:
    """Purge every category whose age is set; with ``dry_run`` only report what would go."""
    settings = settings or get_settings()
    actor = _require_actor(actor)
    chosen = tuple(categories or CATEGORIES)
    for name in chosen:
        if name not in CATEGORIES:
            raise RetentionRefused(f"--category: {name!r} is not one of {', '.join(CATEGORIES)}")
    now = utcnow()
    ages = {c: d for c, d in _ages(settings).items() if d > 0 and c in chosen}
    report = PurgeReport(
        dry_run=dry_run,
        cutoffs={c: now - timedelta(days=d) for c, d in ages.items()},
        audit_retention_years=settings.audit_retention_years,
    )
    for category, days in ages.items():
        cutoff = report.cutoffs[category]
        report.purged[category] = []
        if category == "staging":
            await _purge_stale_staging(database, settings, report, cutoff, actor)
            continue
        report.held[category] = await _held(database, category, cutoff)
        if category == "payload":
            await _purge_payloads(database, report, cutoff, int(days), actor)
        else:
            await _purge_files(database, settings, report, category, cutoff, int(days), actor)
    report.audit_rows_past_retention = await _audit_rows_before(
        database, _years_before(now, settings.audit_retention_years)
    )
    log.info(
        "retention_purged" if not dry_run else "retention_planned",
        **{f"{c}_purged": report.count(c) for c in ages},
        held=sum(len(v) for v in report.held.values()),
        files_deleted=report.files_deleted,
        bytes_deleted=report.bytes_deleted,
    )
    return report


def _years_before(moment: datetime, years: int) -> datetime:
    try:
        return moment.replace(year=moment.year - years)
    except ValueError:  # 29 February in a year that has none
        return moment.replace(year=moment.year - years, day=28)


def _finished_before(cutoff: datetime) -> Any:
    return and_(
        Request.state.in_(_FINISHED),
        Request.completed_at.is_not(None),
        Request.completed_at < cutoff,
    )


def _pending_marker(category: Category) -> Any:
    if category == "payload":
        return Request.purged_at.is_(None)
    if category == "audio":
        return Recording.audio_purged_at.is_(None)
    return DataDelivery.purged_at.is_(None)


def _joined(query: Any, category: Category) -> Any:
    if category == "audio":
        return query.join(Recording, Recording.request_id == Request.id)
    if category == "delivery":
        return query.join(DataDelivery, DataDelivery.request_id == Request.id)
    return query


async def _held(database: Database, category: Category, cutoff: datetime) -> list[uuid.UUID]:
    """Requests past the cutoff, not yet purged in ``category``, kept by a legal hold."""
    query = _joined(select(Request.id).distinct(), category).where(
        _finished_before(cutoff), _pending_marker(category), Request.legal_hold_at.is_not(None)
    )
    async with database.read_session() as session:
        return list((await session.execute(query)).scalars())


async def _audit_rows_before(database: Database, moment: datetime) -> int:
    async with database.read_session() as session:
        query = select(func.count()).select_from(AuditLog).where(AuditLog.occurred_at < moment)
        return int((await session.execute(query)).scalar_one())


async def _purge_payloads(
    database: Database, report: PurgeReport, cutoff: datetime, days: int, actor: str
) -> None:
    """Keyset walk over ``ix_requests_retention``; one transaction per batch."""
    after: tuple[datetime, uuid.UUID] | None = None
    eligible = and_(
        _finished_before(cutoff), Request.purged_at.is_(None), Request.legal_hold_at.is_(None)
    )
    while True:
        query = select(Request.id, Request.completed_at).where(eligible)
        if after is not None:
            query = query.where(
                or_(
                    Request.completed_at > after[0],
                    and_(Request.completed_at == after[0], Request.id > after[1]),
                )
            )
        query = query.order_by(Request.completed_at, Request.id).limit(_BATCH)
        if report.dry_run:
            async with database.read_session() as session:
                rows = (await session.execute(query)).all()
            report.purged["payload"].extend(r.id for r in rows)
        else:
            async with database.session() as session:
                # Re-read under the row locks: a hold placed since the plan wins.
                rows = (await session.execute(query.with_for_update())).all()
                ids = [r.id for r in rows]
                if ids:
                    await _clear_payloads(session, ids, report, rows, days, actor)
        if len(rows) < _BATCH:
            return
        after = (rows[-1].completed_at, rows[-1].id)


async def _clear_payloads(
    session: AsyncSession,
    ids: list[uuid.UUID],
    report: PurgeReport,
    rows: Sequence[Any],
    days: int,
    actor: str,
) -> None:
    now = utcnow()
    await session.execute(
        update(Request)
        .where(Request.id.in_(ids))
        .values(
            payload={},
            result=None,
            purged_at=now,
            version=Request.version + 1,
            updated_at=now,
        )
    )
    await session.execute(
        update(AgentExecution).where(AgentExecution.request_id.in_(ids)).values(output=None)
    )
    await session.execute(
        update(Recording).where(Recording.request_id.in_(ids)).values(transcript=None)
    )
    await session.execute(
        update(TranscriptVersion)
        .where(
            TranscriptVersion.recording_id.in_(
                select(Recording.id).where(Recording.request_id.in_(ids))
            )
        )
        .values(text=None)
    )
    entries = [
        SystemEntry(
            DataPurged(category="payload", finished_at=r.completed_at, retention_days=days),
            actor=actor,
            request_id=r.id,
        )
        for r in rows
    ]
    await append_system(session, entries, now)
    report.purged["payload"].extend(ids)


def _inside(raw: str, root: Path) -> Path | None:
    """``raw`` resolved (relative to ``root``), or None when it points outside ``root``."""
    root = root.resolve()
    candidate = Path(raw)
    path = (candidate if candidate.is_absolute() else root / candidate).resolve()
    return path if path.is_relative_to(root) and path != root else None


def _measure(path: Path) -> tuple[int, int]:
    """Files and bytes at ``path`` (a file or a folder; nothing when it is gone)."""
    if path.is_file():
        return 1, path.stat().st_size
    if path.is_dir():
        files = [p for p in path.rglob("*") if p.is_file()]
        return len(files), sum(p.stat().st_size for p in files)
    return 0, 0


def _delete(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


async def _purge_files(
    database: Database,
    settings: Settings,
    report: PurgeReport,
    category: Category,
    cutoff: datetime,
    days: int,
    actor: str,
) -> None:
    """One request per transaction: its marker, its event and its files go together."""
    if category == "audio":
        root = settings.audio_path
        columns: tuple[Any, ...] = (
            Recording.id.label("row_id"),
            Recording.audio_file_path.label("location"),
            Recording.audio_sha256.label("sha256"),
        )
    else:
        root = settings.deliveries_path
        columns = (
            DataDelivery.id.label("row_id"),
            DataDelivery.folder.label("location"),
            DataDelivery.manifest_sha256.label("sha256"),
        )
    eligible = and_(
        _finished_before(cutoff), _pending_marker(category), Request.legal_hold_at.is_(None)
    )
    plan_query = (
        _joined(select(Request.id, Request.completed_at, *columns), category)
        .where(eligible)
        .order_by(Request.completed_at, Request.id)
    )
    async with database.read_session() as session:
        plan = (await session.execute(plan_query)).all()
    for item in plan:
        path = _inside(item.location, root)
        if path is None:
            report.skipped.append((item.id, category, f"{item.location} is outside {root}"))
            continue
        if category == "audio" and await _audio_still_needed(database, item, cutoff):
            report.skipped.append((item.id, category, "the file is shared with a kept request"))
            continue
        if report.dry_run:
            files, size = _measure(path)
            report.purged[category].append(item.id)
            report.files_deleted += files
            report.bytes_deleted += size
            continue
        async with database.session() as session:
            locked = (
                await session.execute(
                    _joined(select(Request.id), category)
                    .where(eligible, columns[0] == item.row_id)
                    .with_for_update(of=Request)
                )
            ).one_or_none()
            if locked is None:  # held, or purged by someone else, since the plan
                continue
            now = utcnow()
            marker = (
                update(Recording).values(audio_purged_at=now)
                if category == "audio"
                else update(DataDelivery).values(purged_at=now)
            )
            await session.execute(marker.where(columns[0] == item.row_id))
            files, size = _measure(path)
            event = DataPurged(
                category=category,
                finished_at=item.completed_at,
                retention_days=days,
                files_deleted=files,
                bytes_deleted=size,
                sha256=item.sha256,
            )
            await append_system(session, [SystemEntry(event, actor=actor, request_id=item.id)], now)
            # Last, so that a failure to delete rolls the marker and the event back.
            try:
                _delete(path)
            except OSError as exc:
                raise OpsError(
                    f"cannot delete {path} ({exc.strerror or exc}); nothing was recorded "
                    f"for request {item.id}"
                ) from exc
        report.purged[category].append(item.id)
        report.files_deleted += files
        report.bytes_deleted += size


async def _audio_still_needed(database: Database, item: Any, cutoff: datetime) -> bool:
    """True when another recording that is not being purged points at the same file."""
    keep = or_(
        Request.state.not_in(_FINISHED),
        Request.completed_at.is_(None),
        Request.completed_at >= cutoff,
        Request.legal_hold_at.is_not(None),
    )
    query = (
        select(func.count())
        .select_from(Recording)
        .join(Request, Request.id == Recording.request_id)
        .where(
            Recording.audio_file_path == item.location,
            Recording.id != item.row_id,
            Recording.audio_purged_at.is_(None),
            keep,
        )
    )
    async with database.read_session() as session:
        return int((await session.execute(query)).scalar_one()) > 0


def _stale_staging(root: Path, cutoff: datetime) -> list[tuple[uuid.UUID, Path]]:
    """Staging folders under ``root`` in which nothing changed since ``cutoff``."""
    found = []
    for folder in sorted(root.glob("*/staging")) if root.is_dir() else []:
        try:
            request_id = uuid.UUID(folder.parent.name)
        except ValueError:
            continue
        paths = [folder, *folder.rglob("*")]
        newest = max(p.stat().st_mtime for p in paths)
        if folder.is_dir() and newest < cutoff.timestamp():
            found.append((request_id, folder))
    return found


async def _purge_stale_staging(
    database: Database, settings: Settings, report: PurgeReport, cutoff: datetime, actor: str
) -> None:
    """Remove staging a crash left for finished or unknown requests; one event per request.

    A request still pending, running, waiting for a person, or under a legal hold keeps its
    staging (its step may still read it), and so does one whose lease is live.
    """
    root = settings.deliveries_path
    for request_id, folder in _stale_staging(root, cutoff):
        async with database.session() as session:
            row = (
                await session.execute(
                    select(Request.state, Request.legal_hold_at, Request.lease_expires_at)
                    .where(Request.id == request_id)
                    .with_for_update()
                )
            ).one_or_none()
            if row is not None:
                lease_live = row.lease_expires_at is not None and row.lease_expires_at > utcnow()
                if row.state not in _FINISHED or row.legal_hold_at is not None or lease_live:
                    continue
            if report.dry_run:
                files, size = _measure(folder)
            else:
                removed = remove_files(folder.parent, [p for p in folder.rglob("*") if p.is_file()])
                shutil.rmtree(folder, ignore_errors=True)
                files, size = len(removed), sum(f.bytes for f in removed)
                if removed:
                    await record_removed(
                        session,
                        request_id if row is not None else None,
                        "stale",
                        {"staging": removed},
                        actor,
                        utcnow(),
                    )
        report.purged["staging"].append(request_id)
        report.files_deleted += files
        report.bytes_deleted += size
