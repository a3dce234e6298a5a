"""Who is looking at the console, and may they: sessions, roles, CSRF, audited refusals.

Every page declares the roles it admits with ``Depends(viewer(...))`` by the same rules as
the API route that reads or changes the same thing (``admin`` is always admitted). Without
a live session the browser is sent to the sign-in page. A signed-in user with the wrong
role gets a 403 page, and the refusal is recorded exactly like the API's (``access_denied``
on the system chain, plus ``audit_accessed`` with ``denied: true`` for audit-trail pages)
before the page goes out. Every POST must carry the session's anti-forgery token; one that
does not is refused (403, recorded) before anything is read from the form or written.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Literal, NoReturn

import structlog
from fastapi import Depends, Request

from app.audit.denials import Denial, record_denial
from app.auth import (
    ConsoleUser,
    Origin,
    Principal,
    Role,
    SessionStore,
    csrf_matches,
    csrf_token,
)
from app.bootstrap import Services
from app.console.render import base_path
from app.console.security import SESSION_COOKIE

log = structlog.get_logger(__name__)

CSRF_FIELD = "csrf_token"


class SignInRequired(Exception):
    """No live session: the browser goes to the sign-in page (and back afterwards)."""

    def __init__(self, ended: str | None = None) -> None:
        super().__init__(ended or "no session")
        #: Why the last session ended (``idle``, ``expired``, ``revoked``...), if it did.
        self.ended = ended


class Refused(Exception):
    """The signed-in user may not do this; answered with an error page of ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def services_of(request: Request) -> Services:
    """The services of the app the console is mounted on."""
    services = getattr(request.app.state.owner.state, "services", None)
    if not isinstance(services, Services):
        raise RuntimeError("the console's app has no services: build it with create_app()")
    return services


def session_store(request: Request) -> SessionStore:
    """The session store, with the idle timeout and lifetime of the settings."""
    settings = services_of(request).settings
    return SessionStore(
        services_of(request).database,
        settings.console_idle_seconds,
        settings.console_session_seconds,
    )


def acting(request: Request, user: ConsoleUser) -> Principal:
    """The user as the service layers take them: channel ``console``, this page as origin."""
    return user.principal.at(Origin(request.method, route_of(request), request.url.path))


def route_of(request: Request) -> str:
    """The page's path template as the browser sees it (``/console/requests/{request_id}``)."""
    path = getattr(request.scope.get("route"), "path", None)
    return base_path(request) + path if isinstance(path, str) else request.url.path


async def record_refusal(
    request: Request,
    status: int,
    reason: str,
    *,
    user: ConsoleUser | None,
    actor: str | None = None,
    key_prefix: str | None = None,
    audit_action: str | None = None,
    request_id: uuid.UUID | None = None,
) -> None:
    """Record a refused page or form like the API records a refused call."""
    principal = user.principal if user is not None else None
    denial = Denial(
        actor=principal.name if principal else (actor or "anonymous"),
        method=request.method,
        route=route_of(request),
        path=request.url.path,
        status=status,
        reason=reason,
        role=principal.role.value if principal else None,
        key_prefix=principal.key_prefix if principal else key_prefix,
        audit_action=audit_action,
        request_id=request_id,
    )
    await record_denial(services_of(request).database, denial)
    log.warning("access_denied", actor=denial.actor, route=denial.route, status=status, why=reason)


async def refuse(
    request: Request,
    user: ConsoleUser,
    reason: str,
    *,
    status: Literal[403, 404] = 403,
    message: str | None = None,
    audit_action: str | None = None,
    request_id: uuid.UUID | None = None,
) -> NoReturn:
    """Record the refusal, then answer with the error page (``message``, else ``reason``)."""
    await record_refusal(
        request, status, reason, user=user, audit_action=audit_action, request_id=request_id
    )
    raise Refused(status, message or reason)


async def current_user(request: Request) -> ConsoleUser:
    """The user of the request's session cookie; ``SignInRequired`` without a live one."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise SignInRequired()
    lookup = await session_store(request).find(token)
    if lookup.user is None:
        raise SignInRequired(lookup.ended)
    request.state.user = lookup.user
    request.state.csrf = csrf_token(token)
    return lookup.user


async def check_csrf(request: Request, user: ConsoleUser, audit_action: str | None) -> None:
    """Refuse (recorded 403) a POST whose form lacks the session's anti-forgery token."""
    form = await request.form()
    presented = form.get(CSRF_FIELD)
    token = request.cookies.get(SESSION_COOKIE, "")
    if not csrf_matches(token, presented if isinstance(presented, str) else None):
        await refuse(
            request,
            user,
            "missing or wrong CSRF token",
            message="This form was not sent from a current console page, so nothing was "
            "done. Reload the page and try again.",
            audit_action=audit_action,
        )


def viewer(*roles: Role, audit_action: str | None = None) -> Callable[..., Awaitable[ConsoleUser]]:
    """A dependency admitting signed-in users of ``roles`` (and admins; all with no roles).

    On POST it also checks the anti-forgery token first. ``audit_action`` names the
    audit-trail action a refusal is also recorded as (``query``, ``trail``, ``export``,
    ``verify``, ``checkpoint``).
    """
    allowed = ", ".join(r.value for r in (*roles, Role.ADMIN))

    async def dependency(
        request: Request, user: Annotated[ConsoleUser, Depends(current_user)]
    ) -> ConsoleUser:
        if request.method == "POST":
            await check_csrf(request, user, audit_action)
        if roles and not user.principal.has(*roles):
            await refuse(
                request,
                user,
                f"role {user.principal.role.value} may not open this page (allowed: {allowed})",
                message=f"Your role ({user.principal.role.value}) may not open this page; "
                f"it is for: {allowed}.",
                audit_action=audit_action,
            )
        return user

    return dependency
