"""Streaming a multipart recording upload straight to ``AUDIO_DIR``, hashing as it goes.

The body is parsed chunk by chunk (python-multipart's push parser): small text fields are
kept in memory (each at most 1 KiB), the one ``file`` part is written to a temporary file
in the audio folder while its SHA-256 is computed, and the upload is refused with 413 as
soon as it passes ``AUDIO_MAX_BYTES``. The finished file is fsynced and renamed to
``uploads/<sha256>.wav`` (content-addressed, so the same recording uploaded twice is one
file and an idempotent retry names the same path). Nothing is left behind on failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from fastapi import Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from app.api.problems import ApiError

FILE_FIELD = "file"
UPLOAD_FOLDER = "uploads"
_MAX_FIELD_BYTES = 1024
_MAX_FIELDS = 8


@dataclass
class Upload:
    """A stored upload: its text fields and where the file now is (relative to the root)."""

    fields: dict[str, str]
    relative_path: str
    path: Path
    size: int
    sha256: str
    #: True when this call wrote the file (False: identical content was already stored).
    created: bool


@dataclass
class _Part:
    name: str | None = None
    filename: str | None = None
    data: bytearray = field(default_factory=bytearray)


class _Receiver:
    """Collects parser callbacks; file bytes are handed to the writer between writes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.fields: dict[str, str] = {}
        self.pending: list[bytes] = []
        self.file_parts = 0
        self.size = 0
        self.too_large = False
        self.error: ApiError | None = None
        self._part = _Part()
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, bytes] = {}

    def _fail(self, error: ApiError) -> None:
        if self.error is None:
            self.error = error

    def on_part_begin(self) -> None:
        self._part = _Part()
        self._headers = {}

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[bytes(self._header_name).decode("latin-1").lower()] = bytes(
            self._header_value
        )
        self._header_name.clear()
        self._header_value.clear()

    def on_headers_finished(self) -> None:
        disposition = self._headers.get("content-disposition", b"")
        _, options = parse_options_header(disposition)
        name = options.get(b"name")
        filename = options.get(b"filename")
        self._part.name = name.decode("utf-8", "replace") if name is not None else None
        self._part.filename = filename.decode("utf-8", "replace") if filename else None
        if self._part.name == FILE_FIELD:
            self.file_parts += 1
            if self.file_parts > 1:
                self._fail(ApiError(422, "invalid_request", "file: send one file", field="file"))

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.error is not None:
            return
        if self._part.name == FILE_FIELD:
            self.size += end - start
            if self.size > self.max_bytes:
                self.too_large = True
                self._fail(
                    ApiError(
                        413,
                        "content_too_large",
                        f"file: the recording is over the {self.max_bytes}-byte limit "
                        "(AUDIO_MAX_BYTES)",
                        field="file",
                    )
                )
                return
            self.pending.append(data[start:end])
            return
        self._part.data += data[start:end]
        if len(self._part.data) > _MAX_FIELD_BYTES:
            self._fail(
                ApiError(
                    422,
                    "invalid_request",
                    f"{self._part.name}: longer than {_MAX_FIELD_BYTES} bytes",
                    field=self._part.name or "body",
                )
            )

    def on_part_end(self) -> None:
        part = self._part
        if part.name is None or part.name == FILE_FIELD or self.error is not None:
            return
        if len(self.fields) >= _MAX_FIELDS:
            self._fail(ApiError(422, "invalid_request", "body: too many fields", field="body"))
            return
        try:
            self.fields[part.name] = part.data.decode("utf-8")
        except UnicodeDecodeError:
            self._fail(ApiError(422, "invalid_request", f"{part.name}: not UTF-8", field=part.name))


def _write(handle: IO[bytes], digest: hashlib._Hash, chunks: list[bytes]) -> None:
    for chunk in chunks:
        digest.update(chunk)
        handle.write(chunk)


def _finish(handle: IO[bytes], temp: Path, final: Path) -> bool:
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():
        temp.unlink()
        return False
    os.replace(temp, final)
    folder = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return True


async def receive_upload(request: Request, root: Path, max_bytes: int) -> Upload:
    """Stream the multipart body of ``request`` into ``root``; see the module docstring."""
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise ApiError(
            415,
            "unsupported_media_type",
            "body: send multipart/form-data with a 'file' part (audio/wav)",
            field="body",
        )
    receiver = _Receiver(max_bytes)
    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": receiver.on_part_begin,
            "on_header_field": receiver.on_header_field,
            "on_header_value": receiver.on_header_value,
            "on_header_end": receiver.on_header_end,
            "on_headers_finished": receiver.on_headers_finished,
            "on_part_data": receiver.on_part_data,
            "on_part_end": receiver.on_part_end,
        },
    )
    root.mkdir(parents=True, exist_ok=True)
    temp = root / f".upload-{uuid.uuid4().hex}.part"
    digest = hashlib.sha256()
    handle: IO[bytes] = await asyncio.to_thread(temp.open, "wb")
    try:
        async for chunk in request.stream():
            try:
                parser.write(chunk)
            except MultipartParseError as exc:
                raise ApiError(
                    400, "malformed_body", f"body: malformed multipart ({exc})", field="body"
                ) from None
            if receiver.error is not None:
                raise receiver.error
            if receiver.pending:
                chunks, receiver.pending = receiver.pending, []
                await asyncio.to_thread(_write, handle, digest, chunks)
        parser.finalize()
        if receiver.error is not None:
            raise receiver.error
        if receiver.file_parts == 0 or receiver.size == 0:
            raise ApiError(
                422, "invalid_request", "file: a non-empty 'file' part is required", field="file"
            )
        sha = digest.hexdigest()
        relative = f"{UPLOAD_FOLDER}/{sha}.wav"
        final = root / relative
        created = await asyncio.to_thread(_finish, handle, temp, final)
    except BaseException:
        handle.close()
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    return Upload(receiver.fields, relative, final, receiver.size, sha, created)
