"""Word error rate: how far a transcript is from what was said.

WER = (substitutions + deletions + insertions) / words in the reference, i.e. the
word-level Levenshtein distance over the reference length. It can exceed 1 when the
hypothesis adds many words. Used to measure the recogniser, not in the workflow (which
has no reference text).
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-z0-9']+")


def normalize_words(text: str) -> list[str]:
    """Lower-case words with punctuation dropped: ``"Chest-pain."`` -> ``["chest", "pain"]``."""
    return _WORD.findall(text.lower())


def word_edit_distance(reference: list[str], hypothesis: list[str]) -> int:
    """Fewest word substitutions, deletions and insertions turning one list into the other."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, start=1):
        current = [i]
        for j, hyp_word in enumerate(hypothesis, start=1):
            current.append(
                min(
                    previous[j] + 1,  # deletion: reference word missing from hypothesis
                    current[j - 1] + 1,  # insertion: extra hypothesis word
                    previous[j - 1] + (ref_word != hyp_word),  # match or substitution
                )
            )
        previous = current
    return previous[-1]


def word_error_rate(reference: str, hypothesis: str) -> float:
    """WER of ``hypothesis`` against ``reference`` (case and punctuation ignored).

    Raises ``ValueError`` for an empty reference, where WER is undefined.
    """
    ref = normalize_words(reference)
    if not ref:
        raise ValueError("the reference has no words; WER is undefined")
    return word_edit_distance(ref, normalize_words(hypothesis)) / len(ref)
