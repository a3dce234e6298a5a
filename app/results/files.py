"""Serving a stored file, whole or as one byte range (RFC 9110 ``Range: bytes=...``).

:func:`byte_range` reads a ``Range`` header against a file's size; :func:`open_slice`
opens the file *before* its read is audited and hands back an :class:`OpenFile` that
streams from that open handle, so a purge or a replacement after the audit record cannot
change what is sent. One range per request (what a browser's ``<audio>`` seeking sends);
a list of ranges, another unit, or a range past the end is refused with 416.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from app.results.exceptions import RangeNotSatisfiable

CHUNK_BYTES = 64 * 1024
_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class ByteRange:
    """Bytes ``first`` to ``last`` (inclusive) of a file of ``size`` bytes."""

    first: int
    last: int
    size: int
    #: True when a ``Range`` was asked for (206), False for the whole file (200).
    partial: bool

    @property
    def length(self) -> int:
        """How many bytes the range holds."""
        return self.last - self.first + 1 if self.size else 0

    def content_range(self) -> str:
        """The ``Content-Range`` value: ``bytes first-last/size``."""
        return f"bytes {self.first}-{self.last}/{self.size}"

    def describe(self) -> str:
        """``first-last/size``, as audit records name what was read."""
        return f"{self.first}-{self.last}/{self.size}"


def byte_range(header: str | None, size: int) -> ByteRange:
    """The part of a ``size``-byte file that ``header`` asks for (all of it when None).

    ``bytes=a-b``, ``bytes=a-`` and ``bytes=-n`` (the last n bytes) are read; a ``last``
    past the end is cut to the end. Anything else raises :class:`RangeNotSatisfiable`.
    """
    if header is None or not header.strip():
        return ByteRange(0, max(size - 1, 0), size, partial=False)
    match = _RANGE.match(header)
    if match is None:
        raise RangeNotSatisfiable(
            f"Range: {header[:64]!r} is not one range of bytes (send 'bytes=first-last')",
            size=size,
        )
    first_text, last_text = match.groups()
    if not first_text and not last_text:
        raise RangeNotSatisfiable("Range: 'bytes=-' names no bytes", size=size)
    if not first_text:
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(f"Range: the last {suffix} bytes of {size}", size=size)
        return ByteRange(max(size - suffix, 0), size - 1, size, partial=True)
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if first >= size or last < first:
        raise RangeNotSatisfiable(
            f"Range: bytes {first}-{last_text or ''} are outside the file ({size} bytes)",
            size=size,
        )
    return ByteRange(first, min(last, size - 1), size, partial=True)


@dataclass
class OpenFile:
    """A stored file opened for sending: the handle, the range, and what it is."""

    name: str
    media_type: str
    range: ByteRange
    #: The file's SHA-256 as recorded (manifest, upload), for ``ETag`` and ``Digest``.
    sha256: str | None
    handle: IO[bytes] = field(repr=False)

    @property
    def status_code(self) -> int:
        """206 for a byte range, 200 for the whole file."""
        return 206 if self.range.partial else 200

    def headers(self, *, download: bool) -> dict[str, str]:
        """The response headers: length, range, and the recorded SHA-256 as ``ETag`` and
        as ``Digest`` (RFC 3230) / ``Repr-Digest`` (RFC 9530), both of the whole file.

        ``download`` adds ``Content-Disposition: attachment`` with the file's name.
        """
        headers = {"Accept-Ranges": "bytes", "Content-Length": str(self.range.length)}
        if self.sha256:
            encoded = base64.b64encode(bytes.fromhex(self.sha256)).decode("ascii")
            headers["ETag"] = f'"{self.sha256}"'
            headers["Digest"] = f"sha-256={encoded}"
            headers["Repr-Digest"] = f"sha-256=:{encoded}:"
        if self.range.partial:
            headers["Content-Range"] = self.range.content_range()
        if download:
            headers["Content-Disposition"] = f'attachment; filename="{self.name}"'
        return headers

    async def chunks(self) -> AsyncIterator[bytes]:
        """The range's bytes in chunks of at most 64 KiB; closes the file at the end."""
        try:
            remaining = self.range.length
            await asyncio.to_thread(self.handle.seek, self.range.first)
            while remaining > 0:
                data = await asyncio.to_thread(self.handle.read, min(CHUNK_BYTES, remaining))
                if not data:
                    break
                remaining -= len(data)
                yield data
        finally:
            self.close()

    async def read_all(self) -> bytes:
        """The whole range at once (small files, tests, the CLI)."""
        return b"".join([chunk async for chunk in self.chunks()])

    def close(self) -> None:
        """Close the handle (safe to call twice)."""
        self.handle.close()


def open_slice(path: Path, range_header: str | None) -> tuple[IO[bytes], ByteRange]:
    """Open ``path`` and read ``range_header`` against its size; the caller closes it."""
    handle = path.open("rb")
    try:
        size = os.fstat(handle.fileno()).st_size
        return handle, byte_range(range_header, size)
    except BaseException:
        handle.close()
        raise


__all__ = ["CHUNK_BYTES", "ByteRange", "OpenFile", "byte_range", "open_slice"]
