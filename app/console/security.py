"""Browser-side protections: security headers on every console response, and cookies.

The Content-Security-Policy admits only the console's own files (``default-src 'self'``;
no inline script or style anywhere in the templates), no framing, no plugins, forms only
back to us. Pages are ``no-store``: they may show PHI, and a shared computer's back button
must not bring them back after sign-out. Cookies are HttpOnly, ``SameSite=Strict``, scoped
to the console's path, and ``Secure`` when the request came over https (directly or through
a proxy uvicorn trusts).
"""

from __future__ import annotations

from fastapi import Request, Response
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.console.render import base_path

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "media-src 'self'",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}
#: Session cookie (the token; its SHA-256 is what the server keeps).
SESSION_COOKIE = "lf_console"
#: Anti-forgery cookie of the sign-in form (there is no session yet to derive one from).
SIGN_IN_COOKIE = "lf_console_signin"


class SecurityHeaders:
    """ASGI middleware adding the security headers to every response of the console."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith(
            str(scope.get("root_path", "")).rstrip("/") + "/static/"
        )
        https = scope.get("scheme") == "https"

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _HEADERS.items():
                    headers.setdefault(name, value)
                headers.setdefault("Cache-Control", "no-cache" if static else "no-store")
                if https:
                    headers.setdefault("Strict-Transport-Security", "max-age=31536000")
            await send(message)

        await self.app(scope, receive, with_headers)


def is_https(request: Request) -> bool:
    """True when the browser reached us over https (uvicorn applies trusted proxy headers)."""
    return request.url.scheme == "https"


def set_cookie(request: Request, response: Response, name: str, value: str) -> None:
    """Set a console cookie: HttpOnly, SameSite=Strict, console path, Secure over https."""
    response.set_cookie(
        name,
        value,
        path=base_path(request) or "/",
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )


def clear_cookie(request: Request, response: Response, name: str) -> None:
    """Remove a console cookie from the browser."""
    response.delete_cookie(
        name,
        path=base_path(request) or "/",
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )
