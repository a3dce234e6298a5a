"""Signing and verifying webhook callbacks: pure functions, no I/O.

Every callback carries three headers (docs/webhooks.md)::

    Webhook-Id: <the callback's id: the same on every retry, dedupe on it>
    Webhook-Timestamp: <when this attempt was signed, Unix seconds>
    Webhook-Signature: v1=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>

The secret is the API client's webhook secret (``whsec_...``) used as UTF-8 bytes, as it
is; ``body`` is the exact bytes received. A receiver calls :func:`verify_webhook` (also
``app.client.verify_webhook``), which checks the signature in constant time and refuses a
timestamp more than ``tolerance`` seconds away from its clock (a replayed old callback).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from app.webhooks.exceptions import WebhookVerificationError

#: The signature scheme's version, the prefix of each signature.
VERSION = "v1"
#: Seconds a callback's timestamp may differ from the receiver's clock.
DEFAULT_TOLERANCE = 300.0

ID_HEADER = "Webhook-Id"
TIMESTAMP_HEADER = "Webhook-Timestamp"
SIGNATURE_HEADER = "Webhook-Signature"


def _key(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def _text(body: bytes | str) -> bytes:
    return body.encode() if isinstance(body, str) else body


def sign(secret: str | bytes, timestamp: int, body: bytes | str) -> str:
    """``v1=<hex>``: HMAC-SHA256 keyed by ``secret`` over ``f"{timestamp}.{body}"``."""
    signed = str(timestamp).encode() + b"." + _text(body)
    return f"{VERSION}={hmac.new(_key(secret), signed, hashlib.sha256).hexdigest()}"


def signed_headers(
    secret: str | bytes, callback_id: str, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    """The headers of one delivery attempt of ``body`` (signed now, unless ``timestamp``)."""
    stamp = int(time.time()) if timestamp is None else timestamp
    return {
        ID_HEADER: callback_id,
        TIMESTAMP_HEADER: str(stamp),
        SIGNATURE_HEADER: sign(secret, stamp, body),
    }


def verify_webhook(
    secret: str | bytes,
    headers: Mapping[str, str],
    body: bytes | str,
    tolerance: float = DEFAULT_TOLERANCE,
    *,
    now: float | None = None,
) -> dict[str, Any]:
    """The callback's JSON body, once its signature and timestamp check out; else
    :class:`WebhookVerificationError` saying what failed.

    ``headers`` may be any mapping (names are matched case-insensitively); ``body`` must be
    the bytes as received, before any JSON parsing. ``Webhook-Signature`` may hold several
    space-separated signatures: one valid ``v1`` signature is enough.
    """
    found = {name.lower(): value for name, value in headers.items()}
    stamp = found.get(TIMESTAMP_HEADER.lower(), "").strip()
    signatures = found.get(SIGNATURE_HEADER.lower(), "").split()
    if not found.get(ID_HEADER.lower()) or not stamp or not signatures:
        raise WebhookVerificationError(
            f"missing {ID_HEADER}, {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header"
        )
    if not stamp.isdigit():
        raise WebhookVerificationError(f"{TIMESTAMP_HEADER} is not Unix seconds")
    timestamp = int(stamp)
    clock = time.time() if now is None else now
    if abs(clock - timestamp) > tolerance:
        raise WebhookVerificationError(
            f"{TIMESTAMP_HEADER} is {round(clock - timestamp)} s from now "
            f"(more than {tolerance:g} s): too old, or a clock is wrong"
        )
    expected = sign(secret, timestamp, body)
    wanted = expected.encode()
    if not any(hmac.compare_digest(wanted, given.encode(errors="replace")) for given in signatures):
        raise WebhookVerificationError(f"no {VERSION} signature matches: wrong secret or body")
    try:
        event = json.loads(_text(body))
    except ValueError:
        raise WebhookVerificationError("the body is not JSON") from None
    if not isinstance(event, dict):
        raise WebhookVerificationError("the body is not a JSON object")
    return event


#: The name ``app.client`` calls.
verify = verify_webhook

__all__ = [
    "DEFAULT_TOLERANCE",
    "ID_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "VERSION",
    "sign",
    "signed_headers",
    "verify",
    "verify_webhook",
]
