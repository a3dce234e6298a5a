"""Verifying an export file without a database (``ledgerflow audit verify --file``).

The file is read once to scan every chain (rows may come in any order; each chain must
start at seq 1 and have no gaps) and once more only when something needs a second look (a
broken chain to diagnose, a registered terminal head inside a chain). Strict by default:

* given a checkpoint (a file, or the folder of checkpoint files), every chain it records
  must be in the file and still hold its checkpointed head;
* when the file holds the chain registry, every registered request chain must be in the
  file and still reach its registered terminal head.

A missing chain is a problem (exit 1) unless ``partial`` says the export was filtered on
purpose; then what could not be checked is reported as notes, and gaps inside chains (rows
the filter left out) are notes too, while every row present is still hashed and linked to
its neighbours. The ``requests`` and ``state_transitions`` cross-checks need the database.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from app.audit.canonical import CHAIN_KEY, HASH, SEQ, RawRow, from_typed, typed_row
from app.audit.checkpoint import Checkpoint, CheckpointSet
from app.audit.checkpoint_verify import check_checkpoints
from app.audit.diagnose import diagnose
from app.audit.exceptions import BadCheckpoint
from app.audit.export import read_export
from app.audit.problems import Problem, Report
from app.audit.registry import SystemFacts
from app.audit.scan import Anchor, ChainScan

_SHOWN = 5


class _FileChain:
    """A chain read from a file in any order: rows are re-ordered by ``seq`` as they come."""

    __slots__ = ("pending", "scan")

    def __init__(self, chain_key: str, anchors: list[Anchor] | None) -> None:
        self.scan = ChainScan(chain_key, anchors)
        self.pending: dict[int, RawRow] = {}

    def feed(self, row: RawRow) -> None:
        # Rows of one chain written in the same transaction share occurred_at, so a
        # time-ordered export may hold them out of seq order: buffer until the next is in.
        self.pending[row[SEQ]] = row
        nxt = self.scan.last[0] + 1
        while nxt in self.pending and not self.scan.broken:
            self.scan.feed(self.pending.pop(nxt))
            nxt += 1
        if self.scan.broken:
            self.scan.rows += len(self.pending)
            self.pending.clear()


def _listed(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOWN])
    return shown + (f" and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else "")


def verify_rows_offline(
    rows: Iterable[RawRow],
    checkpoint: CheckpointSet | None = None,
    *,
    reread: Callable[[], Iterable[RawRow]] | None = None,
    hmac_key: str | None = None,
    allow_unsigned: bool = False,
    partial: bool = False,
) -> Report:
    """Verify raw rows read from an export file (see the module docstring).

    ``reread()`` reads the same rows again (for diagnosis); without it a broken chain is
    only named, not diagnosed.
    """
    report = Report()
    anchors: dict[str, list[Anchor]] = {}
    if checkpoint is not None:
        check = check_checkpoints(
            checkpoint.checkpoints,
            key=hmac_key,
            allow_unsigned=allow_unsigned,
            source=checkpoint.source,
            base=checkpoint.checkpoints[0].full_heads(),
            from_start=False,
        )
        check.heads = checkpoint.heads
        report.problems.extend(check.problems)
        report.notes.extend(check.notes)
        report.checkpoint = check.used
        anchors = check.anchors(checkpoint.newest.label())
    chains: dict[str, _FileChain] = {}
    system = SystemFacts()
    for row in rows:
        key = row[CHAIN_KEY]
        chain = chains.get(key)
        if chain is None:
            chain = chains[key] = _FileChain(key, anchors.get(key))
        chain.feed(row)
        system.feed(row)
    report.chains = len(chains)
    broken: set[str] = set()
    for key, chain in chains.items():
        report.rows += chain.scan.rows + len(chain.pending)
        if chain.pending or not chain.scan.finish(None, head_known=False):
            broken.add(key)
    missing = sorted(set(anchors) - set(chains))
    _missing(report, missing, "the checkpoint records", partial)
    lookups: dict[str, list[Anchor]] = defaultdict(list)
    if system.registered is not None:
        unseen = sorted(set(system.registered.opened) - set(chains))
        _missing(report, unseen, "the chain registry records", partial)
        for key, recorded in system.registered.anchors().items():
            chain = chains.get(key)
            if chain is not None and key not in broken:
                lookups[key].extend(recorded)
    elif not partial:
        report.notes.append(
            "the file holds no chain registry rows: chains erased before the export cannot be "
            "named (export everything, or verify against the database)"
        )
    if checkpoint is None:
        report.notes.append(
            "no checkpoint given: rows deleted from the end of a chain cannot be detected "
            "offline (give --checkpoint)"
        )
    report.notes.append(
        "offline: the requests and state_transitions tables are not in the file (verify "
        "against the database to cross-check them)"
    )
    report.problems.extend(_second_look(chains, broken, lookups, anchors, reread, partial, report))
    return report


def _missing(report: Report, keys: list[str], recorder: str, partial: bool) -> None:
    if not keys:
        return
    if partial:
        report.notes.append(
            f"not checked (--partial): {len(keys)} chain(s) {recorder} are not in the file: "
            + _listed(keys)
        )
        return
    report.problems.extend(
        Problem(
            key,
            None,
            None,
            "chain_missing",
            f"{recorder} this chain but the file has none of its rows (give --partial if the "
            "export was filtered on purpose)",
        )
        for key in keys
    )


def _second_look(
    chains: dict[str, _FileChain],
    broken: set[str],
    lookups: dict[str, list[Anchor]],
    anchors: dict[str, list[Anchor]],
    reread: Callable[[], Iterable[RawRow]] | None,
    partial: bool,
    report: Report,
) -> list[Problem]:
    """Diagnose broken chains and check registered heads that are not a chain's last row."""
    problems: list[Problem] = []
    needed: dict[str, dict[int, str | None]] = {}
    for key, recorded in lookups.items():
        last_seq, last_hash = chains[key].scan.last
        for anchor in recorded:
            if anchor.seq == last_seq:
                if anchor.hash != last_hash:
                    problems.append(_registry_mismatch(key, anchor, last_hash))
            elif anchor.seq > last_seq:
                problems.append(_cut_back(key, anchor, last_seq))
            else:
                needed.setdefault(key, {})[anchor.seq] = None
    if not broken and not needed:
        return problems
    if reread is None:
        problems.extend(
            Problem(key, None, None, "broken_link", "the chain does not verify") for key in broken
        )
        return problems
    collected: dict[str, list[RawRow]] = defaultdict(list)
    for row in reread():
        key = row[CHAIN_KEY]
        if key in broken:
            collected[key].append(row)
        elif key in needed and row[SEQ] in needed[key]:
            needed[key][row[SEQ]] = row[HASH]
    for key, seqs in needed.items():
        for anchor in lookups[key]:
            found = seqs.get(anchor.seq)
            if anchor.seq in seqs and found != anchor.hash:
                problems.append(_registry_mismatch(key, anchor, found))
    for key in sorted(broken):
        typed = [typed_row(r) for r in collected[key]]
        found_problems = diagnose(key, typed, None, anchors=anchors.get(key, []), head_known=False)
        if partial:
            gaps = [p for p in found_problems if p.kind == "deleted"]
            if gaps:
                report.notes.append(
                    f"{key}: {len(gaps)} gap(s) in the file (filtered out, --partial): "
                    "links across them not checked"
                )
            found_problems = [p for p in found_problems if p.kind != "deleted"]
        problems.extend(found_problems)
    return problems


def _cut_back(key: str, anchor: Anchor, last_seq: int) -> Problem:
    return Problem(
        key,
        None,
        anchor.seq,
        "deleted",
        f"the terminal head the chain registry recorded (seq {anchor.seq}) is gone: the chain "
        f"ends at seq {last_seq} (it was cut back)",
    )


def _registry_mismatch(key: str, anchor: Anchor, found: str | None) -> Problem:
    return Problem(
        key,
        None,
        anchor.seq,
        "registry_mismatch",
        f"the row at seq {anchor.seq} has hash {(found or '?')[:12]}…, not the terminal head "
        f"the chain registry recorded ({anchor.hash[:12]}…)",
    )


def _file_rows(path: Path) -> Iterator[RawRow]:
    return (from_typed(record.row()) for record in read_export(path))


def verify_file(
    path: Path,
    checkpoint: CheckpointSet | Checkpoint | None = None,
    *,
    hmac_key: str | None = None,
    allow_unsigned: bool = False,
    partial: bool = False,
) -> Report:
    """Verify the chains in an export file (``.jsonl``, ``.csv`` or ``.json``).

    ``checkpoint`` is what :func:`app.audit.checkpoint.load_checkpoints` read, or one
    checkpoint that carries every head (e.g. what ``AuditAccess.checkpoint`` returned).
    """
    if isinstance(checkpoint, Checkpoint):
        heads = checkpoint.full_heads()
        if heads is None:
            raise BadCheckpoint(f"--checkpoint: {checkpoint.label()} does not carry every head")
        checkpoint = CheckpointSet([checkpoint], heads, checkpoint.label())
    return verify_rows_offline(
        _file_rows(path),
        checkpoint,
        reread=lambda: _file_rows(path),
        hmac_key=hmac_key,
        allow_unsigned=allow_unsigned,
        partial=partial,
    )
