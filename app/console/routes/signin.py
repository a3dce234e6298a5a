"""Signing in with an API key (exchanged for a server-side session) and signing out."""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from app.auth import ConsoleUser, check_key
from app.console.access import (
    CSRF_FIELD,
    record_refusal,
    services_of,
    session_store,
    viewer,
)
from app.console.errors import error_page
from app.console.render import base_path, render
from app.console.security import SESSION_COOKIE, SIGN_IN_COOKIE, clear_cookie, set_cookie

router = APIRouter()

_ENDED = {
    "idle": "Your session ended after a while without activity. Sign in again to go on.",
    "expired": "Your session reached its time limit. Sign in again to go on.",
    "revoked": "The key your session used was revoked.",
    "signed_out": "You are signed out.",
}
_MAX_KEY = 256


def safe_next(request: Request, target: str | None) -> str:
    """``target`` if it is a console page of this site, else the overview (no open redirect)."""
    base = base_path(request)
    if (
        target
        and target.startswith(base + "/")
        and not target.startswith("//")
        and "\\" not in target
        and "://" not in target
    ):
        return target
    return base + "/"


def _sign_in_page(
    request: Request,
    *,
    status: int = 200,
    next_page: str | None = None,
    error: str | None = None,
    notice: str | None = None,
) -> Response:
    token = request.cookies.get(SIGN_IN_COOKIE) or secrets.token_urlsafe(32)
    response = render(
        request,
        "sign_in.html",
        status=status,
        title="Sign in",
        sign_in_token=token,
        next_page=next_page or "",
        error=error,
        notice=notice,
    )
    set_cookie(request, response, SIGN_IN_COOKIE, token)
    return response


@router.get("/sign-in")
async def sign_in_form(
    request: Request, next: str | None = None, ended: str | None = None
) -> Response:
    """The sign-in form (or straight on, for a browser that is already signed in)."""
    if request.cookies.get(SESSION_COOKIE):
        lookup = await session_store(request).find(request.cookies[SESSION_COOKIE])
        if lookup.user is not None:
            return RedirectResponse(safe_next(request, next), status_code=303)
        ended = ended or (lookup.ended if lookup.ended != "unknown" else None)
    return _sign_in_page(request, next_page=next, notice=_ENDED.get(ended or ""))


@router.post("/sign-in")
async def sign_in(
    request: Request,
    api_key: Annotated[str, Form(max_length=_MAX_KEY)] = "",
    csrf_token: Annotated[str, Form(alias=CSRF_FIELD, max_length=128)] = "",
    next: Annotated[str, Form(max_length=2048)] = "",
) -> Response:
    """Exchange the key for a session: a cookie holding a fresh token, never the key."""
    expected = request.cookies.get(SIGN_IN_COOKIE, "")
    if not expected or not hmac.compare_digest(expected, csrf_token):
        await record_refusal(request, 403, "missing or wrong CSRF token", user=None)
        return error_page(
            request,
            403,
            "This sign-in form was not sent from a current console page. "
            "Reload the page and try again.",
        )
    key = api_key.strip()
    if not key:
        return _sign_in_page(
            request, status=422, next_page=next, error="Enter your API key to sign in."
        )
    result = await check_key(services_of(request).database, key)
    if result.client is None or result.reason is not None:
        reason = result.reason or "unknown key"
        await record_refusal(
            request,
            401,
            reason,
            user=None,
            actor=result.client.name if result.client is not None else None,
            key_prefix=result.prefix,
        )
        return _sign_in_page(
            request,
            status=401,
            next_page=next,
            error=f"That key was not accepted ({reason}). Check it and try again.",
        )
    token, _ = await session_store(request).open(result.client)
    response = RedirectResponse(safe_next(request, next), status_code=303)
    set_cookie(request, response, SESSION_COOKIE, token)
    clear_cookie(request, response, SIGN_IN_COOKIE)
    return response


@router.post("/sign-out")
async def sign_out(request: Request, user: Annotated[ConsoleUser, Depends(viewer())]) -> Response:
    """End the session (the row is deleted, the ending audited) and forget the cookie."""
    await session_store(request).close(user)
    response = RedirectResponse(f"{base_path(request)}/sign-in?ended=signed_out", status_code=303)
    clear_cookie(request, response, SESSION_COOKIE)
    return response
