"""Web console sessions: an API key exchanged for a server-side session.

Signing in checks the key like the API does (:func:`app.auth.keys.check_key`), stores a
new random token's SHA-256 in ``console_sessions`` and hands the token to the browser
(in an HttpOnly cookie; the key itself is never kept). Each page view looks the token's
hash up together with its client in one statement on the unique ``token_hash`` index and
ends the session when it has been idle for ``CONSOLE_IDLE_SECONDS``, is older than
``CONSOLE_SESSION_SECONDS`` or its client's key was revoked. Signing in, signing out and
every ending are audited (``session_started`` / ``session_ended`` on the system chain, in
the same transaction as the row written or deleted). The rows live in the database, so
several ``serve`` processes and restarts share them.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import delete, insert, select, update

from app.audit.events import SessionEnded, SessionStarted
from app.audit.system import SystemEntry, append_system
from app.auth.keys import ClientInfo, Role
from app.auth.principal import Principal
from app.database import Database
from app.database.models import ApiClient, ConsoleSession
from app.database.types import utcnow

EndReason = Literal["signed_out", "idle", "expired", "revoked"]
#: ``last_seen_at`` is written at most this often (and at most every tenth of the idle
#: timeout), so a page view costs a write only now and then.
_TOUCH_EVERY = timedelta(seconds=60)
_CSRF_CONTEXT = b"ledgerflow console csrf v1"
#: The ``channel`` a session's principal reads through (recorded with every PHI read).
CHANNEL = "console"


def token_hash(token: str) -> str:
    """Hex SHA-256 of a session token: the only form in which the server keeps it."""
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token(token: str) -> str:
    """The anti-forgery token of a session: an HMAC of a fixed context under its token.

    Derived rather than stored: only the holder of the session cookie can compute it, and a
    page from another site can neither read the cookie nor the pages that carry this value.
    """
    return hmac.new(token.encode(), _CSRF_CONTEXT, hashlib.sha256).hexdigest()


def csrf_matches(token: str, presented: str | None) -> bool:
    """True when ``presented`` is the session's anti-forgery token (constant time)."""
    return presented is not None and hmac.compare_digest(csrf_token(token), presented)


@dataclass(frozen=True)
class ConsoleUser:
    """A live session: who it acts as and when it ends."""

    session_id: uuid.UUID
    principal: Principal
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class SessionLookup:
    """The outcome of presenting a session token: the user, or why there is none."""

    user: ConsoleUser | None
    #: ``None`` with a user; ``unknown`` for a token with no session; else why it ended.
    ended: EndReason | Literal["unknown"] | None


class SessionStore:
    """Opens, finds and closes console sessions in the database."""

    def __init__(self, database: Database, idle_seconds: float, lifetime_seconds: float) -> None:
        self.database = database
        self.idle = timedelta(seconds=idle_seconds)
        self.lifetime = timedelta(seconds=lifetime_seconds)
        self._touch_every = min(_TOUCH_EVERY, self.idle / 10)

    async def open(self, client: ClientInfo) -> tuple[str, ConsoleUser]:
        """Start a session for ``client``; return its token (for the cookie only) and user.

        One transaction: sweep sessions past their lifetime (``ix_console_sessions_expires_at``),
        insert the new row, append ``session_started``.
        """
        token = secrets.token_urlsafe(32)
        now = utcnow()
        user = ConsoleUser(
            uuid.uuid4(),
            Principal(client.name, client.role, client.key_prefix, channel=CHANNEL),
            now,
            now + self.lifetime,
        )
        event = SessionStarted(
            session_id=str(user.session_id), role=client.role.value, key_prefix=client.key_prefix
        )
        async with self.database.session() as session:
            await session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at <= now))
            await session.execute(
                insert(ConsoleSession).values(
                    id=user.session_id,
                    token_hash=token_hash(token),
                    client_id=client.id,
                    created_at=now,
                    last_seen_at=now,
                    expires_at=user.expires_at,
                )
            )
            await append_system(session, [SystemEntry(event, actor=client.name)], now)
        return token, user

    async def find(self, token: str) -> SessionLookup:
        """The live session of ``token``, ending it (audited) if it is idle, old or revoked.

        One read on ``uq_console_sessions_token_hash`` joined to the client by primary key;
        a write only to refresh ``last_seen_at`` now and then, or to end the session.
        """
        query = (
            select(
                ConsoleSession.id,
                ConsoleSession.created_at,
                ConsoleSession.last_seen_at,
                ConsoleSession.expires_at,
                ApiClient.name,
                ApiClient.role,
                ApiClient.key_prefix,
                ApiClient.revoked_at,
            )
            .join(ApiClient, ApiClient.id == ConsoleSession.client_id)
            .where(ConsoleSession.token_hash == token_hash(token))
        )
        async with self.database.read_session() as session:
            row = (await session.execute(query)).one_or_none()
        if row is None:
            return SessionLookup(None, "unknown")
        now = utcnow()
        ended: EndReason | None = None
        if row.revoked_at is not None:
            ended = "revoked"
        elif now >= row.expires_at:
            ended = "expired"
        elif now - row.last_seen_at >= self.idle:
            ended = "idle"
        if ended is not None:
            await self._end(row.id, row.name, ended)
            return SessionLookup(None, ended)
        if now - row.last_seen_at >= self._touch_every:
            async with self.database.session() as session:
                await session.execute(
                    update(ConsoleSession)
                    .where(ConsoleSession.id == row.id)
                    .values(last_seen_at=now)
                )
        principal = Principal(row.name, Role(row.role), row.key_prefix, channel=CHANNEL)
        return SessionLookup(ConsoleUser(row.id, principal, row.created_at, row.expires_at), None)

    async def close(self, user: ConsoleUser) -> None:
        """Sign out: delete the session and append ``session_ended`` (``signed_out``)."""
        await self._end(user.session_id, user.principal.name, "signed_out")

    async def _end(self, session_id: uuid.UUID, actor: str, reason: EndReason) -> None:
        """Delete the row and record why, together; a session ended twice is recorded once."""
        async with self.database.session() as session:
            gone = await session.execute(
                delete(ConsoleSession).where(ConsoleSession.id == session_id)
            )
            if gone.rowcount:  # type: ignore[attr-defined]  # CursorResult of a DELETE
                event = SessionEnded(session_id=str(session_id), reason=reason)
                await append_system(session, [SystemEntry(event, actor=actor)], utcnow())
