"""Errors of the results service layer (recordings, transcripts, deliveries).

Tree::

    ResultsError
    ├── Forbidden              the caller's role may not do this (HTTP 403)
    ├── NotReady               nothing to read yet: no transcript, no delivery (409)
    ├── Gone                   retention purged it: says when and why (410)
    ├── VersionRequired        a correction without the version it replaces (428)
    ├── VersionMismatch        the transcript changed since that version (412)
    ├── TextTooLarge           a correction longer than TRANSCRIPT_MAX_CHARS (413)
    ├── RangeNotSatisfiable    a byte range outside the file, or not one we read (416)
    └── FileCorrupt            a stored file no longer matches its record (500)

A missing (or someone else's) recording or request is
:class:`app.orchestrator.exceptions.NotFound` (404), the same answer for both.
"""

from __future__ import annotations

from datetime import datetime

from app.exceptions import LedgerflowError


class ResultsError(LedgerflowError):
    """The results could not be read or changed."""

    code = "results_error"


class Forbidden(ResultsError):
    """Your role may not do this."""

    code = "forbidden"


class NotReady(ResultsError):
    """There is nothing to read yet."""

    code = "not_ready"


class Gone(ResultsError):
    """Retention purged this data; its digests stay in the audit trail."""

    code = "gone"

    def __init__(
        self,
        message: str | None = None,
        *,
        purged_at: datetime | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        #: When the data was purged (UTC), if known.
        self.purged_at = purged_at
        #: Why, e.g. ``retention: delivery files kept 180 days``.
        self.reason = reason


class VersionRequired(ResultsError):
    """Say which transcript version you corrected (``If-Match: "<version>"``)."""

    code = "precondition_required"
    field = "If-Match"


class VersionMismatch(ResultsError):
    """The transcript changed since the version you corrected; read it again."""

    code = "version_mismatch"
    field = "If-Match"

    def __init__(self, message: str | None = None, *, current: int) -> None:
        super().__init__(message)
        #: The transcript's current version.
        self.current = current


class TextTooLarge(ResultsError):
    """The corrected text is too long."""

    code = "content_too_large"
    field = "text"


class RangeNotSatisfiable(ResultsError):
    """The byte range is outside the file or not one this server reads."""

    code = "range_not_satisfiable"
    field = "Range"

    def __init__(self, message: str | None = None, *, size: int) -> None:
        super().__init__(message)
        #: The file's size, for ``Content-Range: bytes */<size>``.
        self.size = size


class FileCorrupt(ResultsError):
    """A stored file no longer matches what was recorded about it."""

    code = "file_corrupt"


__all__ = [
    "FileCorrupt",
    "Forbidden",
    "Gone",
    "NotReady",
    "RangeNotSatisfiable",
    "ResultsError",
    "TextTooLarge",
    "VersionMismatch",
    "VersionRequired",
]
