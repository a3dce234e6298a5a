"""Results reach the people who asked: recordings and transcripts, research deliveries.

The service layer the HTTP API, the CLI and the web console share: each call takes the
:class:`~app.auth.Principal` asking, applies the same role rules (:mod:`.access`), and
records every read of clinical content or delivered data in the audit trail before
handing it out.
"""

from app.results.deliveries import Deliveries, file_url
from app.results.exceptions import (
    FileCorrupt,
    Forbidden,
    Gone,
    NotReady,
    RangeNotSatisfiable,
    ResultsError,
    TextTooLarge,
    VersionMismatch,
    VersionRequired,
)
from app.results.files import ByteRange, OpenFile, byte_range
from app.results.models import (
    DeliveryFile,
    DeliveryManifest,
    DictionaryEntry,
    RecordingPublic,
    RecordingsPage,
    RecordingSummary,
    TranscriptCorrection,
    TranscriptPublic,
    TranscriptVersionInfo,
)
from app.results.recordings import Recordings

__all__ = [
    "ByteRange",
    "Deliveries",
    "DeliveryFile",
    "DeliveryManifest",
    "DictionaryEntry",
    "FileCorrupt",
    "Forbidden",
    "Gone",
    "NotReady",
    "OpenFile",
    "RangeNotSatisfiable",
    "RecordingPublic",
    "RecordingSummary",
    "Recordings",
    "RecordingsPage",
    "ResultsError",
    "TextTooLarge",
    "TranscriptCorrection",
    "TranscriptPublic",
    "TranscriptVersionInfo",
    "VersionMismatch",
    "VersionRequired",
    "byte_range",
    "file_url",
]
