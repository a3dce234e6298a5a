"""Reading an HTTP ``Range`` header against a file's size (``app.results.files.byte_range``)."""

from __future__ import annotations

import pytest

from app.results import RangeNotSatisfiable, byte_range


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 100, (0, 99, False)),
        ("", 100, (0, 99, False)),
        ("bytes=0-0", 100, (0, 0, True)),
        ("bytes=10-19", 100, (10, 19, True)),
        ("bytes=90-", 100, (90, 99, True)),
        ("bytes=90-500", 100, (90, 99, True)),
        ("bytes=-5", 100, (95, 99, True)),
        ("bytes=-500", 100, (0, 99, True)),
        ("BYTES = 1 - 2", 100, (1, 2, True)),
    ],
)
def test_ranges_a_browser_sends_are_read(
    header: str | None, size: int, expected: tuple[int, int, bool]
) -> None:
    read = byte_range(header, size)
    assert (read.first, read.last, read.partial) == expected
    assert read.length == expected[1] - expected[0] + 1
    assert read.content_range() == f"bytes {expected[0]}-{expected[1]}/{size}"


@pytest.mark.parametrize(
    "header",
    [
        "bytes=100-",
        "bytes=5-4",
        "bytes=-0",
        "bytes=-",
        "bytes=0-1,3-4",
        "items=0-1",
        "0-1",
        "bytes=a-b",
    ],
)
def test_ranges_outside_the_file_or_not_understood_are_refused_with_the_size(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable) as refused:
        byte_range(header, 100)
    assert refused.value.size == 100 and refused.value.field == "Range"


def test_an_empty_file_is_whole_but_has_no_range() -> None:
    assert byte_range(None, 0).length == 0
    with pytest.raises(RangeNotSatisfiable):
        byte_range("bytes=0-", 0)
