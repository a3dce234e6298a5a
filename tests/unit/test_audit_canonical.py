"""The fast canonical form of raw rows is exactly what ``row_hash`` hashes, for any content."""

from __future__ import annotations

import hashlib
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.audit.canonical import canonical_text, from_typed, hash_ok, typed_row
from app.audit.chain import ChainHead, canonical_json, row_hash
from app.audit.events import AgentFailed, AuditAccessed, StateChanged
from app.audit.reader import _successor, partitions

T0 = datetime(2026, 11, 23, 9, 0, 0, 123456, tzinfo=UTC)
#: Characters JSON must escape (or must not), and ones that look like structure.
AWKWARD = ['"', "\\", "\n", "\u2028", "é", "{", ",", ":", '","actor":"x', "\x00", "💊"]


def _rows(count: int = 40) -> list[dict[str, Any]]:
    rng = random.Random(11)
    rid = uuid.uuid4()
    head = ChainHead(str(rid))
    rows = []
    for i in range(count):
        text = "".join(rng.choice(AWKWARD) for _ in range(rng.randint(0, 6)))
        event = (
            AgentFailed(
                step=text or "s",
                attempt=i,
                error_type="E",
                error=text,
                retryable=bool(i % 2),
                duration_ms=i,
            )
            if i % 3 == 0
            else AuditAccessed(action="query", filters={text: [i, 1.5, None]}, row_count=i)
            if i % 3 == 1
            else StateChanged(from_state=None, to_state="pending", reason=text or None)
        )
        rows.append(
            head.append(
                event,
                actor=f"actor{text}",
                occurred_at=T0 + timedelta(microseconds=i),
                request_id=rid if i % 4 else None,
                agent_id=text or None,
            )
        )
    return rows


def test_spliced_canonical_form_is_the_definitions_byte_for_byte() -> None:
    for row in _rows():
        raw = from_typed(row)
        canonical = {k: v for k, v in row.items() if k != "hash"}
        canonical["id"], canonical["occurred_at"] = str(row["id"]), raw[8]
        canonical["request_id"] = str(row["request_id"]) if row["request_id"] else None
        assert canonical_text(raw, raw[9]).encode() == canonical_json(canonical)
        assert hashlib.sha256(canonical_text(raw, raw[9]).encode()).hexdigest() == row["hash"]
        assert hash_ok(raw) and hash_ok(raw, stored_is_canonical=False)
        assert row_hash(typed_row(raw)) == row["hash"]


def test_other_storage_forms_fall_back_to_the_definition() -> None:
    row = _rows(1)[0]
    raw = from_typed(row)
    # JSON stored in another (non-canonical) form, an upper-case id: still the same row.
    spaced = (raw[0].upper(), *raw[1:9], " " + raw[9], *raw[10:])
    assert hash_ok(spaced)
    recoded = (raw[0], *raw[1:9], '{ "to_state" : "pending" }', *raw[10:])
    assert not hash_ok(recoded)  # different content (event_data) is different


@pytest.mark.parametrize(
    "change",
    [
        {"seq": 2},
        {"seq": 1.0},
        {"seq": "1"},
        {"actor": "someone else"},
        {"event_data": '{"from_state":null,"reason":null,"step":null,"to_state":"failed"}'},
        {"prev_hash": "f" * 64},
    ],
)
def test_any_change_fails_the_hash(change: dict[str, Any]) -> None:
    row = _rows(3)[2]
    raw = list(from_typed(row))
    names = ["id", "chain_key", "seq", "request_id", "event_type", "severity", "actor"]
    names += ["agent_id", "occurred_at", "event_data", "prev_hash", "hash"]
    for key, value in change.items():
        raw[names.index(key)] = value
    assert not hash_ok(tuple(raw))


def test_partitions_cover_every_hex_key_once_and_leave_the_rest() -> None:
    assert _successor("3") == "4" and _successor("9") == "a" and _successor("3f") == "4"
    assert _successor("f") is None and _successor("ff") is None
    assert [p.prefix for p in partitions(10)] == list("0123456789abcdef")
    assert len(partitions(1_000_000)) == 256
    for key in ("00000000-0000", "9fffffff", "a0000000", "ffffffff-ffff", str(uuid.uuid4())):
        owners = [
            p
            for p in partitions(10)
            if p.prefix is not None and key >= p.prefix and key < (_successor(p.prefix) or "g")
        ]
        assert len(owners) == 1
    assert all(not ("system" < (_successor(p.prefix or "") or "g")) for p in partitions(10))


def test_a_batch_registers_chains_opened_and_their_terminal_heads() -> None:
    from app.audit.registry import entry_for

    a, b, c = (uuid.uuid4() for _ in range(3))
    transitions = [
        {"request_id": a, "from_state": None, "to_state": "pending"},
        {"request_id": b, "from_state": "running", "to_state": "completed"},
        {"request_id": c, "from_state": "running", "to_state": "pending"},
    ]
    audit = [
        {"chain_key": str(b), "seq": 7, "hash": "7" * 64},
        {"chain_key": str(b), "seq": 8, "hash": "8" * 64},
        {"chain_key": str(a), "seq": 2, "hash": "2" * 64},
    ]
    entry = entry_for(transitions, audit)
    assert entry is not None and entry.opened == [str(a)]
    [end] = entry.closed
    assert (end.request_id, end.seq, end.hash, end.state) == (str(b), 8, "8" * 64, "completed")
    assert entry_for(transitions[2:], audit) is None


def test_the_registry_knows_the_orchestrators_terminal_states() -> None:
    from app.audit.registry import TERMINAL_STATES
    from app.orchestrator.states import TERMINAL

    assert TERMINAL_STATES == {str(s) for s in TERMINAL}


def test_event_data_encoded_once_hashes_and_stores_as_if_encoded_twice() -> None:
    from datetime import UTC, datetime

    from app.audit.chain import format_timestamp, row_hash
    from app.database.types import EncodedDict, canonical_json_text

    data = {"b": [1, {"z": "é", "a": None}], "a": "q"}
    row = {
        "id": uuid.uuid4(),
        "chain_key": "k",
        "seq": 3,
        "request_id": uuid.uuid4(),
        "event_type": "state_changed",
        "severity": "info",
        # A value that spells the next key cannot fool the splice: JSON escapes its quotes.
        "actor": 'a,"event_type":"x',
        "agent_id": None,
        "occurred_at": datetime(2026, 12, 1, 9, 30, tzinfo=UTC),
        "event_data": data,
        "prev_hash": "0" * 64,
    }
    whole = {
        **row,
        "id": str(row["id"]),
        "request_id": str(row["request_id"]),
        "occurred_at": format_timestamp(row["occurred_at"]),
    }
    expected = hashlib.sha256(canonical_json_text(whole).encode()).hexdigest()
    assert row_hash(row) == expected
    encoded = EncodedDict.of(data)
    assert encoded == data and canonical_json_text(encoded) == canonical_json_text(data)
    assert row_hash({**row, "event_data": encoded}) == expected
