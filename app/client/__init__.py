"""A client library for backend services: :class:`Client` (blocking) and :class:`AsyncClient`.

Typed results (the API's own pydantic models), an ``Idempotency-Key`` on every submission,
retries with backoff on 429 (honouring ``Retry-After``), 503 and connection errors, and
typed errors carrying the server's RFC 9457 problem::

    from app.client import Client

    with Client("http://127.0.0.1:8000", api_key) as lf:
        request = lf.submit("research", payload)
        request = lf.wait(request.id, timeout=300)
        lf.download_delivery(request.id, "delivery/")

``verify_webhook`` is the server's own verifier (:mod:`app.webhooks.signature`), so a
receiver checks callbacks with the code that signs them. The server never imports this
package (it alone needs httpx at run time).
"""

from app.client.clients import AsyncClient, Client
from app.client.exceptions import (
    BadRequest,
    ClientError,
    Conflict,
    ContentTooLarge,
    DigestMismatch,
    Forbidden,
    Gone,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
    ProblemError,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    TransportFailed,
    Unauthorized,
)
from app.client.operations import STOPPED, DownloadedDelivery
from app.client.retry import RetryPolicy
from app.webhooks.exceptions import WebhookVerificationError
from app.webhooks.signature import verify_webhook

__all__ = [
    "STOPPED",
    "AsyncClient",
    "BadRequest",
    "Client",
    "ClientError",
    "Conflict",
    "ContentTooLarge",
    "DigestMismatch",
    "DownloadedDelivery",
    "Forbidden",
    "Gone",
    "InvalidInput",
    "NotFound",
    "PreconditionFailed",
    "PreconditionRequired",
    "ProblemError",
    "RateLimited",
    "RetryPolicy",
    "ServerError",
    "ServiceUnavailable",
    "TransportFailed",
    "Unauthorized",
    "WebhookVerificationError",
    "verify_webhook",
]
