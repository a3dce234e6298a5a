"""Verifying checkpoints themselves, before chains are held to them.

A run of checkpoints (the stored ones, or files) is sound when each one's content matches
its digest, their ``seq`` follows on without gaps, each links to the one before by
``prev_digest``, the newest's heads add up (the fold of every ``heads`` matches its
``heads_digest``) and, with ``AUDIT_HMAC_KEY`` set, the newest is signed with it (and every
signed one verifies). The stored checkpoints are also held to the system chain: each
``audit_accessed`` record of a checkpoint names a stored digest, and each stored
checkpoint has its record.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.audit.checkpoint import Checkpoint, fold, heads_digest
from app.audit.problems import Kind, Problem
from app.audit.scan import Anchor, Head

CHECKPOINTS = "checkpoints"


def _problem(checkpoint: Checkpoint | None, kind: Kind, detail: str) -> Problem:
    row_id = checkpoint.id if checkpoint is not None else None
    seq = checkpoint.seq if checkpoint is not None else None
    return Problem(CHECKPOINTS, row_id, seq, kind, detail, table="audit_checkpoints")


def _run(first: int, last: int) -> str:
    return f"#{first}" if first == last else f"#{first}..#{last}"


@dataclass
class CheckpointCheck:
    """What checking a run of checkpoints found, and the heads the newest one holds."""

    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    heads: dict[str, Head] = field(default_factory=dict)
    used: dict[str, Any] | None = None

    def anchors(self, source: str) -> dict[str, list[Anchor]]:
        """The newest checkpoint's heads as anchors, by chain key."""
        return {key: [Anchor(seq, hsh, source)] for key, (seq, hsh) in self.heads.items()}


def check_checkpoints(
    checkpoints: Sequence[Checkpoint],
    *,
    key: str | None,
    allow_unsigned: bool = False,
    source: str = "database",
    base: dict[str, Head] | None = None,
    from_start: bool = True,
) -> CheckpointCheck:
    """Check a run of checkpoints in ``seq`` order; the newest is the one chains are held to.

    ``base`` is the full set of heads the first one builds on when it is not the first
    checkpoint ever (a folder that starts at a full checkpoint); ``from_start`` says the run
    must begin at ``#1`` (the stored checkpoints must).
    """
    check = CheckpointCheck()
    if not checkpoints:
        return check
    previous: Checkpoint | None = None
    for checkpoint in checkpoints:
        check.problems.extend(_check_one(checkpoint, previous, from_start=from_start))
        previous = checkpoint
    newest = checkpoints[-1]
    heads = {**(base or {}), **fold(checkpoints)} if base else fold(checkpoints)
    if newest.all_heads is not None:
        heads = dict(newest.all_heads)
    if newest.version >= 2 and newest.heads_digest and heads_digest(heads) != newest.heads_digest:
        check.problems.append(
            _problem(
                newest,
                "checkpoint_mismatch",
                f"{newest.label()}: the heads of the checkpoints up to it do not add up to its "
                "heads_digest (a checkpoint's heads were changed or removed)",
            )
        )
    check.problems.extend(_check_signature(newest, key, allow_unsigned, check.notes))
    for other in checkpoints[:-1]:
        if other.signature is not None and key is not None and not other.signature_ok(key):
            check.problems.append(
                _problem(other, "checkpoint_mismatch", f"{other.label()}: signature fails")
            )
    check.heads = heads
    check.used = newest.describe(source)
    return check


def _check_one(
    checkpoint: Checkpoint, previous: Checkpoint | None, *, from_start: bool
) -> list[Problem]:
    problems = []
    label = checkpoint.label()
    if checkpoint.computed_digest() != checkpoint.digest:
        problems.append(
            _problem(
                checkpoint,
                "checkpoint_mismatch",
                f"{label} ({checkpoint.digest[:12]}…): its content does not match its digest "
                "(edited)",
            )
        )
    if checkpoint.all_heads is not None and checkpoint.heads_digest is not None:
        if heads_digest(checkpoint.all_heads) != checkpoint.heads_digest:
            problems.append(
                _problem(
                    checkpoint,
                    "checkpoint_mismatch",
                    f"{label}: its all_heads do not match its heads_digest (edited)",
                )
            )
    seq = checkpoint.seq
    if seq is None:
        return problems
    expected = (previous.seq or 0) + 1 if previous is not None else (1 if from_start else seq)
    if seq > expected:
        problems.append(
            _problem(
                checkpoint,
                "checkpoint_deleted",
                f"checkpoint {_run(expected, seq - 1)} missing before {label}",
            )
        )
    elif (
        previous is not None
        and seq == expected
        and checkpoint.version >= 2
        and checkpoint.prev_digest != previous.digest
    ):
        problems.append(
            _problem(
                checkpoint,
                "checkpoint_mismatch",
                f"{label} does not link to {previous.label()} (its prev_digest is "
                f"{(checkpoint.prev_digest or 'none')[:12]}…, that checkpoint's digest "
                f"{previous.digest[:12]}…)",
            )
        )
    return problems


def _check_signature(
    checkpoint: Checkpoint, key: str | None, allow_unsigned: bool, notes: list[str]
) -> list[Problem]:
    label = checkpoint.label()
    if checkpoint.signature is None:
        if key is None:
            notes.append(f"{label} is not signed (no AUDIT_HMAC_KEY)")
            return []
        if allow_unsigned:
            notes.append(f"{label} is not signed; accepted because of --allow-unsigned")
            return []
        return [
            _problem(
                checkpoint,
                "checkpoint_unsigned",
                f"{label} is not signed but AUDIT_HMAC_KEY is set (--allow-unsigned accepts it)",
            )
        ]
    if key is None:
        notes.append(f"{label} signature not checked (no AUDIT_HMAC_KEY)")
        return []
    if not checkpoint.signature_ok(key):
        return [
            _problem(
                checkpoint,
                "checkpoint_mismatch",
                f"{label}: signature does not match AUDIT_HMAC_KEY",
            )
        ]
    notes.append(f"{label} signature OK")
    return []


def check_recorded(stored: Iterable[Checkpoint], recorded: Iterable[str]) -> list[Problem]:
    """Stored checkpoints against the checkpoint digests the system chain recorded."""
    by_digest = {c.digest: c for c in stored}
    named = set(recorded)
    problems = [
        _problem(
            None,
            "checkpoint_deleted",
            f"the system chain records checkpoint {d[:12]}… but no audit_checkpoints row has it",
        )
        for d in sorted(named - set(by_digest))
    ]
    problems += [
        _problem(
            by_digest[d],
            "checkpoint_mismatch",
            f"{by_digest[d].label()} ({d[:12]}…) is not recorded on the system chain "
            "(inserted, or its digest was edited)",
        )
        for d in sorted(set(by_digest) - named)
    ]
    return problems
