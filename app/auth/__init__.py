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

__all__ = [
    "ClientInfo",
    "KeyCheck",
    "NewClient",
    "Origin",
    "Principal",
    "Role",
    "check_key",
    "create_client",
    "hash_key",
    "key_prefix",
    "list_clients",
    "revoke_client",
]
