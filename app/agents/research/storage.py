"""Where a request's files live, and how they are written so that a re-run is harmless.

Layout under ``DELIVERY_DIR``::

    <request_id>/staging/<element>.csv     written by extraction, checked by QA
    <request_id>/<element>.csv             delivered files
    <request_id>/data_dictionary.csv
    <request_id>/manifest.json

Every file is written to a temporary name and renamed over the target (``os.replace`` is
atomic on POSIX and Windows), so a crash leaves either the old or the new file, never half
of one, and writing the same content twice gives the same file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

from pydantic import BaseModel

from app.config import Settings

STAGING = "staging"


class StoredFile(BaseModel):
    """A file by name, with its data-row count, size and SHA-256."""

    name: str
    rows: int
    bytes: int
    sha256: str


def delivery_folder(settings: Settings, request_id: uuid.UUID) -> Path:
    """The request's final delivery folder."""
    return settings.deliveries_path / str(request_id)


def staging_folder(settings: Settings, request_id: uuid.UUID) -> Path:
    """The request's staging folder (inside its delivery folder)."""
    return delivery_folder(settings, request_id) / STAGING


def staged_files(settings: Settings, request_id: uuid.UUID) -> list[Path]:
    """Everything in the request's staging folder (finished and half-written files)."""
    folder = staging_folder(settings, request_id)
    return [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []


def delivered_files(settings: Settings, request_id: uuid.UUID) -> list[Path]:
    """The files in the request's delivery folder, staging excluded."""
    folder = delivery_folder(settings, request_id)
    if not folder.is_dir():
        return []
    return [p for p in folder.iterdir() if p.is_file()]


def prune_empty(settings: Settings, request_id: uuid.UUID) -> None:
    """Remove the request's staging and delivery folders once they hold nothing."""
    for folder in (staging_folder(settings, request_id), delivery_folder(settings, request_id)):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence[str]]) -> bytes:
    """UTF-8 CSV with ``\\n`` line ends: the same rows always give the same bytes."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of ``data`` as 64 hex digits."""
    return hashlib.sha256(data).hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file, fsync'd, then renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def read_csv(data: bytes) -> tuple[list[str], list[list[str]]]:
    """Parse CSV bytes written by :func:`csv_bytes` into a header and rows."""
    reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""))
    rows = list(reader)
    if not rows:
        return [], []
    return rows[0], rows[1:]


__all__ = [
    "STAGING",
    "StoredFile",
    "csv_bytes",
    "delivered_files",
    "delivery_folder",
    "prune_empty",
    "read_csv",
    "sha256_hex",
    "staged_files",
    "staging_folder",
    "write_atomic",
]
