"""Who may read what, and the audit records of reads and refusals.

The rules, the same through the HTTP API, the CLI and the web console:

* transcript text and audio — the request's submitter (the uploader), reviewers, admins;
* recording metadata (status, sizes, digests, confidence, versions) — also auditors;
* research deliveries — the request's submitter, reviewers, admins;
* a submitter asking for someone else's recording or request gets the answer a missing
  one gets (404, :class:`~app.orchestrator.exceptions.NotFound`), and the refusal is
  recorded as ``access_denied`` with status 404; a role that may not read something at
  all gets 403 (:class:`~app.results.exceptions.Forbidden`), recorded the same way.

Records go to the ``system`` chain with the request's id (a request's own chain belongs to
its lease holder; see :mod:`app.audit.system`), in the transaction that reads the data, so
nothing is handed out unrecorded.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import NoReturn

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.denials import Denial, record_denial
from app.audit.events import AuditEvent
from app.audit.system import SystemEntry, append_system
from app.auth import Origin, Principal, Role
from app.database import Database
from app.database.types import utcnow
from app.orchestrator.exceptions import NotFound
from app.results.exceptions import Forbidden

log = structlog.get_logger(__name__)

#: Roles that may read clinical content (transcript text, audio) and delivery files.
READERS = (Role.SUBMITTER, Role.REVIEWER)
#: Roles that may read recording metadata.
METADATA_READERS = (Role.SUBMITTER, Role.REVIEWER, Role.AUDITOR)


async def record(
    session: AsyncSession, viewer: Principal, events: Sequence[AuditEvent], request_id: uuid.UUID
) -> None:
    """Append ``events`` about ``request_id``, by ``viewer``, in ``session``'s transaction."""
    entries = [SystemEntry(event, actor=viewer.name, request_id=request_id) for event in events]
    await append_system(session, entries, utcnow())


async def refuse(
    database: Database,
    viewer: Principal,
    status: int,
    reason: str,
    *,
    operation: str,
    target: str,
    request_id: uuid.UUID | None = None,
) -> None:
    """Record an ``access_denied`` event for ``viewer`` (one transaction of its own).

    ``request_id`` (when the request exists) puts the attempt on that request's trail.
    """
    origin = viewer.origin or Origin("CALL", operation, target)
    denial = Denial(
        actor=viewer.name,
        method=origin.method,
        route=origin.route,
        path=origin.path,
        status=status,
        reason=reason,
        role=viewer.role.value,
        key_prefix=viewer.key_prefix,
        request_id=request_id,
    )
    await record_denial(database, denial)
    log.warning("access_denied", actor=viewer.name, route=origin.route, status=status, why=reason)


async def require_role(
    database: Database,
    viewer: Principal,
    roles: Sequence[Role],
    *,
    what: str,
    operation: str,
    target: str,
) -> None:
    """Refuse (recorded 403) unless ``viewer`` has one of ``roles`` or is an admin."""
    if viewer.has(*roles):
        return
    allowed = ", ".join(r.value for r in (*roles, Role.ADMIN))
    reason = f"role {viewer.role.value} may not read {what} (allowed: {allowed})"
    await refuse(database, viewer, 403, reason, operation=operation, target=target)
    raise Forbidden(reason)


async def hide_unless_owner(
    database: Database,
    viewer: Principal,
    submitted_by: str,
    *,
    missing: str,
    operation: str,
    target: str,
    request_id: uuid.UUID,
) -> None:
    """Answer as if it did not exist (recorded 404) when ``viewer`` is another submitter."""
    if viewer.owns(submitted_by):
        return
    await refuse(
        database,
        viewer,
        404,
        "belongs to another submitter",
        operation=operation,
        target=target,
        request_id=request_id,
    )
    raise NotFound(missing)


def not_found(missing: str) -> NoReturn:
    """Raise the 404 a missing object gets (the same words as a hidden one)."""
    raise NotFound(missing)


__all__ = [
    "METADATA_READERS",
    "READERS",
    "hide_unless_owner",
    "not_found",
    "record",
    "refuse",
    "require_role",
]
