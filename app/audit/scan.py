"""The cheap pass over one chain: rows in ``seq`` order, checked against the previous row.

A row is fine when its content hashes to its ``hash`` (:func:`app.audit.canonical.hash_ok`),
its ``seq`` follows on and its ``prev_hash`` is the previous row's ``hash``. A chain is fine
when, in addition, its last row is the recorded head and it still holds every
:class:`Anchor`: a ``(seq, hash)`` recorded elsewhere (the newest checkpoint, the chain
registry's terminal head) that the chain must still contain. Only chains that fail are
diagnosed row by row (:mod:`app.audit.diagnose`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from app.audit.canonical import HASH, PREV_HASH, SEQ, RawRow, hash_ok
from app.audit.chain import GENESIS

#: A chain's tip: ``(seq, hash)``.
Head = tuple[int, str]


class Anchor(NamedTuple):
    """A ``(seq, hash)`` a chain must still contain, and who recorded it."""

    seq: int
    hash: str
    #: ``checkpoint #N`` or ``registry``: names the recorder in problems.
    source: str


def sorted_anchors(anchors: Sequence[Anchor] | None) -> tuple[Anchor, ...]:
    """Anchors in ``seq`` order (the order a scan meets them)."""
    return tuple(sorted(anchors or (), key=lambda a: a.seq))


class ChainScan:
    """Feed one chain's rows in ``seq`` order, then :meth:`finish` against its head."""

    __slots__ = ("anchors", "broken", "canonical", "chain_key", "last", "next_anchor", "rows")

    def __init__(
        self,
        chain_key: str,
        anchors: Sequence[Anchor] | None = None,
        *,
        stored_is_canonical: bool = True,
    ) -> None:
        self.chain_key = chain_key
        self.anchors = sorted_anchors(anchors)
        self.next_anchor = 0
        self.broken = False
        self.rows = 0
        self.last: Head = (0, GENESIS)
        self.canonical = stored_is_canonical

    def feed(self, row: RawRow) -> None:
        """Check one row against the previous one (stops hashing once the chain is broken)."""
        self.rows += 1
        if self.broken:
            return
        seq = row[SEQ]
        if (
            seq != self.last[0] + 1
            or row[PREV_HASH] != self.last[1]
            or not hash_ok(row, stored_is_canonical=self.canonical)
        ):
            self.broken = True
            return
        anchors = self.anchors
        while self.next_anchor < len(anchors) and anchors[self.next_anchor].seq <= seq:
            anchor = anchors[self.next_anchor]
            if anchor.seq < seq or anchor.hash != row[HASH]:
                self.broken = True
                return
            self.next_anchor += 1
        self.last = (seq, row[HASH])

    def finish(self, head: Head | None, *, head_known: bool = True) -> bool:
        """True when the chain is fine: it ends at ``head`` and held every anchor."""
        if self.broken or self.next_anchor < len(self.anchors):
            return False
        if not head_known:
            return True
        last = self.last if self.rows else (0, "")
        return head is not None and last == head
