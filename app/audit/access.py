"""Audited access: every read, export, verification and checkpoint leaves one record.

:class:`AuditAccess` is how the CLI and the API reach the audit trail. Each call writes
exactly one ``audit_accessed`` event on the system chain, saying who (``actor``), what
(``action``: query, trail, export, verify, checkpoint), with which ``filters``, how many
rows came back and in which ``format``; :meth:`AuditAccess.denied` records a refused
attempt. Reads run in read transactions and their record is written afterwards in its own
short write transaction, so a long export never holds SQLite's write lock; an export that
fails part-way still records what it had sent (``filters.aborted``).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from typing import Any, Literal, TextIO

import structlog

from app.audit.checkpoint import Checkpoint, CheckpointSet, create_checkpoint, find_checkpoint
from app.audit.events import AuditAccessed
from app.audit.exceptions import InvalidFilter
from app.audit.export import RAW_FORMATS, check_format, write_export, write_raw_export
from app.audit.parallel import verify_database as verify_database_parallel
from app.audit.problems import Report
from app.audit.query import (
    AuditFilter,
    AuditPage,
    query_page,
    stream_raw,
    stream_records,
    trail_records,
)
from app.audit.records import AuditRecord
from app.audit.system import SystemEntry, append_system
from app.database import Database
from app.database.types import utcnow

log = structlog.get_logger(__name__)


async def record_access(
    database: Database,
    actor: str,
    action: str,
    filters: dict[str, Any],
    row_count: int,
    fmt: str | None = None,
    *,
    denied: bool = False,
    outcome: Literal["ok", "failed"] | None = None,
    problems: int | None = None,
) -> None:
    """Append one ``audit_accessed`` event to the system chain in its own transaction."""
    event = AuditAccessed(
        action=action,
        filters=filters,
        row_count=row_count,
        format=fmt,
        denied=denied,
        outcome=outcome,
        problems=problems,
    )
    async with database.session() as session:
        await append_system(session, [SystemEntry(event, actor=actor)], utcnow())


def _require_actor(actor: str) -> str:
    if not actor or not actor.strip():
        raise InvalidFilter("must name who is asking", field="accessed_by")
    return actor.strip()


#: How many exported records between two progress reports.
PROGRESS_EVERY = 1000


class AuditAccess:
    """The audited way to read, export, verify and checkpoint the trail, as ``actor``."""

    def __init__(self, database: Database, actor: str) -> None:
        self.database = database
        self.actor = _require_actor(actor)

    async def _record(
        self,
        action: str,
        filters: dict[str, Any],
        row_count: int,
        fmt: str | None = None,
        *,
        denied: bool = False,
    ) -> None:
        await record_access(
            self.database, self.actor, action, filters, row_count, fmt, denied=denied
        )

    async def query(
        self,
        audit_filter: AuditFilter,
        *,
        cursor: str | None = None,
        limit: int = 100,
        newest_first: bool = False,
        fmt: str = "json",
    ) -> AuditPage:
        """One keyset page (see :func:`app.audit.query.query_page`), recorded as ``query``."""
        async with self.database.read_session() as session:
            page = await query_page(
                session, audit_filter, cursor=cursor, limit=limit, newest_first=newest_first
            )
        filters = {**audit_filter.to_json(), "limit": limit}
        if cursor:
            filters["cursor"] = cursor
        if newest_first:
            filters["newest_first"] = True
        await self._record("query", filters, len(page.items), fmt)
        return page

    async def trail(self, request_id: uuid.UUID, *, fmt: str = "json") -> list[AuditRecord]:
        """One request's timeline, recorded as ``trail``."""
        async with self.database.read_session() as session:
            records = await trail_records(session, request_id)
        await self._record("trail", {"request_id": str(request_id)}, len(records), fmt)
        return records

    async def export(
        self,
        audit_filter: AuditFilter,
        out: TextIO,
        fmt: str,
        *,
        newest_first: bool = False,
        progress: Callable[[int, int | None], None] | None = None,
    ) -> int:
        """Stream every matching record to ``out`` in constant memory, recorded as ``export``.

        ``progress(records_sent, None)`` is called after every page of records (JSON, JSONL
        and CSV, written from raw rows) or every :data:`PROGRESS_EVERY` records (FHIR).
        """
        check_format(fmt)
        sent = 0

        async def pages() -> Any:
            async with self.database.read_session() as session:
                async for rows in stream_raw(session, audit_filter, newest_first=newest_first):
                    yield rows

        def at(count: int) -> None:
            nonlocal sent
            sent = count
            if progress is not None:
                progress(count, None)

        async def counted() -> Any:
            nonlocal sent
            async with self.database.read_session() as session:
                async for record in stream_records(
                    session, audit_filter, newest_first=newest_first
                ):
                    sent += 1
                    if progress is not None and sent % PROGRESS_EVERY == 0:
                        progress(sent, None)
                    yield record

        filters = audit_filter.to_json()
        try:
            if fmt in RAW_FORMATS:
                await write_raw_export(pages(), fmt, out, at)
            else:
                await write_export(counted(), fmt, out)
        except BaseException:
            if sent:
                with contextlib.suppress(Exception):
                    await self._record("export", {**filters, "aborted": True}, sent, fmt)
            raise
        await self._record("export", filters, sent, fmt)
        return sent

    async def verify(
        self,
        request_id: uuid.UUID | None = None,
        checkpoint: CheckpointSet | str | None = None,
        *,
        hmac_key: str | None = None,
        allow_unsigned: bool = False,
        progress: Callable[[int, int | None], None] | None = None,
        workers: int | None = None,
    ) -> Report:
        """Verify the ledger (or one request), recorded as ``verify`` with its outcome.

        Every chain is held to the newest stored checkpoint (checked first: its chain of
        checkpoints, its digest and, given ``hmac_key``, its signature); ``checkpoint`` (a
        loaded file or folder, or the digest of a stored checkpoint) adds its heads too.
        ``workers`` > 1 verifies partitions in that many processes (PostgreSQL; see
        :func:`app.audit.parallel.verify_database`).
        """
        given: CheckpointSet | None = None
        if isinstance(checkpoint, str):
            async with self.database.read_session() as session:
                found = await find_checkpoint(session, checkpoint)
            given = CheckpointSet([found], found.full_heads() or {}, f"stored {found.label()}")
        else:
            given = checkpoint
        report = await verify_database_parallel(
            self.database,
            request_id,
            given=given,
            hmac_key=hmac_key,
            allow_unsigned=allow_unsigned,
            progress=progress,
            workers=workers,
        )
        filters: dict[str, Any] = {}
        if request_id is not None:
            filters["request_id"] = str(request_id)
        if report.checkpoint is not None:
            filters["checkpoint"] = report.checkpoint["digest"]
        if given is not None:
            filters["checkpoint_given"] = given.newest.digest
        await record_access(
            self.database,
            self.actor,
            "verify",
            filters,
            report.rows,
            outcome="ok" if report.ok else "failed",
            problems=len(report.problems),
        )
        log.info(
            "audit_verified",
            rows=report.rows,
            chains=report.chains,
            problems=len(report.problems),
            checkpoint=report.checkpoint["seq"] if report.checkpoint else None,
        )
        return report

    async def checkpoint(self, hmac_key: str | None = None) -> Checkpoint:
        """Record the next checkpoint (signed when ``hmac_key`` is given); return its file form.

        The checkpoint row and its ``audit_accessed`` record commit together; the system
        chain's head in the checkpoint is the one before that record.
        """
        async with self.database.session() as session:
            checkpoint = await create_checkpoint(session, self.actor, utcnow(), hmac_key)
            event = AuditAccessed(
                action="checkpoint",
                filters={"checkpoint": checkpoint.digest},
                row_count=checkpoint.chain_count or 0,
                format=None,
            )
            await append_system(session, [SystemEntry(event, actor=self.actor)], utcnow())
        log.info(
            "audit_checkpoint_created",
            seq=checkpoint.seq,
            digest=checkpoint.digest,
            chains=checkpoint.chain_count,
            changed=len(checkpoint.heads),
        )
        return checkpoint

    async def denied(self, action: str, filters: dict[str, Any], fmt: str | None = None) -> None:
        """Record that ``actor`` was refused ``action`` (row count 0, ``denied=True``)."""
        await self._record(action, filters, 0, fmt, denied=True)
