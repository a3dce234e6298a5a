from __future__ import annotations

import pytest

from app.agents.transcription.wer import normalize_words, word_edit_distance, word_error_rate

REFERENCE = "the patient reports mild chest pain"


def test_identical_transcript_has_zero_wer() -> None:
    assert word_error_rate(REFERENCE, REFERENCE) == 0.0


@pytest.mark.parametrize(
    ("hypothesis", "errors"),
    [
        ("the patient reports wild chest pain", 1),  # substitution
        ("the patient reports chest pain", 1),  # deletion
        ("the patient reports mild mild chest pain", 1),  # insertion
        ("patient reports mild chest pain today", 2),  # deletion + insertion
        ("a patient reported mild chest ache", 3),  # three substitutions
    ],
)
def test_each_substitution_deletion_and_insertion_counts_once(hypothesis: str, errors: int) -> None:
    assert word_error_rate(REFERENCE, hypothesis) == pytest.approx(errors / 6)


def test_case_and_punctuation_are_ignored() -> None:
    assert word_error_rate(REFERENCE, "The patient reports MILD chest-pain.") == 0.0


def test_empty_hypothesis_deletes_every_word() -> None:
    assert word_error_rate(REFERENCE, "") == 1.0


def test_wer_exceeds_one_when_the_hypothesis_adds_words() -> None:
    assert word_error_rate("chest pain", "the reason for my goal to do") == pytest.approx(7 / 2)


def test_empty_reference_is_refused() -> None:
    with pytest.raises(ValueError, match="reference has no words"):
        word_error_rate(" ... ", "anything")


def test_edit_distance_is_symmetric() -> None:
    a = normalize_words("blood pressure is one hundred twenty over eighty")
    b = normalize_words("love pressure is one hundred twenty over a v")
    assert word_edit_distance(a, b) == word_edit_distance(b, a) == 3


def test_normalize_keeps_contractions_and_digits() -> None:
    assert normalize_words("Don't stop, take 2 tablets!") == [
        "don't",
        "stop",
        "take",
        "2",
        "tablets",
    ]
