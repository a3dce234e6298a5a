"""Sending owed callbacks: the outbox runner every worker runs beside its requests.

A ``callback_outbox`` row commits with the change of state it announces
(:mod:`app.orchestrator.transitions`). Each worker's :class:`CallbackSender` claims due
rows with a lease (``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, the ``BEGIN
IMMEDIATE`` writer on SQLite), POSTs each signed body (``WEBHOOK_TIMEOUT_SECONDS``, no
redirects followed), then in one transaction settles every attempt of the batch and audits
it on the system chain with the request's id: ``callback_sent`` (2xx) or
``callback_failed`` (receiver's host and status only, never the URL or the body). A failed
attempt is retried after an exponential backoff with jitter until
``WEBHOOK_MAX_ATTEMPTS`` or ``WEBHOOK_MAX_AGE_SECONDS``, then recorded as failed for good.

Delivery is at least once: a worker that dies after POSTing but before recording leaves
its claim to expire, and the callback is sent again with the same ``Webhook-Id``. The
request itself is never touched: a receiver that is down changes nothing of its outcome.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import structlog
from sqlalchemy import ColumnElement, select, update

import app as app_package
from app.audit.events import AuditEvent, CallbackFailed, CallbackSent
from app.audit.system import SystemEntry, append_system
from app.auth.keys import webhook_secrets
from app.config import Settings
from app.database import Database
from app.database.models import CallbackOutbox
from app.database.types import canonical_json_text, utcnow
from app.orchestrator.retry import transient_retry
from app.webhooks.exceptions import CallbackUrlRefused
from app.webhooks.signature import signed_headers
from app.webhooks.urls import check_callback_url, url_host

log = structlog.get_logger(__name__)

USER_AGENT = f"ledgerflow-webhooks/{getattr(app_package, '__version__', '0')}"


@dataclass(frozen=True)
class OwedCallback:
    """A claimed ``callback_outbox`` row."""

    id: uuid.UUID
    request_id: uuid.UUID
    kind: str
    state: str
    client: str
    url: str
    created_at: datetime
    attempts: int

    def body(self) -> bytes:
        """The JSON POSTed: the callback's id, the request's id and kind, the state it
        entered and when (canonical JSON: sorted keys, no spaces)."""
        at = self.created_at.astimezone(UTC).isoformat(timespec="microseconds")
        return canonical_json_text(
            {
                "id": str(self.id),
                "request_id": str(self.request_id),
                "kind": self.kind,
                "state": self.state,
                "at": at.replace("+00:00", "Z"),
            }
        ).encode()


@dataclass(frozen=True)
class Outcome:
    """How one attempt went: the receiver's status, or why there was none."""

    status: int | None = None
    error_type: str | None = None

    @property
    def delivered(self) -> bool:
        """The receiver answered 2xx."""
        return self.status is not None and 200 <= self.status < 300


def backoff(attempt: int, settings: Settings, rng: random.Random | None = None) -> float:
    """Seconds before the attempt after ``attempt``: the base doubled per attempt, capped,
    with "equal jitter" (half fixed, half random) so receivers are not hit in waves."""
    ceiling = min(
        settings.webhook_backoff_max_seconds,
        settings.webhook_backoff_seconds * 2.0 ** min(60, max(0, attempt - 1)),
    )
    jitter: float = (rng or random).uniform(0, ceiling / 2)
    return ceiling / 2 + jitter


class CallbackSender:
    """Claims due callbacks, sends them and records every attempt (see the module docstring)."""

    def __init__(
        self,
        database: Database,
        settings: Settings,
        worker_id: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.database = database
        self.settings = settings
        self.worker_id = worker_id
        self.batch = settings.webhook_concurrency
        self.transport = transport
        self.rng = rng or random.Random()
        self._http: httpx.AsyncClient | None = None
        #: Attempts made and callbacks delivered so far (for tests and logs).
        self.attempts = 0
        self.delivered = 0

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            timeout=self.settings.webhook_timeout_seconds,
            follow_redirects=False,
            transport=self.transport,
            headers={"User-Agent": USER_AGENT},
        )

    async def run(self, stopping: asyncio.Event) -> None:
        """Send due callbacks until ``stopping`` is set; never raises."""
        async with self._client() as http:
            self._http = http
            try:
                while not stopping.is_set():
                    try:
                        busy = await self.run_once()
                    except Exception as exc:
                        # The rows stay owed (claims expire) and are tried again.
                        log.error("callbacks_failed", error=str(exc), error_type=type(exc).__name__)
                        busy = 0
                    if busy < self.batch:
                        try:
                            await asyncio.wait_for(
                                stopping.wait(), self.settings.webhook_poll_seconds
                            )
                        except TimeoutError:
                            continue
            finally:
                self._http = None

    async def run_once(self) -> int:
        """One pass: claim up to ``batch`` due callbacks, send them, record each attempt."""
        now = utcnow()
        if not await self._anything_due(now):
            return 0
        claimed = await self._claim(now)
        if not claimed:
            return 0
        secrets = await webhook_secrets(self.database, {owed.client for owed in claimed})
        if self._http is not None:
            outcomes = await self._send_all(self._http, claimed, secrets)
        else:
            async with self._client() as http:
                outcomes = await self._send_all(http, claimed, secrets)
        await self._record(list(zip(claimed, outcomes, strict=True)))
        return len(claimed)

    async def _anything_due(self, now: datetime) -> bool:
        # A read first: an idle worker must not take SQLite's write lock every poll.
        async for attempt in transient_retry():
            with attempt:
                async with self.database.read_session() as session:
                    row = await session.execute(
                        select(CallbackOutbox.id).where(*_due(now)).limit(1)
                    )
                    return row.first() is not None
        raise AssertionError("unreachable: tenacity reraises")

    async def _claim(self, now: datetime) -> list[OwedCallback]:
        """Claim due rows nobody holds: ``ix_callback_outbox_due`` in due order, locked with
        ``SKIP LOCKED`` (PostgreSQL) or under SQLite's single writer, then leased to us."""
        lease = max(self.settings.lease_seconds, 3 * self.settings.webhook_timeout_seconds)
        candidates = (
            select(CallbackOutbox.id)
            .where(*_due(now))
            .order_by(CallbackOutbox.not_before)
            .limit(self.batch)
            .with_for_update(skip_locked=True)
        )
        async with self.database.session() as session:
            ids = list((await session.execute(candidates)).scalars())
            if not ids:
                return []
            rows = await session.execute(
                update(CallbackOutbox)
                .where(CallbackOutbox.id.in_(ids))
                .values(claimed_by=self.worker_id, claimed_until=now + timedelta(seconds=lease))
                .returning(
                    CallbackOutbox.id,
                    CallbackOutbox.request_id,
                    CallbackOutbox.kind,
                    CallbackOutbox.state,
                    CallbackOutbox.client,
                    CallbackOutbox.url,
                    CallbackOutbox.created_at,
                    CallbackOutbox.attempts,
                )
            )
            return [
                OwedCallback(
                    id=row.id,
                    request_id=row.request_id,
                    kind=row.kind,
                    state=row.state,
                    client=row.client,
                    url=row.url,
                    created_at=row.created_at,
                    attempts=row.attempts,
                )
                for row in rows
            ]

    async def _send_all(
        self, http: httpx.AsyncClient, claimed: Sequence[OwedCallback], secrets: dict[str, str]
    ) -> list[Outcome]:
        return list(
            await asyncio.gather(
                *(self._send(http, owed, secrets.get(owed.client)) for owed in claimed)
            )
        )

    async def _send(
        self, http: httpx.AsyncClient, owed: OwedCallback, secret: str | None
    ) -> Outcome:
        """POST one callback; never raises (every way it can go wrong is an outcome)."""
        try:
            url = check_callback_url(
                owed.url, allow_http_loopback=self.settings.webhook_allow_http_loopback
            )
        except CallbackUrlRefused:
            return Outcome(error_type="url_refused")
        if not secret:
            return Outcome(error_type="no_secret")
        body = owed.body()
        headers = {**signed_headers(secret, str(owed.id), body), "Content-Type": "application/json"}
        try:
            response = await http.post(url, content=body, headers=headers)
        except httpx.TimeoutException:
            return Outcome(error_type="timeout")
        except httpx.ConnectError:
            return Outcome(error_type="connect_error")
        except httpx.HTTPError as exc:
            return Outcome(error_type=type(exc).__name__[:64])
        if 300 <= response.status_code < 400:
            return Outcome(status=response.status_code, error_type="redirect")
        return Outcome(status=response.status_code)

    async def _record(self, attempts: Sequence[tuple[OwedCallback, Outcome]]) -> None:
        """Settle every attempt of the batch and audit it, in one transaction."""
        now = utcnow()
        entries: list[SystemEntry] = []
        async with self.database.session() as session:
            for owed, outcome in attempts:
                event, values = self._settle(owed, outcome, now)
                applied = await session.execute(
                    update(CallbackOutbox)
                    .where(
                        CallbackOutbox.id == owed.id, CallbackOutbox.claimed_by == self.worker_id
                    )
                    .values(claimed_by=None, claimed_until=None, **values)
                    .returning(CallbackOutbox.id)
                )
                if applied.first() is None:
                    # Our claim ran out and another worker took the row: it settles it.
                    log.warning("callback_claim_lost", callback_id=str(owed.id))
                entries.append(SystemEntry(event, actor=self.worker_id, request_id=owed.request_id))
            await append_system(session, entries, now)
        self.attempts += len(attempts)
        self.delivered += sum(1 for _, outcome in attempts if outcome.delivered)

    def _settle(
        self, owed: OwedCallback, outcome: Outcome, now: datetime
    ) -> tuple[AuditEvent, dict[str, object]]:
        """The audit event of one attempt and the outbox row's new values."""
        attempt = owed.attempts + 1
        host = url_host(owed.url)
        common: dict[str, object] = {
            "attempts": attempt,
            "last_status": outcome.status,
            "last_error": outcome.error_type,
        }
        if outcome.delivered:
            log.info("callback_sent", callback_id=str(owed.id), host=host, status=outcome.status)
            sent = CallbackSent(
                callback_id=str(owed.id),
                state=owed.state,
                host=host,
                status=outcome.status or 0,
                attempt=attempt,
            )
            return sent, {**common, "sent_at": now}
        delay = backoff(attempt, self.settings, self.rng)
        final = (
            outcome.error_type in ("url_refused", "no_secret")
            or attempt >= self.settings.webhook_max_attempts
            or (now + timedelta(seconds=delay) - owed.created_at).total_seconds()
            > self.settings.webhook_max_age_seconds
        )
        log.warning(
            "callback_failed",
            callback_id=str(owed.id),
            host=host,
            status=outcome.status,
            error_type=outcome.error_type,
            attempt=attempt,
            final=final,
            retry_in=None if final else round(delay, 3),
        )
        failed = CallbackFailed(
            callback_id=str(owed.id),
            state=owed.state,
            host=host,
            status=outcome.status,
            error_type=outcome.error_type,
            attempt=attempt,
            final=final,
        )
        if final:
            return failed, {**common, "failed_at": now}
        return failed, {**common, "not_before": now + timedelta(seconds=delay)}


def _due(now: datetime) -> tuple[ColumnElement[bool], ...]:
    """Owed (the partial index's own predicate), due, and not claimed by a live worker."""
    return (
        CallbackOutbox.sent_at.is_(None),
        CallbackOutbox.failed_at.is_(None),
        CallbackOutbox.not_before <= now,
        (CallbackOutbox.claimed_until.is_(None)) | (CallbackOutbox.claimed_until < now),
    )


__all__ = ["CallbackSender", "Outcome", "OwedCallback", "backoff"]
