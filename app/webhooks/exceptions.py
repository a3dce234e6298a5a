"""Webhook errors.

Tree::

    WebhookError
    ├── CallbackUrlRefused         a callback_url ledgerflow will not call (HTTP 422)
    └── WebhookVerificationError   a received callback is not authentic, or too old
"""

from __future__ import annotations

from app.exceptions import LedgerflowError


class WebhookError(LedgerflowError):
    """A webhook could not be registered, sent or verified."""

    code = "webhook_error"


class CallbackUrlRefused(WebhookError):
    """The callback URL is not one ledgerflow calls."""

    code = "invalid_request"


class WebhookVerificationError(WebhookError, ValueError):
    """The callback's signature does not verify: do not trust its body."""

    code = "webhook_unverified"
