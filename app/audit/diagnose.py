"""Naming everything wrong with a chain that failed its scan, row by row.

Given all of a broken chain's rows (in any order), :func:`diagnose` names each problem with
the row ids involved:

* ``modified`` — the row's content no longer matches its hash;
* ``reordered`` — the row's content matches its hash at another ``seq`` (its ``seq`` was
  changed: a swap names both rows);
* ``deleted`` — ``seq`` values are missing inside the chain (named by the row after the gap)
  or at its end (the head says the chain is longer), or an anchored row is gone;
* ``inserted`` — a row that no other row links to, a row past the chain head, or a chain
  with no head at all;
* ``broken_link`` — two neighbouring rows that do not link and are not explained above
  (one of them was re-hashed);
* ``head_mismatch`` — the chain's last row is not the recorded head;
* ``checkpoint_mismatch`` / ``registry_mismatch`` — the row at an anchored ``seq`` is not
  the one the checkpoint or the chain registry recorded.

The hashes are re-computed with :func:`app.audit.chain.row_hash`, the same function that
wrote them, so a database and an export file diagnose identically.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from itertools import pairwise
from typing import Any

from app.audit.chain import GENESIS, row_hash
from app.audit.problems import Kind, Problem
from app.audit.scan import Anchor, Head, sorted_anchors

#: A row as column → value (see :func:`app.audit.canonical.typed_row`).
Row = dict[str, Any]


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
    anchors: Sequence[Anchor] = (),
    head_known: bool = True,
) -> list[Problem]:
    """Name everything wrong with one chain, given all its rows in any order.

    ``head`` is the recorded tip (``None``: the chain has no head row at all, which makes
    its rows ``inserted``); ``head_known=False`` skips the tail check (an export file has no
    heads). ``anchors`` are recorded ``(seq, hash)`` pairs the chain must still contain.
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

    # 5. Every anchored row must still be there, unchanged.
    for anchor in sorted_anchors(anchors):
        problems.extend(_anchor_problem(chain_key, anchor, at_seq.get(anchor.seq), top))
    return problems


def _anchor_problem(chain_key: str, anchor: Anchor, at: Row | None, top: int) -> list[Problem]:
    what = (
        "the terminal head the chain registry recorded"
        if anchor.source == "registry"
        else (f"the head {anchor.source} recorded")
    )
    if at is None:
        return [
            Problem(
                chain_key,
                None,
                anchor.seq,
                "deleted",
                f"{what} (seq {anchor.seq}) is gone: the chain ends at seq {top} (it was cut back)",
            )
        ]
    if at["hash"] == anchor.hash:
        return []
    kind: Kind = "registry_mismatch" if anchor.source == "registry" else "checkpoint_mismatch"
    return [
        Problem(
            chain_key,
            at["id"],
            at["seq"],
            kind,
            f"hash {at['hash'][:12]}… is not {what} ({anchor.hash[:12]}…): the chain was "
            "rewritten since",
        )
    ]
