"""Which callback URLs ledgerflow calls: ``https``, or ``http`` to this machine when
``WEBHOOK_ALLOW_HTTP_LOOPBACK`` allows it (for local receivers and tests)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from app.webhooks.exceptions import CallbackUrlRefused

#: Longest callback URL accepted.
MAX_URL = 2048
_LOOPBACK_NAMES = frozenset({"localhost"})


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_callback_url(url: str, *, allow_http_loopback: bool = False) -> str:
    """``url`` if ledgerflow may call it, else :class:`CallbackUrlRefused` saying why.

    An absolute ``https`` URL with a host (``http`` only to a loopback host, and only when
    allowed), no user name or password (they would end up in logs), at most
    :data:`MAX_URL` characters.
    """
    if not isinstance(url, str) or not url.strip():
        raise CallbackUrlRefused("must be an absolute https URL")
    url = url.strip()
    if len(url) > MAX_URL:
        raise CallbackUrlRefused(f"must be at most {MAX_URL} characters")
    if any(ord(c) < 0x21 or c == "\x7f" for c in url):
        raise CallbackUrlRefused("must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018  # raises ValueError for a port that is not a number
    except ValueError:
        raise CallbackUrlRefused("is not a valid URL") from None
    if parts.scheme not in ("https", "http") or not host:
        raise CallbackUrlRefused("must be an absolute https URL")
    if parts.username is not None or parts.password is not None:
        raise CallbackUrlRefused("must not carry a user name or password")
    if parts.scheme == "http":
        if not is_loopback(host):
            raise CallbackUrlRefused("must use https (http only to a loopback host)")
        if not allow_http_loopback:
            raise CallbackUrlRefused(
                "must use https (http to a loopback host needs WEBHOOK_ALLOW_HTTP_LOOPBACK=true)"
            )
    return url


def url_host(url: str) -> str:
    """The host of ``url``, as audit records name a receiver (never the whole URL)."""
    try:
        return urlsplit(url).hostname or "?"
    except ValueError:
        return "?"
