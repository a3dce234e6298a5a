"""Chain diagnosis without a database: every kind of tampering is named with its rows."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from app.audit.canonical import RawRow, from_typed
from app.audit.chain import ChainHead, row_hash
from app.audit.checkpoint import Checkpoint, CheckpointSet, heads_digest
from app.audit.diagnose import diagnose
from app.audit.events import AgentStarted, StateChanged
from app.audit.offline import verify_rows_offline
from app.audit.problems import Problem
from app.audit.scan import Anchor
from app.audit.verify import verify_rows

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def chain(n: int = 8, key: str | None = None) -> tuple[str, list[dict[str, Any]], ChainHead]:
    rid = uuid.UUID(key) if key else uuid.uuid4()
    head = ChainHead(str(rid))
    rows = [
        head.append(
            AgentStarted(step="s", attempt=i, input_digest=f"{i:064x}", worker_id="w1")
            if i % 2
            else StateChanged(from_state="pending", to_state="running"),
            actor="svc",
            occurred_at=T0 + timedelta(seconds=i),
            request_id=rid,
        )
        for i in range(n)
    ]
    return str(rid), rows, head


def kinds(problems: list[Problem]) -> list[tuple[str, uuid.UUID | None]]:
    return [(p.kind, p.row_id) for p in problems]


def raw(rows: list[dict[str, Any]]) -> list[RawRow]:
    return [from_typed(r) for r in rows]


def checkpoint_of(heads: dict[str, tuple[int, str]]) -> CheckpointSet:
    """A first (full) checkpoint of ``heads``, as a file would carry it."""
    draft = Checkpoint(
        id=uuid.uuid4(),
        seq=1,
        created_at=T0,
        created_by="test",
        chain_count=len(heads),
        heads_digest=heads_digest(heads),
        heads=heads,
        digest="0" * 64,
    )
    made = draft.model_copy(update={"digest": draft.computed_digest()})
    return CheckpointSet([made], heads, "test")


def test_an_intact_chain_has_no_problems() -> None:
    key, rows, head = chain()
    assert verify_rows(key, rows, head.seq, head.hash) == []


def test_a_changed_byte_is_modified_at_that_row() -> None:
    key, rows, head = chain()
    rows[3] = {**rows[3], "event_data": {**rows[3]["event_data"], "worker_id": "w2"}}
    assert kinds(verify_rows(key, rows, head.seq, head.hash)) == [("modified", rows[3]["id"])]


def test_a_swap_is_reordered_naming_both_rows_and_nothing_else() -> None:
    key, rows, head = chain()
    a, b = rows[2], rows[5]
    rows[2], rows[5] = {**a, "seq": b["seq"]}, {**b, "seq": a["seq"]}
    problems = verify_rows(key, rows, head.seq, head.hash)
    assert sorted(kinds(problems), key=str) == sorted(
        [("reordered", a["id"]), ("reordered", b["id"])], key=str
    )
    assert "written as seq 3" in next(p.detail for p in problems if p.row_id == a["id"])


def test_adjacent_and_tail_swaps_are_reordered() -> None:
    for i, j in ((3, 4), (0, 1), (6, 7)):
        key, rows, head = chain()
        a, b = rows[i], rows[j]
        rows[i], rows[j] = {**a, "seq": b["seq"]}, {**b, "seq": a["seq"]}
        found = kinds(verify_rows(key, rows, head.seq, head.hash))
        assert sorted(found, key=str) == sorted(
            [("reordered", a["id"]), ("reordered", b["id"])], key=str
        ), (i, j, found)


def test_a_deleted_middle_row_is_named_by_the_row_after_the_gap() -> None:
    key, rows, head = chain()
    gone = rows.pop(4)
    [problem] = verify_rows(key, rows, head.seq, head.hash)
    assert (problem.kind, problem.row_id) == ("deleted", rows[4]["id"])
    assert f"seq {gone['seq']} missing" in problem.detail
    assert problem.related == (rows[3]["id"],)


def test_a_deleted_tail_is_caught_by_the_head() -> None:
    key, rows, head = chain()
    rows.pop()
    [problem] = verify_rows(key, rows, head.seq, head.hash)
    assert problem.kind == "deleted" and problem.row_id is None
    assert f"seq {head.seq} missing at the end" in problem.detail
    assert problem.related == (rows[-1]["id"],)


def test_a_row_appended_behind_the_applications_back_is_inserted() -> None:
    key, rows, head = chain()
    recorded = (head.seq, head.hash)
    forged = head.append(
        StateChanged(from_state="running", to_state="completed"),
        actor="dba",
        occurred_at=T0 + timedelta(hours=1),
        request_id=uuid.UUID(key),
    )
    found = verify_rows(key, [*rows, forged], *recorded)
    assert kinds(found) == [("inserted", forged["id"])]


def test_a_rehashed_row_breaks_the_link_to_its_successor() -> None:
    key, rows, head = chain()
    changed = {**rows[2], "actor": "someone-else"}
    changed["hash"] = row_hash(changed)
    rows[2] = changed
    [problem] = verify_rows(key, rows, head.seq, head.hash)
    assert problem.kind == "broken_link"
    assert problem.row_id == rows[3]["id"] and problem.related == (changed["id"],)


def test_a_forked_row_is_inserted() -> None:
    key, rows, head = chain()
    fork_head = ChainHead(key, rows[3]["seq"], rows[3]["hash"])
    forged = fork_head.append(
        StateChanged(from_state="running", to_state="failed"),
        actor="dba",
        occurred_at=T0,
        request_id=uuid.UUID(key),
    )
    forged["seq"] = 99  # the unique (chain_key, seq) forces a free seq
    forged["hash"] = row_hash(forged)
    problems = diagnose(key, [*rows, forged], (head.seq, head.hash))
    assert ("inserted", forged["id"]) in kinds(problems)


def test_rows_with_no_head_are_an_inserted_chain() -> None:
    key, rows, _ = chain()
    [problem] = diagnose(key, rows, None)
    assert (problem.kind, problem.row_id) == ("inserted", rows[0]["id"])


def test_a_checkpointed_head_must_still_be_there() -> None:
    key, rows, head = chain()
    anchor = Anchor(rows[5]["seq"], rows[5]["hash"], "checkpoint #1")
    assert diagnose(key, rows, (head.seq, head.hash), anchors=[anchor]) == []
    truncated = rows[:4]
    rewritten_head = (truncated[-1]["seq"], truncated[-1]["hash"])
    [problem] = diagnose(key, truncated, rewritten_head, anchors=[anchor])
    assert problem.kind == "deleted"
    assert "the head checkpoint #1 recorded (seq 6) is gone" in problem.detail


def test_offline_rows_in_any_order_verify_and_gaps_are_found() -> None:
    chains = [chain() for _ in range(5)]
    rows = [r for _, rs, _ in chains for r in rs]
    random.Random(4).shuffle(rows)
    report = verify_rows_offline(raw(rows), reread=lambda: raw(rows))
    assert report.ok and report.rows == 40 and report.chains == 5

    victim = chains[2][1][3]
    kept = raw([r for r in rows if r is not victim])
    report = verify_rows_offline(kept, reread=lambda: kept)
    assert kinds(report.problems) == [("deleted", chains[2][1][4]["id"])]


def test_offline_with_anchors_detects_a_cut_tail() -> None:
    key, rows, head = chain()
    cut = raw(rows[:-2])
    report = verify_rows_offline(
        cut, checkpoint_of({key: (head.seq, head.hash)}), reread=lambda: cut
    )
    [problem] = report.problems
    assert problem.kind == "deleted" and f"seq {head.seq}" in problem.detail


def test_offline_is_strict_about_a_checkpointed_chain_missing_from_the_file() -> None:
    (key, rows, head), (other, _, other_head) = chain(), chain()
    checkpoint = checkpoint_of(
        {key: (head.seq, head.hash), other: (other_head.seq, other_head.hash)}
    )
    report = verify_rows_offline(raw(rows), checkpoint, reread=lambda: raw(rows))
    assert [(p.kind, p.chain_key) for p in report.problems] == [("chain_missing", other)]
    partial = verify_rows_offline(raw(rows), checkpoint, reread=lambda: raw(rows), partial=True)
    assert partial.ok
    assert any("not checked (--partial): 1 chain(s)" in n and other in n for n in partial.notes)
