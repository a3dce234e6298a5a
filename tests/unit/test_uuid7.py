"""UUIDv7 ids: RFC 9562 layout, time-ordered across milliseconds, unique, fresh after fork."""

from __future__ import annotations

import os
import time
import uuid

from app.ids import uuid7, uuid7_time_ms


def test_layout_is_rfc_9562_version_7() -> None:
    before = time.time_ns() // 1_000_000
    made = uuid7()
    after = time.time_ns() // 1_000_000
    assert made.version == 7 and made.variant == uuid.RFC_4122
    assert before <= uuid7_time_ms(made) <= after
    # A plain UUID to everything else: parses back, compares and hashes like one.
    again = uuid.UUID(str(made))
    assert again == made and hash(again) == hash(made) and again.hex == made.hex


def test_ids_are_unique_and_ordered_by_millisecond() -> None:
    made = [uuid7() for _ in range(50_000)]
    assert len(set(made)) == len(made)
    stamps = [uuid7_time_ms(m) for m in made]
    assert stamps == sorted(stamps)
    later = uuid7()
    time.sleep(0.002)
    assert uuid7() > later


def test_a_forked_child_does_not_repeat_the_parents_random_bits() -> None:
    uuid7()  # the parent's pool now holds unused random bytes
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child reports its next id and leaves at once
        os.close(reader)
        os.write(writer, uuid7().bytes)
        os._exit(0)
    os.close(writer)
    child = uuid.UUID(bytes=os.read(reader, 16))
    os.close(reader)
    os.waitpid(pid, 0)
    parent = uuid7()
    random_bits = (1 << 62) - 1
    assert child.int & random_bits != parent.int & random_bits
