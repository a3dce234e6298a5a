"""Checkpoints: a digest over every chain head, to be kept outside the database.

A checkpoint lists each non-empty chain's head ``(seq, hash)`` (request chains from
``requests.audit_seq/audit_head``, the system chain from ``audit_chains``), read in one
statement so it is one consistent cut. Its digest is SHA-256 over the canonical JSON of
``{"version", "created_at", "created_by", "heads": [[chain_key, seq, hash], ...]}`` (heads
sorted by chain key), optionally signed with HMAC-SHA256 under ``AUDIT_HMAC_KEY``. Print
the digest or save the file somewhere the database administrator cannot write: later,
``ledgerflow audit verify --checkpoint`` proves that every chain still contains the
checkpointed head at its seq, i.e. nothing before it was rewritten or truncated since.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy import String, Uuid, cast, insert, null, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.chain import digest, format_timestamp
from app.audit.exceptions import CheckpointNotFound
from app.audit.verify import Head
from app.config import get_settings
from app.database import Database
from app.database.models import AuditChain, AuditCheckpoint, Request


def configured_hmac_key() -> str | None:
    """The HMAC key of the ``AUDIT_HMAC_KEY`` setting (``None`` when unset or empty)."""
    key = get_settings().audit_hmac_key
    return (key.get_secret_value() or None) if key is not None else None


class Checkpoint(BaseModel):
    """A recorded set of chain heads with its digest and optional signature (the file form)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    id: uuid.UUID
    created_at: datetime
    created_by: str
    #: chain key → ``[seq, hash]`` of its head when the checkpoint was taken.
    heads: dict[str, tuple[int, str]]
    digest: str
    signature: str | None = None

    def computed_digest(self) -> str:
        """The digest re-computed from the content (differs from :attr:`digest` if edited)."""
        return checkpoint_digest(self.created_at, self.created_by, self.heads)

    def signature_ok(self, key: str) -> bool:
        """True when :attr:`signature` is the HMAC of the digest under ``key``."""
        return self.signature is not None and hmac.compare_digest(
            self.signature, sign(self.digest, key)
        )

    def to_file(self) -> str:
        """The JSON file form (what ``--output`` writes and ``--checkpoint FILE`` reads)."""
        return self.model_dump_json(indent=2) + "\n"


def checkpoint_digest(created_at: datetime, created_by: str, heads: dict[str, Head]) -> str:
    """SHA-256 over the canonical form of a checkpoint's content."""
    return digest(
        {
            "version": 1,
            "created_at": format_timestamp(created_at),
            "created_by": created_by,
            "heads": [[key, seq, hsh] for key, (seq, hsh) in sorted(heads.items())],
        }
    )


def sign(checkpoint_digest_hex: str, key: str) -> str:
    """HMAC-SHA256 of the digest under ``key``, hex."""
    return hmac.new(key.encode(), checkpoint_digest_hex.encode(), hashlib.sha256).hexdigest()


async def read_heads(session: AsyncSession) -> dict[str, Head]:
    """Every non-empty chain's head, in one statement (one snapshot on both backends).

    Reads ``requests`` (sequential scan: every request is a chain) and ``audit_chains``.
    """
    requests = select(
        Request.id.label("key"),
        cast(null(), String).label("name"),
        Request.audit_seq,
        Request.audit_head,
    ).where(Request.audit_seq > 0)
    chains = select(
        cast(null(), Uuid).label("key"),
        AuditChain.chain_key,
        AuditChain.seq,
        AuditChain.head_hash,
    ).where(AuditChain.seq > 0)
    heads: dict[str, Head] = {}
    for rid, name, seq, head in await session.execute(union_all(requests, chains)):
        heads[name if name is not None else str(rid)] = (seq, head)
    return heads


async def create_checkpoint(
    session: AsyncSession, actor: str, now: datetime, key: str | None
) -> Checkpoint:
    """Read every head, store an ``audit_checkpoints`` row and return the checkpoint."""
    heads = await read_heads(session)
    found = checkpoint_digest(now, actor, heads)
    checkpoint = Checkpoint(
        id=uuid.uuid4(),
        created_at=now,
        created_by=actor,
        heads=heads,
        digest=found,
        signature=sign(found, key) if key else None,
    )
    await session.execute(
        insert(AuditCheckpoint).values(
            id=checkpoint.id,
            created_at=now,
            created_by=actor,
            chain_count=len(heads),
            digest=found,
            signature=checkpoint.signature,
            heads={k: list(v) for k, v in heads.items()},
        )
    )
    return checkpoint


async def find_checkpoint(session: AsyncSession, found_digest: str) -> Checkpoint:
    """The stored checkpoint with this digest (a full scan of the small checkpoints table)."""
    row = (
        await session.execute(
            select(AuditCheckpoint).where(AuditCheckpoint.digest == found_digest.lower())
        )
    ).scalar_one_or_none()
    if row is None:
        raise CheckpointNotFound(f"--checkpoint: no checkpoint has digest {found_digest}")
    return Checkpoint(
        id=row.id,
        created_at=row.created_at,
        created_by=row.created_by,
        heads={k: (int(v[0]), str(v[1])) for k, v in row.heads.items()},
        digest=row.digest,
        signature=row.signature,
    )


async def load_checkpoint(database: Database, found_digest: str) -> Checkpoint:
    """The stored checkpoint with this digest, in its file form's model (one read)."""
    async with database.read_session() as session:
        return await find_checkpoint(session, found_digest)


def read_checkpoint_file(path: Path) -> Checkpoint:
    """Load a checkpoint file written by ``ledgerflow audit checkpoint --output``."""
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
        return Checkpoint.model_validate(data)
    except OSError as exc:
        raise CheckpointNotFound(f"--checkpoint: cannot read {path} ({exc.strerror})") from exc
    except (ValueError, ValidationError) as exc:
        raise CheckpointNotFound(f"--checkpoint: {path} is not a checkpoint file") from exc


def looks_like_digest(value: str) -> bool:
    """True for 64 hex digits (a digest rather than a file name)."""
    return len(value) == 64 and all(c in "0123456789abcdefABCDEF" for c in value)
