"""Re-compute hash chains and name every broken link.

Verification runs in two passes. The **scan** streams every chain in ``seq`` order and
keeps only the previous row's hash per chain: a row is fine when its content hashes to its
``hash``, its ``seq`` follows on and its ``prev_hash`` is the previous row's ``hash``; a
chain is fine when its last row is the head recorded on the request row (or in
``audit_chains``) and, given a checkpoint, it still holds the checkpointed head. Chains that
fail are then **diagnosed** in memory (only those; a clean database costs one pass) and each
problem is named with the row ids involved:

* ``modified`` — the row's content no longer matches its hash;
* ``reordered`` — the row's content matches its hash at another ``seq`` (its ``seq`` was
  changed: a swap names both rows);
* ``deleted`` — ``seq`` values are missing inside the chain (named by the row after the gap)
  or at its end (the head says the chain is longer), or a checkpointed row is gone;
* ``inserted`` — a row that no other row links to, a row past the chain head, or a chain
  with no head at all;
* ``broken_link`` — two neighbouring rows that do not link and are not explained above
  (one of them was re-hashed);
* ``head_mismatch`` — the chain's last row is not the recorded head;
* ``checkpoint_mismatch`` — the row at a checkpointed ``seq`` is not the checkpointed one.

The hashes are re-computed with :func:`app.audit.chain.row_hash`, the same function that
wrote them, so a database and an export file verify identically.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.chain import GENESIS, SYSTEM_CHAIN, row_hash
from app.audit.exceptions import InvalidFilter
from app.database.models import AuditChain, AuditLog, Request

Kind = Literal[
    "modified",
    "reordered",
    "deleted",
    "inserted",
    "broken_link",
    "head_mismatch",
    "checkpoint_mismatch",
]
#: A chain's tip: ``(seq, hash)``.
Head = tuple[int, str]
Row = dict[str, Any]


@dataclass(frozen=True)
class Problem:
    """One broken link: which chain, which row (if any), what is wrong, which rows it involves."""

    chain_key: str
    row_id: uuid.UUID | None
    seq: int | None
    kind: Kind
    detail: str
    related: tuple[uuid.UUID, ...] = ()

    def __str__(self) -> str:
        where = f"row {self.row_id} (seq {self.seq})" if self.row_id else "chain"
        return f"{self.chain_key}: {where}: {self.kind}: {self.detail}"

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form for reports."""
        return {
            "chain_key": self.chain_key,
            "row_id": str(self.row_id) if self.row_id else None,
            "seq": self.seq,
            "kind": self.kind,
            "detail": self.detail,
            "related": [str(r) for r in self.related],
        }


@dataclass
class Report:
    """What a verification found: rows and chains checked, problems, and notes for people."""

    rows: int = 0
    chains: int = 0
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems


# --------------------------------------------------------------------------- scan


class ChainScan:
    """The cheap pass over one chain whose rows arrive in ``seq`` order."""

    __slots__ = ("anchor", "anchor_seen", "broken", "chain_key", "last", "rows")

    def __init__(self, chain_key: str, anchor: Head | None = None) -> None:
        self.chain_key = chain_key
        self.anchor = anchor
        self.anchor_seen = False
        self.broken = False
        self.rows = 0
        self.last: Head = (0, GENESIS)

    def feed(self, row: Row) -> None:
        """Check one row against the previous one (stops hashing once the chain is broken)."""
        self.rows += 1
        if self.broken:
            return
        seq, prev_seq = row["seq"], self.last[0]
        if seq != prev_seq + 1 or row["prev_hash"] != self.last[1] or row_hash(row) != row["hash"]:
            self.broken = True
            return
        if self.anchor is not None and seq == self.anchor[0]:
            self.anchor_seen = row["hash"] == self.anchor[1]
            self.broken = not self.anchor_seen
        self.last = (seq, row["hash"])

    def finish(self, head: Head | None, *, head_known: bool = True) -> bool:
        """True when the chain is fine: it ends at ``head`` and holds its checkpointed row."""
        if self.broken:
            return False
        if self.anchor is not None and not self.anchor_seen:
            return False
        if not head_known:
            return True
        last = self.last if self.rows else (0, "")
        return head is not None and last == head


# --------------------------------------------------------------------------- diagnose


def _seq_ranges(seqs: Iterable[int]) -> Iterator[tuple[int, int]]:
    """Group sorted integers into ``(first, last)`` runs."""
    start = end = None
    for s in sorted(seqs):
        if end is not None and s == end + 1:
            end = s
            continue
        if start is not None and end is not None:
            yield start, end
        start = end = s
    if start is not None and end is not None:
        yield start, end


def _span(first: int, last: int) -> str:
    return f"seq {first}" if first == last else f"seq {first}..{last}"


def diagnose(
    chain_key: str,
    rows: Iterable[Row],
    head: Head | None,
    *,
    anchor: Head | None = None,
    head_known: bool = True,
) -> list[Problem]:
    """Name everything wrong with one chain, given all its rows in any order.

    ``head`` is the recorded tip (``None``: the chain has no head row at all, which makes
    its rows ``inserted``); ``head_known=False`` skips the tail check (an export file has no
    heads). ``anchor`` is a checkpointed ``(seq, hash)`` the chain must still contain.
    """
    ordered = sorted(rows, key=lambda r: r["seq"])
    by_hash = {r["hash"]: r for r in ordered}
    children: dict[str, list[Row]] = defaultdict(list)
    for r in ordered:
        children[r["prev_hash"]].append(r)
    content_ok = {r["id"]: row_hash(r) == r["hash"] for r in ordered}
    problems: list[Problem] = []

    # 1. Content. A row whose hash fails is re-hashed at the seq its predecessor link says it
    # was written at: a match means only its seq changed (reordered), else it was modified.
    written: dict[Any, int] = {r["id"]: r["seq"] for r in ordered if content_ok[r["id"]]}

    def written_seq(row: Row) -> int | None:
        steps, cur, seen = 0, row, set()
        while True:
            if steps and cur["id"] in written:
                return written[cur["id"]] + steps
            if cur["prev_hash"] == GENESIS:
                return steps + 1
            pred = by_hash.get(cur["prev_hash"])
            if pred is None or pred["id"] in seen:
                return None
            seen.add(pred["id"])
            steps, cur = steps + 1, pred

    explained: set[Any] = set()
    for r in ordered:
        if content_ok[r["id"]]:
            continue
        original = written_seq(r)
        if (
            original is not None
            and original != r["seq"]
            and row_hash({**r, "seq": original}) == r["hash"]
        ):
            written[r["id"]] = original
            problems.append(
                Problem(
                    chain_key,
                    r["id"],
                    r["seq"],
                    "reordered",
                    f"stored at seq {r['seq']} but written as seq {original}",
                )
            )
        else:
            written[r["id"]] = r["seq"]
            problems.append(
                Problem(chain_key, r["id"], r["seq"], "modified", "content does not match its hash")
            )
        explained.add(r["id"])

    # 2. Forks: two rows claiming the same predecessor; the one nothing links to and that is
    # not the head was inserted.
    head_hash = head[1] if head else None
    inserted: set[Any] = set()
    for siblings in children.values():
        if len(siblings) < 2:
            continue
        for s in siblings:
            if not children.get(s["hash"]) and s["hash"] != head_hash:
                problems.append(
                    Problem(
                        chain_key,
                        s["id"],
                        s["seq"],
                        "inserted",
                        "a second successor of the same row; nothing links to it",
                        tuple(o["id"] for o in siblings if o is not s),
                    )
                )
                inserted.add(s["id"])
    explained |= inserted

    # 3. Gaps and links, in the order the rows were written.
    in_order = sorted(
        (r for r in ordered if r["id"] not in inserted), key=lambda r: written[r["id"]]
    )
    at_seq = {written[r["id"]]: r for r in in_order}
    top = max(at_seq, default=0)
    for first, last in _seq_ranges(set(range(1, top + 1)) - set(at_seq)):
        nxt, prv = at_seq.get(last + 1), at_seq.get(first - 1)
        problems.append(
            Problem(
                chain_key,
                nxt["id"] if nxt else None,
                nxt["seq"] if nxt else None,
                "deleted",
                f"{_span(first, last)} missing before this row",
                (prv["id"],) if prv else (),
            )
        )
    first_row = at_seq.get(1)
    if first_row is not None and first_row["id"] not in explained:
        if first_row["prev_hash"] != GENESIS:
            problems.append(
                Problem(
                    chain_key,
                    first_row["id"],
                    1,
                    "broken_link",
                    "the first row's prev_hash is not the genesis hash",
                )
            )
    for prv, nxt in pairwise(in_order):
        if written[nxt["id"]] != written[prv["id"]] + 1 or {prv["id"], nxt["id"]} & explained:
            continue
        if nxt["prev_hash"] != prv["hash"]:
            problems.append(
                Problem(
                    chain_key,
                    nxt["id"],
                    nxt["seq"],
                    "broken_link",
                    f"prev_hash is not the hash of row {prv['id']} (seq {prv['seq']}): "
                    "one of the two was rewritten",
                    (prv["id"],),
                )
            )

    # 4. The tail against the recorded head.
    tail = at_seq.get(top)
    if head_known and head is None and ordered:
        problems.append(
            Problem(
                chain_key,
                ordered[0]["id"],
                ordered[0]["seq"],
                "inserted",
                f"{len(ordered)} row(s) on a chain that no request or system head records",
            )
        )
    elif head_known and head is not None:
        head_seq, hhash = head
        if top < head_seq:
            last_row = f" after row {tail['id']}" if tail else ""
            problems.append(
                Problem(
                    chain_key,
                    None,
                    None,
                    "deleted",
                    f"chain ends at seq {top}{last_row} but its head says seq {head_seq}: "
                    f"{_span(top + 1, head_seq)} missing at the end",
                    (tail["id"],) if tail else (),
                )
            )
        elif top > head_seq:
            at_head = at_seq.get(head_seq)
            if at_head is not None and at_head["hash"] == hhash:
                for r in in_order:
                    if written[r["id"]] > head_seq:
                        problems.append(
                            Problem(
                                chain_key,
                                r["id"],
                                r["seq"],
                                "inserted",
                                f"after the chain head (seq {head_seq})",
                            )
                        )
            else:
                problems.append(
                    Problem(
                        chain_key,
                        tail["id"] if tail else None,
                        tail["seq"] if tail else None,
                        "head_mismatch",
                        f"chain ends at seq {top} but its head says seq {head_seq}",
                    )
                )
        elif tail is not None and tail["hash"] != hhash:
            problems.append(
                Problem(
                    chain_key,
                    tail["id"],
                    tail["seq"],
                    "head_mismatch",
                    f"last row's hash {tail['hash'][:12]}… is not the recorded head {hhash[:12]}…",
                )
            )

    # 5. The checkpointed row must still be there, unchanged.
    if anchor is not None:
        a_seq, a_hash = anchor
        at = at_seq.get(a_seq)
        if at is None:
            problems.append(
                Problem(
                    chain_key,
                    None,
                    a_seq,
                    "deleted",
                    f"the checkpointed row at seq {a_seq} is gone (the chain ends at seq {top})",
                )
            )
        elif at["hash"] != a_hash:
            problems.append(
                Problem(
                    chain_key,
                    at["id"],
                    at["seq"],
                    "checkpoint_mismatch",
                    f"hash {at['hash'][:12]}… is not the checkpointed {a_hash[:12]}… "
                    "(the chain was rewritten since the checkpoint)",
                )
            )
    return problems


def verify_rows(
    chain_key: str, rows: Iterable[Row], head_seq: int, head_hash: str
) -> list[Problem]:
    """Check one chain's rows against each other and the recorded head."""
    rows = list(rows)
    scan = ChainScan(chain_key)
    for row in sorted(rows, key=lambda r: r["seq"]):
        scan.feed(row)
    if scan.finish((head_seq, head_hash)):
        return []
    return diagnose(chain_key, rows, (head_seq, head_hash))


# --------------------------------------------------------------------------- database

COLUMNS = (
    AuditLog.id,
    AuditLog.chain_key,
    AuditLog.seq,
    AuditLog.request_id,
    AuditLog.event_type,
    AuditLog.severity,
    AuditLog.actor,
    AuditLog.agent_id,
    AuditLog.occurred_at,
    AuditLog.event_data,
    AuditLog.prev_hash,
    AuditLog.hash,
)
_STREAM_BATCH = 2000


async def chain_heads(
    session: AsyncSession, request_id: uuid.UUID | None = None
) -> dict[str, Head]:
    """Every recorded chain head (``requests`` and ``audit_chains``), or one request's.

    Reads the whole ``requests`` table (``audit_seq``, ``audit_head``) by primary key order
    and ``audit_chains``; with ``request_id``, one primary-key lookup.
    """
    heads: dict[str, Head] = {}
    query = select(Request.id, Request.audit_seq, Request.audit_head)
    if request_id is not None:
        query = query.where(Request.id == request_id)
    else:
        for key, seq, head in await session.execute(
            select(AuditChain.chain_key, AuditChain.seq, AuditChain.head_hash)
        ):
            heads[key] = (seq, head)
    for rid, seq, head in await session.execute(query):
        heads[str(rid)] = (seq, head)
    return heads


async def _chain_rows(session: AsyncSession, chain_key: str | None) -> AsyncIterator[Row]:
    """Stream rows in ``(chain_key, seq)`` order: walks ``uq_audit_logs_chain_key_seq``."""
    query = select(*COLUMNS).order_by(AuditLog.chain_key, AuditLog.seq)
    if chain_key is not None:
        query = query.where(AuditLog.chain_key == chain_key)
    result = await session.stream(query.execution_options(yield_per=_STREAM_BATCH))
    async for batch in result.mappings().partitions():
        for row in batch:
            yield dict(row)


async def verify_session(
    session: AsyncSession,
    request_id: uuid.UUID | None = None,
    anchors: Mapping[str, Head] | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> Report:
    """Verify every chain (or one request's) in ``session``'s snapshot.

    Reads the heads (:func:`chain_heads`), then streams ``audit_logs`` in ``(chain_key,
    seq)`` order over ``uq_audit_logs_chain_key_seq`` (one chain: an index range scan).

    ``anchors`` are checkpointed heads ``{chain_key: (seq, hash)}`` each chain must still
    contain. Give the session a consistent snapshot (``REPEATABLE READ`` on PostgreSQL; a
    SQLite read transaction is one) or rows appended mid-scan look like ``inserted``.

    ``progress(rows_read, rows_expected)`` is called every few thousand rows; the expected
    count is the sum of the heads' sequence numbers.
    """
    anchors = dict(anchors or {})
    only = str(request_id) if request_id is not None else None
    if only is not None:
        anchors = {k: v for k, v in anchors.items() if k == only}
    heads = await chain_heads(session, request_id)
    if only is not None and only not in heads:
        raise InvalidFilter(f"no request {only}", field="request_id")
    report = Report()
    broken: list[str] = []
    seen: set[str] = set()
    scan: ChainScan | None = None
    expected = sum(seq for seq, _ in heads.values())
    read = 0

    def close(s: ChainScan) -> None:
        report.rows += s.rows
        seen.add(s.chain_key)
        if not s.finish(heads.get(s.chain_key)):
            broken.append(s.chain_key)

    async for row in _chain_rows(session, only):
        if scan is None or row["chain_key"] != scan.chain_key:
            if scan is not None:
                close(scan)
            scan = ChainScan(row["chain_key"], anchors.get(row["chain_key"]))
        scan.feed(row)
        read += 1
        if progress is not None and read % _STREAM_BATCH == 0:
            progress(read, expected)
    if scan is not None:
        close(scan)
    if progress is not None:
        progress(read, expected)
    # Chains with a head (or a checkpointed head) but no rows left at all.
    for key in sorted((set(heads) | set(anchors)) - seen):
        if heads.get(key, (0, ""))[0] > 0 or key in anchors:
            broken.append(key)
    report.chains = len(seen | {k for k, (seq, _) in heads.items() if seq > 0})
    for key in broken:
        rows = [
            row
            async for row in _chain_rows(session, key)  # re-read: only broken chains
        ]
        report.problems.extend(diagnose(key, rows, heads.get(key), anchor=anchors.get(key)))
    return report


async def verify_database(
    session: AsyncSession, request_id: uuid.UUID | None = None
) -> tuple[int, list[Problem]]:
    """Verify every chain (or one request's); return rows checked and problems found."""
    report = await verify_session(session, request_id)
    return report.rows, report.problems


# --------------------------------------------------------------------------- files


class _FileChain:
    """A chain read from a file in any order: rows are re-ordered by ``seq`` as they come."""

    __slots__ = ("pending", "scan")

    def __init__(self, chain_key: str, anchor: Head | None) -> None:
        self.scan = ChainScan(chain_key, anchor)
        self.pending: dict[int, Row] = {}

    def feed(self, row: Row) -> None:
        # Rows of one chain written in the same transaction share occurred_at, so a
        # time-ordered export may hold them out of seq order: buffer until the next is in.
        self.pending[row["seq"]] = row
        nxt = self.scan.last[0] + 1
        while nxt in self.pending and not self.scan.broken:
            self.scan.feed(self.pending.pop(nxt))
            nxt += 1
        if self.scan.broken:
            self.scan.rows += len(self.pending)
            self.pending.clear()


def verify_rows_offline(
    rows: Iterable[Row],
    anchors: Mapping[str, Head] | None = None,
    reread: Iterable[Row] | None = None,
) -> Report:
    """Verify rows read from an export file (any order) without a database.

    Each chain in the file must start at seq 1 and have no gaps; its tail cannot be checked
    without heads, so give the checkpoint's ``anchors`` to prove it reaches them. Broken
    chains are diagnosed from ``reread`` (a second pass over the same rows).
    """
    anchors = dict(anchors or {})
    chains: dict[str, _FileChain] = {}
    for row in rows:
        key = row["chain_key"]
        chain = chains.get(key)
        if chain is None:
            chain = chains[key] = _FileChain(key, anchors.get(key))
        chain.feed(row)
    report = Report(chains=len(chains))
    broken: set[str] = set()
    for key, chain in chains.items():
        report.rows += chain.scan.rows + len(chain.pending)
        if chain.pending or not chain.scan.finish(None, head_known=False):
            broken.add(key)
    missing = sorted(set(anchors) - set(chains))
    if missing:
        report.notes.append(
            f"{len(missing)} checkpointed chain(s) are not in the file (a filtered export?)"
        )
    if not anchors:
        report.notes.append(
            "no checkpoint given: rows deleted from the end of a chain cannot be detected "
            "offline (give --checkpoint)"
        )
    if broken:
        collected: dict[str, list[Row]] = defaultdict(list)
        for row in reread if reread is not None else ():
            if row["chain_key"] in broken:
                collected[row["chain_key"]].append(row)
        for key in sorted(broken):
            report.problems.extend(
                diagnose(key, collected[key], None, anchor=anchors.get(key), head_known=False)
            )
    return report


__all__ = [
    "SYSTEM_CHAIN",
    "ChainScan",
    "Head",
    "Problem",
    "Report",
    "chain_heads",
    "diagnose",
    "verify_database",
    "verify_rows",
    "verify_rows_offline",
    "verify_session",
]
