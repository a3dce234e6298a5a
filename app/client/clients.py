""":class:`Client` (blocking) and :class:`AsyncClient` (asyncio) over httpx.

Both run the operations of :mod:`app.client.operations`; the only code that differs is the
loop that sends each call (``send`` or ``await send``), streams a download and sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
from pydantic import BaseModel

from app import __version__
from app.api.schemas import RequestBatchResult, RequestPublic
from app.client.operations import (
    Download,
    DownloadedDelivery,
    Op,
    Operations,
    Reply,
    Sleep,
    Step,
    build,
)
from app.client.retry import RetryPolicy
from app.results.models import RecordingPublic, RecordingsPage, TranscriptPublic
from app.webhooks.signature import verify_webhook

T = TypeVar("T")
RequestId = uuid.UUID | str
Payload = Mapping[str, Any] | BaseModel


def _headers(api_key: str, extra: Mapping[str, str] | None) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {api_key}",
        "User-Agent": f"ledgerflow-client/{__version__}",
        **(extra or {}),
    }


def _filters(
    patient_id: str | None,
    clinician_id: str | None,
    status: str | None,
    created_after: str | None,
    cursor: str | None,
    limit: int | None,
) -> dict[str, str | int | None]:
    return {
        "patient_id": patient_id,
        "clinician_id": clinician_id,
        "status": status,
        "created_after": created_after,
        "cursor": cursor,
        "limit": limit,
    }


class Client(Operations):
    """A blocking client of the ledgerflow API.

    ``base_url`` is the API root (``http://127.0.0.1:8000``), ``api_key`` a key made by
    ``ledgerflow clients create``. Calls are retried by ``retry``; ``timeout`` bounds
    each attempt (a long poll gets its wait on top). ``transport`` replaces httpx's (tests).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        poll_interval: float = 0.5,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(retry or RetryPolicy(), timeout, poll_interval)
        self._http = httpx.Client(
            base_url=base_url,
            headers=_headers(api_key, headers),
            timeout=timeout,
            transport=transport,
        )

    # -- the runner -------------------------------------------------------------------

    def _run(self, op: Op[T]) -> T:
        try:
            reply: Reply = None
            while True:
                try:
                    step = op.send(reply)
                except StopIteration as done:
                    return done.value  # type: ignore[no-any-return]  # StopIteration.value is Any
                reply = self._do(step)
        finally:
            op.close()

    def _do(self, step: Step) -> Reply:
        if isinstance(step, Sleep):
            time.sleep(step.seconds)
            return None
        call = step.call if isinstance(step, Download) else step
        with contextlib.ExitStack() as files:
            request = build(self._http, call, self.timeout, files)
            try:
                if not isinstance(step, Download):
                    return self._http.send(request)
                response = self._http.send(request, stream=True)
                try:
                    if response.is_success:
                        step.sink.start()
                        try:
                            for chunk in response.iter_bytes():
                                step.sink.write(chunk)
                        finally:
                            step.sink.close()
                    else:
                        response.read()
                finally:
                    response.close()
                return response
            except httpx.TransportError as exc:
                return exc

    # -- life -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- the API ----------------------------------------------------------------------

    def submit(
        self,
        kind: str,
        payload: Payload,
        priority: int | None = None,
        idempotency_key: str | None = None,
        callback_url: str | None = None,
    ) -> RequestPublic:
        """Submit a request; a fresh ``Idempotency-Key`` (uuid4) is made unless given and
        kept across retries, so a retried submission never makes a second request."""
        return self._run(self._submit(kind, payload, priority, idempotency_key, callback_url))

    def submit_batch(self, items: Iterable[Mapping[str, Any]]) -> RequestBatchResult:
        """Submit up to 500 requests in one call (``POST /v1/requests/batch``); each item
        is ``{"kind", "payload", "priority"?, "idempotency_key"?}`` and gets a key unless it
        has one. One result per item, in order: created, replayed, conflict or queue_full."""
        return self._run(self._submit_batch(items))

    def get(self, request_id: RequestId) -> RequestPublic:
        """One request."""
        return self._run(self._get(request_id))

    def wait(self, request_id: RequestId, timeout: float = 60.0) -> RequestPublic:
        """The request once it finished or waits for a person, or as it is after
        ``timeout`` seconds (check its ``state``)."""
        return self._run(self._wait(request_id, timeout))

    def upload_recording(
        self,
        path: str | Path,
        patient_id: str,
        clinician_id: str,
        priority: int | None = None,
        idempotency_key: str | None = None,
        callback_url: str | None = None,
    ) -> RequestPublic:
        """Upload a WAV recording; returns its transcription request (whose id is the
        recording's id)."""
        return self._run(
            self._upload_recording(
                Path(path), patient_id, clinician_id, priority, idempotency_key, callback_url
            )
        )

    def recording(self, recording_id: RequestId) -> RecordingPublic:
        """A recording's metadata and current transcript (the read is audited)."""
        return self._run(self._recording(recording_id))

    def recordings(
        self,
        *,
        patient_id: str | None = None,
        clinician_id: str | None = None,
        status: str | None = None,
        created_after: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> RecordingsPage:
        """One page of recordings, newest first (pass ``next_cursor`` as ``cursor``)."""
        return self._run(
            self._recordings(
                _filters(patient_id, clinician_id, status, created_after, cursor, limit)
            )
        )

    def transcript(self, recording_id: RequestId, version: int | None = None) -> TranscriptPublic:
        """The current transcript, or ``version`` (the read is audited)."""
        return self._run(self._transcript(recording_id, version))

    def correct_transcript(
        self, recording_id: RequestId, text: str, version: int
    ) -> TranscriptPublic:
        """Save ``text`` as the next version if ``version`` is still the current one
        (else :class:`~app.client.PreconditionFailed`)."""
        return self._run(self._correct_transcript(recording_id, text, version))

    def download_delivery(self, request_id: RequestId, dest_dir: str | Path) -> DownloadedDelivery:
        """A research request's delivery into ``dest_dir``, every file's SHA-256 checked."""
        return self._run(self._download_delivery(request_id, Path(dest_dir)))

    #: Verify a callback ledgerflow POSTed: the server's own
    #: :func:`~app.webhooks.signature.verify_webhook` (docs/webhooks.md).
    verify_webhook = staticmethod(verify_webhook)


class AsyncClient(Operations):
    """The asyncio twin of :class:`Client`: the same methods, awaited."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        poll_interval: float = 0.5,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(retry or RetryPolicy(), timeout, poll_interval)
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers=_headers(api_key, headers),
            timeout=timeout,
            transport=transport,
        )

    # -- the runner -------------------------------------------------------------------

    async def _run(self, op: Op[T]) -> T:
        try:
            reply: Reply = None
            while True:
                try:
                    step = op.send(reply)
                except StopIteration as done:
                    return done.value  # type: ignore[no-any-return]  # StopIteration.value is Any
                reply = await self._do(step)
        finally:
            op.close()

    async def _do(self, step: Step) -> Reply:
        if isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
            return None
        call = step.call if isinstance(step, Download) else step
        with contextlib.ExitStack() as files:
            request = build(self._http, call, self.timeout, files)
            try:
                if not isinstance(step, Download):
                    return await self._http.send(request)
                response = await self._http.send(request, stream=True)
                try:
                    if response.is_success:
                        step.sink.start()
                        try:
                            async for chunk in response.aiter_bytes():
                                step.sink.write(chunk)
                        finally:
                            step.sink.close()
                    else:
                        await response.aread()
                finally:
                    await response.aclose()
                return response
            except httpx.TransportError as exc:
                return exc

    # -- life -------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- the API ----------------------------------------------------------------------

    async def submit(
        self,
        kind: str,
        payload: Payload,
        priority: int | None = None,
        idempotency_key: str | None = None,
        callback_url: str | None = None,
    ) -> RequestPublic:
        """Submit a request (see :meth:`Client.submit`)."""
        return await self._run(self._submit(kind, payload, priority, idempotency_key, callback_url))

    async def submit_batch(self, items: Iterable[Mapping[str, Any]]) -> RequestBatchResult:
        """Submit up to 500 requests in one call (see :meth:`Client.submit_batch`)."""
        return await self._run(self._submit_batch(items))

    async def get(self, request_id: RequestId) -> RequestPublic:
        """One request."""
        return await self._run(self._get(request_id))

    async def wait(self, request_id: RequestId, timeout: float = 60.0) -> RequestPublic:
        """The request once it finished or waits for a person, or after ``timeout``."""
        return await self._run(self._wait(request_id, timeout))

    async def upload_recording(
        self,
        path: str | Path,
        patient_id: str,
        clinician_id: str,
        priority: int | None = None,
        idempotency_key: str | None = None,
        callback_url: str | None = None,
    ) -> RequestPublic:
        """Upload a WAV recording; returns its transcription request."""
        return await self._run(
            self._upload_recording(
                Path(path), patient_id, clinician_id, priority, idempotency_key, callback_url
            )
        )

    async def recording(self, recording_id: RequestId) -> RecordingPublic:
        """A recording's metadata and current transcript."""
        return await self._run(self._recording(recording_id))

    async def recordings(
        self,
        *,
        patient_id: str | None = None,
        clinician_id: str | None = None,
        status: str | None = None,
        created_after: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> RecordingsPage:
        """One page of recordings, newest first."""
        return await self._run(
            self._recordings(
                _filters(patient_id, clinician_id, status, created_after, cursor, limit)
            )
        )

    async def transcript(
        self, recording_id: RequestId, version: int | None = None
    ) -> TranscriptPublic:
        """The current transcript, or ``version``."""
        return await self._run(self._transcript(recording_id, version))

    async def correct_transcript(
        self, recording_id: RequestId, text: str, version: int
    ) -> TranscriptPublic:
        """Save ``text`` as the next version if ``version`` is still the current one."""
        return await self._run(self._correct_transcript(recording_id, text, version))

    async def download_delivery(
        self, request_id: RequestId, dest_dir: str | Path
    ) -> DownloadedDelivery:
        """A research request's delivery into ``dest_dir``, every file's SHA-256 checked."""
        return await self._run(self._download_delivery(request_id, Path(dest_dir)))

    #: Verify a callback ledgerflow POSTed: the server's own
    #: :func:`~app.webhooks.signature.verify_webhook` (docs/webhooks.md).
    verify_webhook = staticmethod(verify_webhook)


__all__ = ["AsyncClient", "Client"]
