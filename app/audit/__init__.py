"""The audit trail: typed events, hash chains; the only way audit rows are written and read.

Writing: the engine appends to request chains (:class:`ChainHead`), :mod:`app.audit.system`
to the system chain. Reading: :class:`AuditAccess` (query, trail, export, verify,
checkpoint), each call itself audited; :func:`verify_file` checks an export offline.
"""

from app.audit.access import AuditAccess, record_access
from app.audit.chain import GENESIS, SYSTEM_CHAIN, ChainHead, canonical_json, digest, row_hash
from app.audit.checkpoint import Checkpoint, read_checkpoint_file
from app.audit.events import EVENT_ADAPTER, EVENT_TYPES, AuditEvent, parse_event
from app.audit.exceptions import (
    AuditError,
    BadExportFile,
    CheckpointNotFound,
    CorruptRow,
    InvalidFilter,
)
from app.audit.export import FORMATS, read_export, render, write_export
from app.audit.fhir import to_fhir
from app.audit.offline import verify_file
from app.audit.query import AuditFilter, AuditPage
from app.audit.records import AuditRecord
from app.audit.verify import Problem, Report

__all__ = [
    "EVENT_ADAPTER",
    "EVENT_TYPES",
    "FORMATS",
    "GENESIS",
    "SYSTEM_CHAIN",
    "AuditAccess",
    "AuditError",
    "AuditEvent",
    "AuditFilter",
    "AuditPage",
    "AuditRecord",
    "BadExportFile",
    "ChainHead",
    "Checkpoint",
    "CheckpointNotFound",
    "CorruptRow",
    "InvalidFilter",
    "Problem",
    "Report",
    "canonical_json",
    "digest",
    "parse_event",
    "read_checkpoint_file",
    "read_export",
    "record_access",
    "render",
    "row_hash",
    "to_fhir",
    "verify_file",
    "write_export",
]
