"""Streaming an audit export to a web response in constant memory, with backpressure.

:meth:`app.audit.AuditAccess.export` writes text to a file object as it reads rows. Here it
runs in a thread with its own event loop and its own connection pool, writing into a
bounded queue that the HTTP response drains: when the client reads slowly, the export
waits instead of piling rows up in memory. A client that goes away stops the export,
which still records what it had sent (``filters.aborted``).
"""

from __future__ import annotations

import asyncio
import io
import queue
import threading
from collections.abc import AsyncIterator

import structlog
from sqlalchemy.engine import URL

from app.audit.access import AuditAccess
from app.audit.query import AuditFilter
from app.config import Settings
from app.database import Database

log = structlog.get_logger(__name__)

_CHUNK_CHARS = 64 * 1024
_QUEUE_CHUNKS = 16
_POLL_SECONDS = 0.25
_Item = str | BaseException | None


class _ExportCancelled(Exception):
    """The HTTP client went away; the export stops."""


class _QueueWriter(io.StringIO):
    """A text file whose writes become ~64 KiB chunks in a bounded queue."""

    def __init__(self, chunks: queue.Queue[_Item], cancelled: threading.Event) -> None:
        super().__init__()
        self._chunks = chunks
        self._cancelled = cancelled
        self._buffer: list[str] = []
        self._size = 0

    def write(self, text: str) -> int:
        if self._cancelled.is_set():
            raise _ExportCancelled
        self._buffer.append(text)
        self._size += len(text)
        if self._size >= _CHUNK_CHARS:
            self.send_buffered()
        return len(text)

    def send_buffered(self) -> None:
        if self._buffer:
            text, self._buffer, self._size = "".join(self._buffer), [], 0
            put(self._chunks, text, self._cancelled)


def put(chunks: queue.Queue[_Item], item: _Item, cancelled: threading.Event) -> None:
    """Put ``item``, waiting for room, unless the consumer has gone."""
    while True:
        try:
            chunks.put(item, timeout=_POLL_SECONDS)
            return
        except queue.Full:
            if cancelled.is_set():
                raise _ExportCancelled from None


async def stream_export(
    url: URL, settings: Settings, actor: str, audit_filter: AuditFilter, fmt: str
) -> AsyncIterator[str]:
    """Yield the export text chunk by chunk (first chunk only once data or an error is in).

    Errors before the first chunk (e.g. the database is down) are raised from the first
    ``__anext__``, so the caller can still answer with a problem instead of a broken 200.
    """
    chunks: queue.Queue[_Item] = queue.Queue(maxsize=_QUEUE_CHUNKS)
    cancelled = threading.Event()
    out = _QueueWriter(chunks, cancelled)

    async def export() -> None:
        database = Database.from_url(url, settings)
        try:
            await AuditAccess(database, actor).export(audit_filter, out, fmt)
        finally:
            await database.dispose()

    def run() -> None:
        try:
            asyncio.run(export())
            out.send_buffered()
            put(chunks, None, cancelled)
        except _ExportCancelled:
            log.info("audit_export_cancelled", actor=actor)
        except BaseException as exc:
            try:
                put(chunks, exc, cancelled)
            except _ExportCancelled:
                log.warning("audit_export_failed", actor=actor, error=str(exc))

    def take() -> _Item:
        while not cancelled.is_set():
            try:
                return chunks.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                continue
        raise _ExportCancelled

    worker = threading.Thread(target=run, name="audit-export", daemon=True)
    worker.start()
    try:
        while True:
            item = await asyncio.to_thread(take)
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        cancelled.set()
        while not chunks.empty():
            chunks.get_nowait()
