"""Who may do what: API clients and their keys (stored as hashes), roles, principals.

Shared by every entry point that authenticates people or services: the HTTP API
(:mod:`app.api.auth`), the web console (:mod:`app.console`) and the ``clients`` command.
"""

from app.auth.keys import (
    ClientInfo,
    KeyCheck,
    NewClient,
    Role,
    check_key,
    create_client,
    hash_key,
    key_prefix,
    list_clients,
    revoke_client,
)
from app.auth.principal import Origin, Principal
from app.auth.sessions import ConsoleUser, SessionLookup, SessionStore, csrf_matches, csrf_token

__all__ = [
    "ClientInfo",
    "ConsoleUser",
    "KeyCheck",
    "NewClient",
    "Origin",
    "Principal",
    "Role",
    "SessionLookup",
    "SessionStore",
    "check_key",
    "create_client",
    "csrf_matches",
    "csrf_token",
    "hash_key",
    "key_prefix",
    "list_clients",
    "revoke_client",
]
