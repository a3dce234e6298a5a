"""Webhook callbacks: where they may go, how they are signed and verified, and the outbox
sender the workers run.

A request's ``callback_url`` (its own, or its API client's default) is checked by
:func:`check_callback_url`. Each change into a terminal or waiting-for-a-person state
writes a ``callback_outbox`` row in the change's own transaction
(:mod:`app.orchestrator.transitions`); workers send due rows (:mod:`app.webhooks.sender`),
signed as :mod:`app.webhooks.signature` describes. Receivers verify with
:func:`verify_webhook`. See docs/webhooks.md.
"""

from app.webhooks.exceptions import CallbackUrlRefused, WebhookError, WebhookVerificationError
from app.webhooks.signature import sign, signed_headers, verify_webhook
from app.webhooks.urls import check_callback_url, url_host

__all__ = [
    "CallbackUrlRefused",
    "WebhookError",
    "WebhookVerificationError",
    "check_callback_url",
    "sign",
    "signed_headers",
    "url_host",
    "verify_webhook",
]
