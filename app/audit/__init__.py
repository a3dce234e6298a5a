"""The audit trail: typed events, hash chains; the only way audit rows are written and read.

Writing: the engine appends to request chains (:class:`ChainHead`), :mod:`app.audit.system`
to the system chain. Reading: :class:`AuditAccess` (query, trail, export, verify,
checkpoint), each call itself audited; :func:`verify_file` checks an export offline.

Names are imported on first use (PEP 562), so that importing one submodule (the engine
needs only ``app.audit.chain`` and ``app.audit.events``) does not load the readers,
exporters and verifiers, and a short command starts quickly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.audit.access import AuditAccess, record_access
    from app.audit.chain import GENESIS, SYSTEM_CHAIN, ChainHead, canonical_json, digest, row_hash
    from app.audit.checkpoint import (
        Checkpoint,
        CheckpointSet,
        load_checkpoints,
        read_checkpoint_file,
    )
    from app.audit.events import EVENT_ADAPTER, EVENT_TYPES, AuditEvent, parse_event
    from app.audit.exceptions import (
        AuditError,
        BadCheckpoint,
        BadExportFile,
        CheckpointNotFound,
        CorruptRow,
        InvalidFilter,
    )
    from app.audit.export import FORMATS, read_export, render, write_export
    from app.audit.fhir import to_fhir
    from app.audit.offline import verify_file
    from app.audit.problems import PROBLEM_KINDS, Problem, Report
    from app.audit.query import AuditFilter, AuditPage
    from app.audit.records import AuditRecord

#: Each public name → the submodule that defines it.
_WHERE: dict[str, str] = {
    "AuditAccess": "app.audit.access",
    "AuditError": "app.audit.exceptions",
    "AuditEvent": "app.audit.events",
    "AuditFilter": "app.audit.query",
    "AuditPage": "app.audit.query",
    "AuditRecord": "app.audit.records",
    "BadCheckpoint": "app.audit.exceptions",
    "BadExportFile": "app.audit.exceptions",
    "ChainHead": "app.audit.chain",
    "Checkpoint": "app.audit.checkpoint",
    "CheckpointNotFound": "app.audit.exceptions",
    "CheckpointSet": "app.audit.checkpoint",
    "CorruptRow": "app.audit.exceptions",
    "EVENT_ADAPTER": "app.audit.events",
    "EVENT_TYPES": "app.audit.events",
    "FORMATS": "app.audit.export",
    "GENESIS": "app.audit.chain",
    "InvalidFilter": "app.audit.exceptions",
    "PROBLEM_KINDS": "app.audit.problems",
    "Problem": "app.audit.problems",
    "Report": "app.audit.problems",
    "SYSTEM_CHAIN": "app.audit.chain",
    "canonical_json": "app.audit.chain",
    "digest": "app.audit.chain",
    "load_checkpoints": "app.audit.checkpoint",
    "parse_event": "app.audit.events",
    "read_checkpoint_file": "app.audit.checkpoint",
    "read_export": "app.audit.export",
    "record_access": "app.audit.access",
    "render": "app.audit.export",
    "row_hash": "app.audit.chain",
    "to_fhir": "app.audit.fhir",
    "verify_file": "app.audit.offline",
    "write_export": "app.audit.export",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "EVENT_ADAPTER",
    "EVENT_TYPES",
    "FORMATS",
    "GENESIS",
    "PROBLEM_KINDS",
    "SYSTEM_CHAIN",
    "AuditAccess",
    "AuditError",
    "AuditEvent",
    "AuditFilter",
    "AuditPage",
    "AuditRecord",
    "BadCheckpoint",
    "BadExportFile",
    "ChainHead",
    "Checkpoint",
    "CheckpointNotFound",
    "CheckpointSet",
    "CorruptRow",
    "InvalidFilter",
    "Problem",
    "Report",
    "canonical_json",
    "digest",
    "load_checkpoints",
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
