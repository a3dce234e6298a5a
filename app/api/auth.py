"""Who is calling, and may they: bearer API keys, roles, and audited refusals.

Each protected route declares the roles it admits with ``Depends(allow(...))``; ``admin``
is always admitted. A call without a valid key gets 401, a valid key with the wrong role
gets 403, and a submitter reaching for someone else's request gets the 404 a missing
request gets (:func:`hide_unless_owner`: the answer must not confirm that it exists). Every
refusal appends an ``access_denied`` event to the system chain (refused reads of the audit
trail also an ``audit_accessed`` event with ``denied: true``) before the answer goes out,
batched with other refusals (:mod:`app.audit.denials`: no per-call lock on the system
chain's head). If that record cannot be written the call fails with 503: a refusal is never
left unrecorded.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, NoReturn

import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.api.deps import services_of
from app.api.problems import ApiError
from app.audit.denials import Denial, DenialLogFull
from app.audit.denials import record_denial as record_denial_event
from app.auth import Origin, Principal, Role, check_key
from app.orchestrator.exceptions import NotFound

log = structlog.get_logger(__name__)

ANONYMOUS = "anonymous"
#: The ``channel`` an API caller reads through (recorded with every PHI and data read).
CHANNEL = "http"

#: Audit routes, by path template → the ``audit_accessed`` action a refusal is recorded as.
AUDIT_ACTIONS: dict[str, str] = {
    "/v1/audit-logs": "query",
    "/v1/requests/{request_id}/audit-trail": "trail",
    "/v1/audit/verify": "verify",
    "/v1/audit/checkpoints": "checkpoint",
}

_bearer = HTTPBearer(
    auto_error=False,
    bearerFormat="lf_<prefix>_<secret>",
    description="An API key made by `ledgerflow clients create NAME --role ROLE`.",
)


def route_template(request: Request) -> str:
    """The matched route's path template (``/v1/requests/{request_id}``), else the path."""
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else request.url.path


async def record_denial(
    request: Request,
    status: int,
    reason: str,
    *,
    actor: str,
    role: Role | None,
    prefix: str | None,
    request_id: uuid.UUID | None = None,
) -> None:
    """Record the refusal on the system chain, batched with others (:mod:`app.audit.denials`);
    returns once it is committed, or answers 503 when it cannot be.

    ``request_id`` (a request that exists) also puts the attempt on that request's trail.
    """
    route = route_template(request)
    denial = Denial(
        actor=actor,
        method=request.method,
        route=route,
        path=request.url.path,
        status=status,
        reason=reason,
        role=role.value if role else None,
        key_prefix=prefix,
        audit_action=AUDIT_ACTIONS.get(route),
        request_id=request_id,
    )
    try:
        await record_denial_event(services_of(request).database, denial)
    except DenialLogFull as exc:
        raise ApiError(
            503,
            "denial_log_full",
            f"{exc.message} (your call was refused: {reason})",
            headers={"Retry-After": "1"},
        ) from exc
    except Exception as exc:
        # Never answer a refusal that is not on the record (the denial log logged why).
        raise ApiError(
            503,
            "denial_not_recorded",
            f"the refusal could not be recorded; retry later (your call was refused: {reason})",
            headers={"Retry-After": "5"},
        ) from exc
    log.warning(
        "access_denied", actor=actor, route=route, method=request.method, status=status, why=reason
    )


async def deny(
    request: Request,
    status: int,
    reason: str,
    *,
    principal: Principal | None = None,
    prefix: str | None = None,
    actor: str | None = None,
) -> NoReturn:
    """Record the refusal, then raise the 401/403 problem."""
    await record_denial(
        request,
        status,
        reason,
        actor=actor or (principal.name if principal else ANONYMOUS),
        role=principal.role if principal else None,
        prefix=principal.key_prefix if principal else prefix,
    )
    if status == 401:
        raise ApiError(
            401,
            "unauthorized",
            f"{reason}: send 'Authorization: Bearer <API key>'",
            headers={"WWW-Authenticate": 'Bearer realm="ledgerflow"'},
        )
    raise ApiError(403, "forbidden", reason)


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller behind the bearer key; 401 (recorded) without a live key.

    The principal carries channel ``http`` and this call as its origin, so the service
    layers record reads and refusals with the route and path they came through.
    """
    if credentials is None or not credentials.credentials:
        await deny(request, 401, "missing bearer token")
    result = await check_key(services_of(request).database, credentials.credentials.strip())
    if result.client is None or result.reason is not None:
        actor = result.client.name if result.client is not None else None
        await deny(request, 401, result.reason or "unknown key", prefix=result.prefix, actor=actor)
    client = result.client
    origin = Origin(request.method, route_template(request), request.url.path)
    return Principal(
        client.name,
        client.role,
        client.key_prefix,
        channel=CHANNEL,
        origin=origin,
        callback_url=client.callback_url,
    )


def allow(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting ``roles`` (and admins); anyone else gets a recorded 403."""
    names = ", ".join(r.value for r in (*roles, Role.ADMIN))

    async def dependency(
        request: Request, principal: Annotated[Principal, Depends(authenticate)]
    ) -> Principal:
        if not principal.has(*roles):
            await deny(
                request,
                403,
                f"role {principal.role.value} may not call this route (allowed: {names})",
                principal=principal,
            )
        return principal

    return dependency


SubmitterDep = Annotated[Principal, Depends(allow(Role.SUBMITTER))]
ReaderDep = Annotated[Principal, Depends(allow(Role.SUBMITTER, Role.REVIEWER))]
#: Who may read recording metadata (never text or audio): readers and auditors.
MetadataReaderDep = Annotated[
    Principal, Depends(allow(Role.SUBMITTER, Role.REVIEWER, Role.AUDITOR))
]
ReviewerDep = Annotated[Principal, Depends(allow(Role.REVIEWER))]
AuditorDep = Annotated[Principal, Depends(allow(Role.AUDITOR))]


async def hide_unless_owner(
    request: Request, principal: Principal, submitted_by: str, request_id: uuid.UUID
) -> None:
    """Answer another submitter's request exactly as a missing one (recorded 404).

    The same rule as the console's and :func:`app.results.access.hide_unless_owner`: a 403
    would confirm that the id exists. The refusal is recorded before the answer goes out.
    """
    if principal.owns(submitted_by):
        return
    await record_denial(
        request,
        404,
        "belongs to another submitter",
        actor=principal.name,
        role=principal.role,
        prefix=principal.key_prefix,
        request_id=request_id,
    )
    # The words of a missing request (app.orchestrator.reads): only the id differs.
    raise NotFound(f"no request {request_id}")
