"""API keys: made, stored (SHA-256 only), looked up and revoked.

A key reads ``lf_<8 hex>_<43 url-safe characters>``. Its first 11 characters are the
public ``key_prefix`` (indexed, shown in listings and in audit rows); the whole key is
stored only as its SHA-256 and shown once, when it is created. Lookups compare hashes with
:func:`hmac.compare_digest`, so a wrong key takes as long to refuse as a right one takes to
accept.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum, StrEnum

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from app.database import Database, IntegrityViolation
from app.database.models import ApiClient
from app.database.types import utcnow
from app.orchestrator.exceptions import IllegalTransition, InvalidRequest, NotFound


class Role(StrEnum):
    """What an API client may do."""

    #: Submits requests and reads, lists and cancels its own.
    SUBMITTER = "submitter"
    #: Reads every request; decides approvals and resolves escalations.
    REVIEWER = "reviewer"
    #: Reads, exports, verifies and checkpoints the audit trail; nothing else.
    AUDITOR = "auditor"
    #: Everything.
    ADMIN = "admin"


KEY_PATTERN = re.compile(r"^lf_[0-9a-f]{8}_[A-Za-z0-9_-]{43}$")
_PREFIX_LENGTH = 11
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
#: How a webhook secret starts (the whole string is the HMAC key).
WEBHOOK_SECRET_PREFIX = "whsec_"
#: ``last_used_at`` is written at most this often per client (one write, not one per call).
LAST_USED_GRANULARITY = timedelta(seconds=60)
#: Compared against when no client has the presented prefix, so timing does not tell.
_DUMMY_HASH = hashlib.sha256(b"ledgerflow: no such key").hexdigest()


@dataclass(frozen=True)
class ClientInfo:
    """An API client as listings show it (never its key or hash)."""

    id: uuid.UUID
    name: str
    role: Role
    key_prefix: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None
    #: Default ``callback_url`` of the requests it submits over HTTP (never its secret).
    callback_url: str | None = None

    @classmethod
    def of(cls, row: ApiClient) -> ClientInfo:
        return cls(
            row.id,
            row.name,
            Role(row.role),
            row.key_prefix,
            row.created_at,
            row.revoked_at,
            row.last_used_at,
            row.callback_url,
        )


@dataclass(frozen=True)
class NewClient:
    """A client just created, with the key (and webhook secret) shown this once."""

    client: ClientInfo
    key: str
    #: Signs the client's webhook callbacks (:mod:`app.webhooks.signature`).
    webhook_secret: str = ""


@dataclass(frozen=True)
class ClientWebhook:
    """A client's webhook settings after a change; ``secret`` only when it was rotated."""

    client: ClientInfo
    secret: str | None


def hash_key(key: str) -> str:
    """Hex SHA-256 of a key: the only form in which keys are stored."""
    return hashlib.sha256(key.encode()).hexdigest()


def key_prefix(key: str) -> str | None:
    """The public prefix of a well-formed key, else ``None``."""
    return key[:_PREFIX_LENGTH] if KEY_PATTERN.match(key) else None


def new_key() -> str:
    """A fresh random key (256 bits of secret)."""
    return f"lf_{secrets.token_hex(4)}_{secrets.token_urlsafe(32)}"


def new_webhook_secret() -> str:
    """A fresh webhook signing secret: ``whsec_`` and 256 random bits, URL-safe."""
    return f"{WEBHOOK_SECRET_PREFIX}{secrets.token_urlsafe(32)}"


def _check_name(name: str) -> str:
    name = name.strip()
    if not _NAME_PATTERN.match(name):
        raise InvalidRequest(
            "must be 1-128 letters, digits or . _ : @ - (starting with a letter or digit)",
            field="name",
        )
    return name


def _check_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise InvalidRequest(
            f"unknown role {role!r} (one of: {', '.join(r.value for r in Role)})", field="role"
        ) from None


async def create_client(database: Database, name: str, role: str) -> NewClient:
    """Create a client with a new key; the key is returned here and never again."""
    name, checked_role = _check_name(name), _check_role(role)
    key = new_key()
    secret = new_webhook_secret()
    row = ApiClient(
        id=uuid.uuid4(),
        name=name,
        role=checked_role.value,
        key_prefix=key[:_PREFIX_LENGTH],
        key_hash=hash_key(key),
        created_at=utcnow(),
        webhook_secret=secret,
    )
    try:
        async with database.session() as session:
            session.add(row)
    except (IntegrityViolation, IntegrityError):
        raise InvalidRequest(f"a client named {name!r} already exists", field="name") from None
    return NewClient(ClientInfo.of(row), key, secret)


class Keep(Enum):
    """``set_webhook(url=KEEP)``: leave the client's callback URL as it is."""

    KEEP = "keep"


KEEP = Keep.KEEP


async def set_webhook(
    database: Database,
    name: str,
    *,
    url: str | Keep | None = KEEP,
    rotate_secret: bool = False,
    allow_http_loopback: bool = False,
) -> ClientWebhook:
    """Set (or, with None, clear) a client's default ``callback_url``, and/or make it a new
    webhook secret (returned this once; callbacks sent from now on are signed with it)."""
    if isinstance(url, str):
        from app.webhooks import CallbackUrlRefused, check_callback_url

        try:
            url = check_callback_url(url, allow_http_loopback=allow_http_loopback)
        except CallbackUrlRefused as exc:
            raise InvalidRequest(exc.message, field="callback_url") from None
    secret = new_webhook_secret() if rotate_secret else None
    async with database.session() as session:
        row = (
            await session.execute(select(ApiClient).where(ApiClient.name == name))
        ).scalar_one_or_none()
        if row is None:
            raise NotFound(f"no API client named {name!r}")
        if not isinstance(url, Keep):
            row.callback_url = url
        if secret is not None:
            row.webhook_secret = secret
    return ClientWebhook(ClientInfo.of(row), secret)


async def webhook_secrets(database: Database, names: Iterable[str]) -> dict[str, str]:
    """The webhook secret of each named client that has one (one query by unique name)."""
    wanted = sorted(set(names))
    if not wanted:
        return {}
    async with database.read_session() as session:
        rows = await session.execute(
            select(ApiClient.name, ApiClient.webhook_secret).where(ApiClient.name.in_(wanted))
        )
        return {name: secret for name, secret in rows if secret}


async def list_clients(database: Database, *, include_revoked: bool = True) -> list[ClientInfo]:
    """Every client, by name."""
    query = select(ApiClient).order_by(ApiClient.name)
    if not include_revoked:
        query = query.where(ApiClient.revoked_at.is_(None))
    async with database.read_session() as session:
        return [ClientInfo.of(row) for row in (await session.execute(query)).scalars()]


async def revoke_client(database: Database, name: str) -> ClientInfo:
    """Revoke a client's key at once (its next call gets 401); the row stays for the record."""
    async with database.session() as session:
        row = (
            await session.execute(select(ApiClient).where(ApiClient.name == name))
        ).scalar_one_or_none()
        if row is None:
            raise NotFound(f"no API client named {name!r}")
        if row.revoked_at is not None:
            raise IllegalTransition(f"API client {name!r} was already revoked")
        row.revoked_at = utcnow()
    return ClientInfo.of(row)


@dataclass(frozen=True)
class KeyCheck:
    """The outcome of checking a presented key: the client, or why not."""

    client: ClientInfo | None
    reason: str | None
    prefix: str | None


async def check_key(database: Database, key: str) -> KeyCheck:
    """Find the live client whose key this is (constant-time hash comparison)."""
    prefix = key_prefix(key)
    if prefix is None:
        hmac.compare_digest(hash_key(key), _DUMMY_HASH)
        return KeyCheck(None, "malformed key", None)
    presented = hash_key(key)
    async with database.read_session() as session:
        rows = list(
            (
                await session.execute(select(ApiClient).where(ApiClient.key_prefix == prefix))
            ).scalars()
        )
    match = None
    for row in rows:
        if hmac.compare_digest(presented, row.key_hash):
            match = row
    if not rows:
        hmac.compare_digest(presented, _DUMMY_HASH)
    if match is None:
        return KeyCheck(None, "unknown key", prefix)
    client = ClientInfo.of(match)
    if client.revoked_at is not None:
        return KeyCheck(client, "revoked key", prefix)
    now = utcnow()
    last = client.last_used_at
    if last is None or now - last >= LAST_USED_GRANULARITY:
        async with database.session() as session:
            await session.execute(
                update(ApiClient).where(ApiClient.id == client.id).values(last_used_at=now)
            )
    return KeyCheck(client, None, prefix)
