"""The HTTP API (FastAPI), versioned under ``/v1``: requests, recordings, reviews, audit.

Callers authenticate with API keys (``ledgerflow clients create``) sent as bearer tokens;
roles decide what they may do (:mod:`app.api.auth`); errors are RFC 9457 problem+json
(:mod:`app.api.problems`). ``/healthz``, ``/readyz`` and ``/metrics`` are for operations.
"""

from app.api.app import create_app
from app.auth.keys import ClientInfo, NewClient, Role, create_client, list_clients, revoke_client

__all__ = [
    "ClientInfo",
    "NewClient",
    "Role",
    "create_app",
    "create_client",
    "list_clients",
    "revoke_client",
]
