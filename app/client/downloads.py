"""A downloaded file is written beside its final name, hashed as it streams, and put in
place only when its SHA-256 and size are the manifest's; otherwise it is removed."""

from __future__ import annotations

import hashlib
import os
from contextlib import suppress
from pathlib import Path
from typing import IO

from app.client.exceptions import DigestMismatch


def safe_name(name: str) -> str:
    """``name`` when it is a plain file name (a server's manifest never names a folder)."""
    if not name or name in (".", "..") or Path(name).name != name or "\\" in name:
        raise ValueError(f"refusing to write a delivery file named {name!r}")
    return name


class FileSink:
    """Receives one file's bytes into ``.<name>.part``, then checks and renames it.

    ``start`` may be called again after a failed attempt: the partial file starts over.
    """

    def __init__(self, target: Path, sha256: str, size: int | None = None) -> None:
        self.target = target
        self.sha256 = sha256.lower()
        self.size = size
        self.part = target.with_name(f".{target.name}.part")
        self._handle: IO[bytes] | None = None
        self._hash = hashlib.sha256()
        self._written = 0

    def start(self) -> None:
        """Open (or reopen, truncated) the partial file."""
        self.close()
        self._handle = self.part.open("wb")
        self._hash = hashlib.sha256()
        self._written = 0

    def write(self, chunk: bytes) -> None:
        """Append a chunk and hash it."""
        assert self._handle is not None, "start() first"
        self._handle.write(chunk)
        self._hash.update(chunk)
        self._written += len(chunk)

    def close(self) -> None:
        """Close the partial file (kept on disk until :meth:`commit` or :meth:`discard`)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def commit(self) -> Path:
        """Put the file in place if it matches; else remove it and raise
        :class:`DigestMismatch`."""
        self.close()
        actual = self._hash.hexdigest()
        if actual != self.sha256 or (self.size is not None and self._written != self.size):
            self.discard()
            size = "" if self.size is None else f", {self._written} bytes (manifest: {self.size})"
            raise DigestMismatch(
                f"{self.target.name}: SHA-256 {actual}{size} does not match the manifest's "
                f"{self.sha256}; the partial file was removed",
                path=self.target,
                expected=self.sha256,
                actual=actual,
            )
        os.replace(self.part, self.target)
        return self.target

    def discard(self) -> None:
        """Remove the partial file."""
        self.close()
        with suppress(FileNotFoundError):
            self.part.unlink()


__all__ = ["FileSink", "safe_name"]
