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
from typing import Any, TextIO

import structlog

from app.audit.checkpoint import Checkpoint, create_checkpoint, find_checkpoint
from app.audit.events import AuditAccessed
from app.audit.exceptions import InvalidFilter
from app.audit.export import check_format, write_export
from app.audit.query import (
    AuditFilter,
    AuditPage,
    query_page,
    snapshot_session,
    stream_records,
    trail_records,
)
from app.audit.records import AuditRecord
from app.audit.system import SystemEntry, append_system
from app.audit.verify import Problem, Report, verify_session
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
) -> None:
    """Append one ``audit_accessed`` event to the system chain in its own transaction."""
    event = AuditAccessed(
        action=action, filters=filters, row_count=row_count, format=fmt, denied=denied
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

        ``progress(records_sent, None)`` is called every :data:`PROGRESS_EVERY` records.
        """
        check_format(fmt)
        sent = 0

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
        checkpoint: Checkpoint | str | None = None,
        *,
        hmac_key: str | None = None,
        progress: Callable[[int, int | None], None] | None = None,
    ) -> Report:
        """Re-compute every chain (or one request's), optionally against a checkpoint.

        ``checkpoint`` is a loaded :class:`Checkpoint` or the digest of a stored one. The
        checkpoint itself is checked first: its digest must match its content and, given
        ``hmac_key``, its signature must match the digest.
        """
        async with snapshot_session(self.database) as session:
            if isinstance(checkpoint, str):
                checkpoint = await find_checkpoint(session, checkpoint)
            problems, notes = check_checkpoint(checkpoint, hmac_key)
            anchors = dict(checkpoint.heads) if checkpoint else None
            report = await verify_session(session, request_id, anchors, progress)
        report.problems[:0] = problems
        report.notes[:0] = notes
        filters: dict[str, Any] = {}
        if request_id is not None:
            filters["request_id"] = str(request_id)
        if checkpoint is not None:
            filters["checkpoint"] = checkpoint.digest
        await self._record("verify", filters, report.rows)
        log.info(
            "audit_verified", rows=report.rows, chains=report.chains, problems=len(report.problems)
        )
        return report

    async def checkpoint(self, hmac_key: str | None = None) -> Checkpoint:
        """Record a checkpoint of every chain head (signed when ``hmac_key`` is given).

        The checkpoint row and its ``audit_accessed`` record commit together; the system
        chain's head in the checkpoint is the one before that record.
        """
        async with self.database.session() as session:
            checkpoint = await create_checkpoint(session, self.actor, utcnow(), hmac_key)
            event = AuditAccessed(
                action="checkpoint",
                filters={"checkpoint": checkpoint.digest},
                row_count=len(checkpoint.heads),
                format=None,
            )
            await append_system(session, [SystemEntry(event, actor=self.actor)], utcnow())
        log.info("audit_checkpoint_created", digest=checkpoint.digest, chains=len(checkpoint.heads))
        return checkpoint

    async def denied(self, action: str, filters: dict[str, Any], fmt: str | None = None) -> None:
        """Record that ``actor`` was refused ``action`` (row count 0, ``denied=True``)."""
        await self._record(action, filters, 0, fmt, denied=True)


def check_checkpoint(
    checkpoint: Checkpoint | None, hmac_key: str | None
) -> tuple[list[Problem], list[str]]:
    """Problems with the checkpoint itself (edited content, bad signature) and notes."""
    if checkpoint is None:
        return [], []
    problems: list[Problem] = []
    notes: list[str] = []
    if checkpoint.computed_digest() != checkpoint.digest:
        problems.append(
            Problem(
                "checkpoint",
                None,
                None,
                "checkpoint_mismatch",
                f"checkpoint {checkpoint.digest[:12]}…: its content does not match its digest",
            )
        )
    if checkpoint.signature is None:
        notes.append("checkpoint is not signed")
    elif hmac_key is None:
        notes.append("checkpoint signature not checked (no AUDIT_HMAC_KEY)")
    elif not checkpoint.signature_ok(hmac_key):
        problems.append(
            Problem(
                "checkpoint",
                None,
                None,
                "checkpoint_mismatch",
                f"checkpoint {checkpoint.digest[:12]}…: signature does not match AUDIT_HMAC_KEY",
            )
        )
    else:
        notes.append("checkpoint signature OK")
    return problems, notes
