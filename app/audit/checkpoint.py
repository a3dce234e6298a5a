"""Checkpoints: chained, signed digests over every chain head, kept in and outside the database.

A checkpoint records the head ``(seq, hash)`` of every non-empty chain (request chains from
``requests.audit_seq/audit_head``; the system chain and the chain registry from
``audit_chains``), read in one statement so it is one consistent cut. Checkpoints form a
chain of their own:

* ``seq`` numbers them from 1 and ``prev_digest`` is the previous checkpoint's digest, so
  a deleted or edited checkpoint breaks the sequence or the link;
* ``heads`` stores only the heads that changed since the previous checkpoint (the first
  stores all), so an hourly checkpoint costs what changed in the hour, not the whole
  ledger; folding every checkpoint's ``heads`` in ``seq`` order gives the full set, and
  ``heads_digest`` is the digest of that full set, so the fold can be checked;
* ``digest`` is SHA-256 over the canonical JSON of ``{"version": 2, "seq", "prev_digest",
  "created_at", "created_by", "chain_count", "heads_digest", "heads": [[chain_key, seq,
  hash], ...]}`` (heads sorted by chain key), and ``signature`` is HMAC-SHA256 of the
  digest under ``AUDIT_HMAC_KEY``.

The file form (``audit checkpoint -o``, and what ``serve`` writes to ``CHECKPOINT_DIR``)
is the row plus, in ``all_heads``, the full set, so one file verifies an export offline.
Version 1 checkpoints (before chaining: full ``heads``, digest without ``seq``) still read
and verify.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from sqlalchemy import String, Uuid, cast, insert, null, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.chain import SYSTEM_CHAIN, digest, format_timestamp
from app.audit.exceptions import BadCheckpoint, CheckpointNotFound
from app.audit.scan import Head
from app.config import get_settings
from app.database import Database
from app.database.models import AuditChain, AuditCheckpoint, Request

#: 64 lower-case hex digits: a SHA-256 digest or an HMAC-SHA256 signature.
Hex64 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
HeadPair = tuple[Annotated[int, Field(ge=1)], Hex64]


def configured_hmac_key() -> str | None:
    """The HMAC key of the ``AUDIT_HMAC_KEY`` setting (``None`` when unset or empty)."""
    key = get_settings().audit_hmac_key
    return (key.get_secret_value() or None) if key is not None else None


def heads_list(heads: Mapping[str, Head]) -> list[list[Any]]:
    """Heads as the sorted ``[[chain_key, seq, hash], ...]`` list that digests hash."""
    return [[key, seq, hsh] for key, (seq, hsh) in sorted(heads.items())]


def heads_digest(heads: Mapping[str, Head]) -> str:
    """Digest of a full set of heads (``Checkpoint.heads_digest``)."""
    return digest(heads_list(heads))


class Checkpoint(BaseModel):
    """One checkpoint: its place in the checkpoint chain, its heads, digest and signature."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1, 2] = 2
    id: uuid.UUID
    #: Position in the checkpoint chain, from 1 (version 1 files have none).
    seq: Annotated[int, Field(ge=1)] | None = None
    #: The previous checkpoint's digest (``None`` for the first).
    prev_digest: Hex64 | None = None
    created_at: datetime
    created_by: str
    #: How many chains the full set holds.
    chain_count: Annotated[int, Field(ge=0)] | None = None
    #: Digest of the full set of heads after this checkpoint.
    heads_digest: Hex64 | None = None
    #: chain key → ``[seq, hash]``: heads changed since the previous checkpoint (version 1:
    #: every head).
    heads: dict[str, HeadPair]
    digest: Hex64
    signature: Hex64 | None = None
    #: The file form only: every head (the fold of this and all earlier checkpoints).
    all_heads: dict[str, HeadPair] | None = None

    def content(self) -> dict[str, Any]:
        """What :attr:`digest` is computed over."""
        body: dict[str, Any] = {
            "version": self.version,
            "created_at": format_timestamp(self.created_at),
            "created_by": self.created_by,
            "heads": heads_list(self.heads),
        }
        if self.version >= 2:
            body.update(
                seq=self.seq,
                prev_digest=self.prev_digest,
                chain_count=self.chain_count,
                heads_digest=self.heads_digest,
            )
        return body

    def computed_digest(self) -> str:
        """The digest re-computed from the content (differs from :attr:`digest` if edited)."""
        return digest(self.content())

    def signature_ok(self, key: str) -> bool:
        """True when :attr:`signature` is the HMAC of the digest under ``key``."""
        return self.signature is not None and hmac.compare_digest(
            self.signature, sign(self.digest, key)
        )

    def full_heads(self) -> dict[str, Head] | None:
        """Every head as of this checkpoint, when it carries them (else ``None``)."""
        if self.all_heads is not None:
            return dict(self.all_heads)
        if self.version == 1 or self.seq == 1:
            return dict(self.heads)
        return None

    def label(self) -> str:
        """``checkpoint #7`` (or the digest's start for a version 1 checkpoint)."""
        return f"checkpoint #{self.seq}" if self.seq else f"checkpoint {self.digest[:12]}…"

    def describe(self, source: str) -> dict[str, Any]:
        """What a report says about the checkpoint it used."""
        return {
            "id": str(self.id),
            "seq": self.seq,
            "digest": self.digest,
            "created_at": format_timestamp(self.created_at),
            "created_by": self.created_by,
            "chains": self.chain_count if self.chain_count is not None else len(self.heads),
            "signed": self.signature is not None,
            "source": source,
        }

    def to_file(self, *, full: bool = True) -> str:
        """The JSON file form (what ``--output`` writes and ``--checkpoint FILE`` reads).

        ``full=False`` leaves out ``all_heads`` (a scheduled file: its folder holds the rest).
        """
        exclude = None if full else {"all_heads"}
        return self.model_dump_json(indent=2, exclude_none=True, exclude=exclude) + "\n"


def sign(checkpoint_digest_hex: str, key: str) -> str:
    """HMAC-SHA256 of the digest under ``key``, hex."""
    return hmac.new(key.encode(), checkpoint_digest_hex.encode(), hashlib.sha256).hexdigest()


# --------------------------------------------------------------------------- the database


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


def _from_row(row: AuditCheckpoint) -> Checkpoint:
    return Checkpoint(
        version=row.version,
        id=row.id,
        seq=row.seq,
        prev_digest=row.prev_digest,
        created_at=row.created_at,
        created_by=row.created_by,
        chain_count=row.chain_count if row.version >= 2 else None,
        heads_digest=row.heads_digest,
        heads={k: (int(v[0]), str(v[1])) for k, v in row.heads.items()},
        digest=row.digest,
        signature=row.signature,
    )


async def stored_checkpoints(session: AsyncSession) -> list[Checkpoint]:
    """Every stored checkpoint, in ``seq`` order (a small table: one row per checkpoint).

    A row that no longer validates (an edited digest of the wrong form) is read as it is
    where possible; one that cannot be read at all is skipped (its gap is then named).
    """
    rows = (await session.execute(select(AuditCheckpoint).order_by(AuditCheckpoint.seq))).scalars()
    found = []
    for row in rows:
        try:
            found.append(_from_row(row))
        except ValidationError:
            found.append(_unvalidated(row))
    return found


def _unvalidated(row: AuditCheckpoint) -> Checkpoint:
    # Edited beyond the model's constraints: keep what is there so its digest fails.
    return Checkpoint.model_construct(
        version=2 if row.version != 1 else 1,
        id=row.id,
        seq=row.seq,
        prev_digest=row.prev_digest,
        created_at=row.created_at,
        created_by=row.created_by,
        chain_count=row.chain_count,
        heads_digest=row.heads_digest,
        heads={str(k): (v[0], v[1]) for k, v in dict(row.heads or {}).items()},
        digest=str(row.digest),
        signature=row.signature,
        all_heads=None,
    )


def fold(checkpoints: Iterable[Checkpoint]) -> dict[str, Head]:
    """The full set of heads after ``checkpoints`` (in ``seq`` order)."""
    heads: dict[str, Head] = {}
    for checkpoint in checkpoints:
        if checkpoint.version == 1:
            heads = dict(checkpoint.heads)
        else:
            heads.update(checkpoint.heads)
    return heads


async def create_checkpoint(
    session: AsyncSession, actor: str, now: datetime, key: str | None
) -> Checkpoint:
    """Store the next checkpoint (changed heads only) and return it in its file form.

    The system chain's head row is locked first, so checkpoints are taken one at a time
    (their ``seq`` follows on) and the caller's ``audit_accessed`` record, appended to the
    system chain in the same transaction, comes right after the head this one records.
    """
    await session.execute(
        select(AuditChain.seq).where(AuditChain.chain_key == SYSTEM_CHAIN).with_for_update()
    )
    earlier = await stored_checkpoints(session)
    previous = earlier[-1] if earlier else None
    before = fold(earlier)
    current = await read_heads(session)
    changed = {k: v for k, v in current.items() if before.get(k) != v}
    after = {**before, **changed}
    seq = (previous.seq or len(earlier)) + 1 if previous is not None else 1
    draft = Checkpoint(
        id=uuid.uuid4(),
        seq=seq,
        prev_digest=previous.digest if previous is not None else None,
        created_at=now,
        created_by=actor,
        chain_count=len(after),
        heads_digest=heads_digest(after),
        heads=changed,
        digest="0" * 64,
    )
    found = draft.computed_digest()
    checkpoint = draft.model_copy(
        update={"digest": found, "signature": sign(found, key) if key else None, "all_heads": after}
    )
    await session.execute(
        insert(AuditCheckpoint).values(
            id=checkpoint.id,
            seq=seq,
            version=2,
            prev_digest=checkpoint.prev_digest,
            created_at=now,
            created_by=actor,
            chain_count=len(after),
            heads_digest=checkpoint.heads_digest,
            digest=found,
            signature=checkpoint.signature,
            heads={k: list(v) for k, v in changed.items()},
        )
    )
    return checkpoint


async def find_checkpoint(session: AsyncSession, found_digest: str) -> Checkpoint:
    """The stored checkpoint with this digest, with every head it implies (``all_heads``)."""
    stored = await stored_checkpoints(session)
    for index, checkpoint in enumerate(stored):
        if checkpoint.digest == found_digest.lower():
            return checkpoint.model_copy(update={"all_heads": fold(stored[: index + 1])})
    raise CheckpointNotFound(f"--checkpoint: no checkpoint has digest {found_digest}")


async def load_checkpoint(database: Database, found_digest: str) -> Checkpoint:
    """The stored checkpoint with this digest, with every head it implies (one read)."""
    async with database.read_session() as session:
        return await find_checkpoint(session, found_digest)


# --------------------------------------------------------------------------- files


def read_checkpoint_file(path: Path) -> Checkpoint:
    """Load one checkpoint file (``audit checkpoint -o`` or ``CHECKPOINT_DIR``).

    Anything that is not a checkpoint file (not JSON, a digest of the wrong length, a
    missing field) is a :class:`BadCheckpoint` naming the file and the problem.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadCheckpoint(f"--checkpoint: cannot read {path} ({exc.strerror})") from exc
    except UnicodeDecodeError:
        raise BadCheckpoint(f"--checkpoint: {path} is not a text file") from None
    try:
        data: Any = json.loads(text)
    except ValueError as exc:
        raise BadCheckpoint(f"--checkpoint: {path} is not JSON ({exc})") from None
    try:
        return Checkpoint.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "file"
        raise BadCheckpoint(
            f"--checkpoint: {path} is not a checkpoint file ({where}: {first['msg']})"
        ) from None


@dataclass(frozen=True)
class CheckpointSet:
    """Checkpoints read from a file or a folder, newest last, with the heads they imply."""

    checkpoints: list[Checkpoint]
    #: Every head as of the newest checkpoint.
    heads: dict[str, Head]
    source: str

    @property
    def newest(self) -> Checkpoint:
        """The checkpoint verification is held to."""
        return self.checkpoints[-1]


def load_checkpoints(path: Path) -> CheckpointSet:
    """A checkpoint file, or a folder of them (``CHECKPOINT_DIR``) folded in ``seq`` order.

    A single file must carry its full set of heads (``all_heads``, or be the first or a
    version 1 checkpoint); a folder must hold an unbroken run of checkpoints from one that
    does. Bad input is a :class:`BadCheckpoint`.
    """
    if path.is_dir():
        files = sorted(p for p in path.glob("*.json") if p.is_file())
        if not files:
            raise BadCheckpoint(f"--checkpoint: {path} holds no checkpoint files (*.json)")
        loaded = sorted((read_checkpoint_file(p) for p in files), key=lambda c: c.seq or 0)
        start = max((i for i, c in enumerate(loaded) if c.full_heads() is not None), default=None)
        if start is None:
            raise BadCheckpoint(
                f"--checkpoint: no checkpoint in {path} carries every head (the first "
                "checkpoint, or one written by `audit checkpoint -o`)"
            )
        chosen = loaded[start:]
        base = chosen[0].full_heads() or {}
        return CheckpointSet(chosen, {**base, **fold(chosen[1:])}, str(path))
    checkpoint = read_checkpoint_file(path)
    heads = checkpoint.full_heads()
    if heads is None:
        raise BadCheckpoint(
            f"--checkpoint: {path} holds only the heads changed since checkpoint "
            f"#{(checkpoint.seq or 1) - 1}: give the folder of checkpoint files "
            "(CHECKPOINT_DIR) or a file from `audit checkpoint -o`"
        )
    return CheckpointSet([checkpoint], heads, str(path))


def looks_like_digest(value: str) -> bool:
    """True for 64 hex digits (a digest rather than a file name)."""
    return len(value) == 64 and all(c in "0123456789abcdefABCDEF" for c in value)
