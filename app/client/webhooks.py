"""Checking a webhook's signature: the server's own verifier, so there is one implementation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def verify_webhook(secret: str | bytes, headers: Mapping[str, str], body: bytes) -> Any:
    """Verify a callback ledgerflow POSTed: delegates to :mod:`app.webhooks.signature`."""
    from app.webhooks import signature

    return signature.verify(secret, headers, body)


__all__ = ["verify_webhook"]
