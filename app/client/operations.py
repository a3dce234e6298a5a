"""What each client method does, without I/O: the calls it makes, how it reads the answers,
when it retries and sleeps.

Each operation is a generator (the "sans-I/O" style of h11 and httpx's own core): it yields
a :class:`Call` and is sent back the ``httpx.Response`` (or the ``httpx.TransportError``),
yields :class:`Sleep` to wait, and yields :class:`Download` to have a response body streamed
into a :class:`~app.client.downloads.FileSink`. :class:`~app.client.Client` and
:class:`~app.client.AsyncClient` run the same generators; only sending and sleeping differ.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from app.api.problems import Problem
from app.api.schemas import RequestBatchResult, RequestPublic
from app.client.downloads import FileSink, safe_name
from app.client.exceptions import TransportFailed, error_for
from app.client.retry import RetryPolicy
from app.orchestrator.states import SETTLED
from app.results.models import (
    DeliveryManifest,
    RecordingPublic,
    RecordingsPage,
    TranscriptPublic,
)

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

#: States ``wait`` returns at: finished, or waiting for a person (the server's own set).
STOPPED: frozenset[str] = frozenset(SETTLED)
#: The longest ``?wait=`` the API accepts, in seconds.
MAX_WAIT = 60
#: ``manifest.json`` is served beside the files it lists.
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Call:
    """One HTTP call, as the operation means it (the same object is sent on every retry)."""

    method: str
    path: str
    params: Mapping[str, str | int] | None = None
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    #: Multipart text fields, sent with ``upload`` as the ``file`` part.
    form: Mapping[str, str] | None = None
    #: A file to upload, opened afresh for each attempt.
    upload: Path | None = None
    #: Seconds the server may hold the answer (a long poll): added to the read timeout.
    long_poll: float = 0.0


@dataclass(frozen=True)
class Sleep:
    """Wait before the next step."""

    seconds: float


@dataclass(frozen=True)
class Download:
    """Send ``call`` and stream a successful answer's body into ``sink``."""

    call: Call
    sink: FileSink


Step = Call | Sleep | Download
#: What a runner sends back: the answer or the connection error for a call, None otherwise.
Reply = httpx.Response | httpx.TransportError | None
#: An operation returning ``T``.
Op = Generator[Step, Reply, T]


@dataclass(frozen=True)
class DownloadedDelivery:
    """A delivery on disk: its manifest, the folder, and each file's path (``manifest.json``
    last), every one checked against the manifest's SHA-256."""

    manifest: DeliveryManifest
    folder: Path
    paths: list[Path]


def problem_of(response: httpx.Response) -> Problem:
    """The problem an error answer carries; one made from the status for any other body
    (a proxy's HTML page, say)."""
    try:
        return Problem.model_validate_json(response.content)
    except ValidationError:
        text = " ".join(response.text.split())[:300]
        return Problem(
            type="about:blank",
            title=response.reason_phrase or "Error",
            status=response.status_code,
            detail=text or response.reason_phrase or f"HTTP {response.status_code}",
            code="http_error",
        )


def parse(response: httpx.Response, model: type[M]) -> M:
    """The answer's body as ``model``, or the typed error for its problem."""
    if response.is_success:
        return model.model_validate_json(response.content)
    raise error_for(problem_of(response))


def _segment(value: uuid.UUID | str) -> str:
    return quote(str(value), safe="")


def build(
    http: httpx.Client | httpx.AsyncClient,
    call: Call,
    timeout: float,
    files: contextlib.ExitStack,
) -> httpx.Request:
    """The ``httpx.Request`` for one attempt of ``call`` (an upload's file opened in
    ``files``, closed by the caller after the attempt)."""
    upload = None
    if call.upload is not None:
        handle = files.enter_context(call.upload.open("rb"))
        upload = {"file": (call.upload.name, handle, "audio/wav")}
    return http.build_request(
        call.method,
        call.path,
        params=call.params,
        json=call.json,
        data=call.form,
        files=upload,
        headers=call.headers,
        timeout=timeout + call.long_poll,
    )


class Operations:
    """The client's logic, shared by :class:`~app.client.Client` and
    :class:`~app.client.AsyncClient`; each of its ``_x`` methods is the operation behind
    the public ``x``."""

    def __init__(self, retry: RetryPolicy, timeout: float, poll_interval: float) -> None:
        self.retry = retry
        self.timeout = timeout
        self.poll_interval = poll_interval

    # -- sending ----------------------------------------------------------------------

    def _send(self, step: Call | Download) -> Op[httpx.Response]:
        """Send until the answer is final by the retry policy; a connection error that
        outlasts the retries is raised as :class:`~app.client.TransportFailed`."""
        attempt = 0
        while True:
            outcome = yield step
            assert outcome is not None, "a call is answered"
            delay = self.retry.delay(attempt, outcome)
            if delay is None:
                if isinstance(outcome, httpx.TransportError):
                    call = step.call if isinstance(step, Download) else step
                    raise TransportFailed(
                        f"{call.method} {call.path}: no answer after {attempt + 1} "
                        f"attempt(s): {type(outcome).__name__}: {outcome}"
                    ) from outcome
                return outcome
            yield Sleep(delay)
            attempt += 1

    def _call(self, call: Call, model: type[M]) -> Op[M]:
        return parse((yield from self._send(call)), model)

    # -- requests ---------------------------------------------------------------------

    def _submit(
        self,
        kind: str,
        payload: Mapping[str, Any] | BaseModel,
        priority: int | None,
        idempotency_key: str | None,
        callback_url: str | None,
    ) -> Op[RequestPublic]:
        if isinstance(payload, BaseModel):
            payload = payload.model_dump(mode="json", exclude_none=True)
        body: dict[str, Any] = {"kind": kind, "payload": dict(payload)}
        if priority is not None:
            body["priority"] = priority
        if callback_url is not None:
            body["callback_url"] = callback_url
        key = idempotency_key or str(uuid.uuid4())
        call = Call("POST", "/v1/requests", json=body, headers={"Idempotency-Key": key})
        return (yield from self._call(call, RequestPublic))

    def _submit_batch(self, items: Iterable[Mapping[str, Any]]) -> Op[RequestBatchResult]:
        """Each item as ``submit`` takes it (``kind``, ``payload``, optional ``priority``,
        ``idempotency_key``); an item without a key gets a uuid4, kept across retries (a
        retried batch answers ``replayed`` for what the first attempt wrote)."""
        requests = []
        for item in items:
            entry = dict(item)
            if isinstance(entry.get("payload"), BaseModel):
                entry["payload"] = entry["payload"].model_dump(mode="json", exclude_none=True)
            if entry.get("priority") is None:
                entry.pop("priority", None)
            entry["idempotency_key"] = entry.get("idempotency_key") or str(uuid.uuid4())
            requests.append(entry)
        call = Call("POST", "/v1/requests/batch", json={"requests": requests})
        return (yield from self._call(call, RequestBatchResult))

    def _get(self, request_id: uuid.UUID | str, wait: int | None = None) -> Op[RequestPublic]:
        params = None if wait is None else {"wait": wait}
        call = Call(
            "GET", f"/v1/requests/{_segment(request_id)}", params=params, long_poll=wait or 0
        )
        return (yield from self._call(call, RequestPublic))

    def _wait(self, request_id: uuid.UUID | str, timeout: float) -> Op[RequestPublic]:
        """Long polls of at most :data:`MAX_WAIT` seconds until the request is in
        :data:`STOPPED` or ``timeout`` passed; then the request as it is.

        A server answering at once without a change (one that ignores ``?wait=``) is asked
        again after ``poll_interval`` rather than at once.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        last_state: str | None = None
        while True:
            seconds = max(0, min(MAX_WAIT, int(deadline - time.monotonic())))
            started = time.monotonic()
            request = yield from self._get(request_id, wait=seconds)
            remaining = deadline - time.monotonic()
            if request.state in STOPPED or remaining <= 0:
                return request
            quick = time.monotonic() - started < self.poll_interval
            if quick and request.state == last_state:
                yield Sleep(min(self.poll_interval, remaining))
            last_state = request.state

    # -- recordings and transcripts ---------------------------------------------------

    def _upload_recording(
        self,
        path: Path,
        patient_id: str,
        clinician_id: str,
        priority: int | None,
        idempotency_key: str | None,
        callback_url: str | None,
    ) -> Op[RequestPublic]:
        form = {"patient_id": patient_id, "clinician_id": clinician_id}
        if priority is not None:
            form["priority"] = str(priority)
        if callback_url is not None:
            form["callback_url"] = callback_url
        key = idempotency_key or str(uuid.uuid4())
        call = Call(
            "POST",
            "/v1/recordings",
            form=form,
            upload=Path(path),
            headers={"Idempotency-Key": key},
        )
        return (yield from self._call(call, RequestPublic))

    def _recording(self, recording_id: uuid.UUID | str) -> Op[RecordingPublic]:
        call = Call("GET", f"/v1/recordings/{_segment(recording_id)}")
        return (yield from self._call(call, RecordingPublic))

    def _recordings(self, filters: Mapping[str, str | int | None]) -> Op[RecordingsPage]:
        params = {name: value for name, value in filters.items() if value is not None}
        call = Call("GET", "/v1/recordings", params=params)
        return (yield from self._call(call, RecordingsPage))

    def _transcript(
        self, recording_id: uuid.UUID | str, version: int | None
    ) -> Op[TranscriptPublic]:
        params = None if version is None else {"version": version}
        call = Call("GET", f"/v1/recordings/{_segment(recording_id)}/transcript", params=params)
        return (yield from self._call(call, TranscriptPublic))

    def _correct_transcript(
        self, recording_id: uuid.UUID | str, text: str, version: int
    ) -> Op[TranscriptPublic]:
        call = Call(
            "PUT",
            f"/v1/recordings/{_segment(recording_id)}/transcript",
            json={"text": text},
            headers={"If-Match": f'"{version}"'},
        )
        return (yield from self._call(call, TranscriptPublic))

    # -- deliveries -------------------------------------------------------------------

    def _download_delivery(
        self, request_id: uuid.UUID | str, dest_dir: Path
    ) -> Op[DownloadedDelivery]:
        """The manifest, then each file (and ``manifest.json``) streamed to ``dest_dir``
        and checked against the manifest; a file that does not match is removed and
        :class:`~app.client.DigestMismatch` raised."""
        base = f"/v1/requests/{_segment(request_id)}/delivery"
        manifest = yield from self._call(Call("GET", base), DeliveryManifest)
        folder = Path(dest_dir)
        folder.mkdir(parents=True, exist_ok=True)
        wanted: list[tuple[str, str, str, int | None]] = [
            (f.name, f.url, f.sha256, f.bytes) for f in manifest.files
        ]
        wanted.append((MANIFEST, f"{base}/{MANIFEST}", manifest.manifest_sha256, None))
        paths = []
        for name, url, sha256, size in wanted:
            sink = FileSink(folder / safe_name(name), sha256, size)
            paths.append((yield from self._fetch(Call("GET", url), sink)))
        return DownloadedDelivery(manifest=manifest, folder=folder, paths=paths)

    def _fetch(self, call: Call, sink: FileSink) -> Op[Path]:
        try:
            response = yield from self._send(Download(call, sink))
            if not response.is_success:
                raise error_for(problem_of(response))
            return sink.commit()
        except BaseException:
            sink.discard()
            raise


__all__ = [
    "MAX_WAIT",
    "STOPPED",
    "Call",
    "Download",
    "DownloadedDelivery",
    "Op",
    "Operations",
    "Reply",
    "Sleep",
    "Step",
    "build",
    "parse",
    "problem_of",
]
