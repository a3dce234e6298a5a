"""The audit trail: typed events, hash chains; the only way audit rows are written and read."""

from app.audit.chain import GENESIS, SYSTEM_CHAIN, ChainHead, canonical_json, digest, row_hash
from app.audit.events import EVENT_ADAPTER, EVENT_TYPES, AuditEvent, parse_event

__all__ = [
    "EVENT_ADAPTER",
    "EVENT_TYPES",
    "GENESIS",
    "SYSTEM_CHAIN",
    "AuditEvent",
    "ChainHead",
    "canonical_json",
    "digest",
    "parse_event",
    "row_hash",
]
