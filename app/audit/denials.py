"""Refusals on the record: every 401/403 of the API or the console is an audit event.

A refusal appends ``access_denied`` to the system chain; a refused read of the audit trail
itself also appends ``audit_accessed`` with ``denied: true`` (so the access log of the trail
is complete). Both go in one transaction; if it cannot be written the caller must fail:
a refusal is never left unrecorded.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from app.audit.events import AccessDenied, AuditAccessed, AuditEvent
from app.audit.system import SystemEntry, append_system
from app.database import Database
from app.database.types import utcnow

#: Longest path kept in the record (paths carry identifiers only, never a query string).
MAX_PATH = 512


@dataclass(frozen=True)
class Denial:
    """One refused call: who (``actor``, ``role``, ``key_prefix``), what, and why."""

    actor: str
    method: str
    route: str
    path: str
    status: int
    reason: str
    role: str | None = None
    key_prefix: str | None = None
    #: The audit-trail action refused (``query``, ``trail``, ...), when it was one.
    audit_action: str | None = None
    #: The request reached for, when it exists (puts the attempt on that request's trail).
    request_id: uuid.UUID | None = None


async def record_denial(database: Database, denial: Denial) -> None:
    """Append the refusal (and, for audit-trail reads, its access record) in one transaction."""
    path = denial.path[:MAX_PATH]
    events: list[AuditEvent] = [
        AccessDenied(
            method=denial.method,
            route=denial.route,
            path=path,
            status=denial.status,
            reason=denial.reason,
            role=denial.role,
            key_prefix=denial.key_prefix,
        )
    ]
    if denial.audit_action is not None:
        events.append(
            AuditAccessed(
                action=denial.audit_action,
                filters={"route": denial.route, "path": path},
                row_count=0,
                denied=True,
            )
        )
    async with database.session() as session:
        entries = [SystemEntry(e, actor=denial.actor, request_id=denial.request_id) for e in events]
        await append_system(session, entries, utcnow())
