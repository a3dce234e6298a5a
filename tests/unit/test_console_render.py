"""Pure pieces of the console: how ages, ids, event data and recognised words are shown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.console.render import age, compact, human_utc, iso_utc, short_id
from app.console.routes.recordings import marked_words

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def test_ages_are_coarse_and_never_break_between_number_and_unit() -> None:
    cases = {5: "5\xa0s", 75: "1\xa0min", 3600: "1\xa0h", 3660: "1\xa0h 1\xa0min"}
    cases |= {50 * 3600: "2\xa0d 2\xa0h", 48 * 3600: "2\xa0d", -10: "0\xa0s"}
    for seconds, shown in cases.items():
        assert age(NOW - timedelta(seconds=seconds), NOW) == shown, seconds


def test_times_are_utc_for_machines_and_people() -> None:
    moment = datetime(2026, 11, 26, 10, 30, tzinfo=UTC) + timedelta(microseconds=5)
    assert iso_utc(moment) == "2026-11-26T10:30:00Z"
    assert human_utc(moment) == "2026-11-26 10:30:00 UTC"
    assert short_id("0f6b083c-3144-4409-b7da-f75d005805c5") == "0f6b083c"


def test_event_data_is_one_line_without_empty_fields_and_is_cut() -> None:
    data = {"action": "query", "filters": {"event_types": ["x"]}, "format": None, "n": 3}
    assert compact(data) == 'action: query; filters: {"event_types":["x"]}; n: 3'
    long = compact({"k": "v" * 1000}, limit=50)
    assert len(long) == 50 and long.endswith("…")


def test_low_confidence_words_are_marked_only_when_the_confidences_line_up() -> None:
    words = marked_words("take two tablets daily", [0.9, 0.3, 0.7, 0.49])
    assert [(w.text, w.low) for w in words] == [
        ("take", False),
        ("two", True),
        ("tablets", False),
        ("daily", True),
    ]
    corrected = marked_words("take three tablets", [0.9, 0.3, 0.7, 0.49])
    assert not any(w.low for w in corrected)
    assert not any(w.low for w in marked_words("no numbers", None))
