"""Is a transcript good enough to file without a clinician listening to the recording?

Verification works on numbers only (word posteriors, timings, voice activity), never on the
transcript text, so its inputs and results can sit in the audit trail. Two checks decide:

- **confidence**: the mean word posterior (see ``recognizer.py``) must reach
  ``TRANSCRIPT_MIN_CONFIDENCE``;
- **completeness**: the recognised words must account for most of the audio the
  voice-activity detector heard (``speech_coverage``), at a plausible speaking rate, and
  there must be at least one word.

Measured with PocketSphinx 5.1.1's bundled en-us model on the espeak-ng fixtures in
``tests/fixtures/audio``: five clean sentences (with a -51 dBFS noise floor), and three of
them under white noise at 0.03 to 0.15 of full scale (SNR about +12 to -2 dB; 13 files
including ``noisy_speech.wav``):

====================  ================  ====================
metric                clean (5 files)   noisy (13 files)
====================  ================  ====================
mean word posterior   0.45 - 0.70       0.02 - 0.41
speech coverage       0.86 - 0.96       0.04 - 0.79
words / voiced sec    1.8 - 2.6         0.2 - 2.3
words below 0.5       17 % - 75 %       60 % - 100 %
====================  ================  ====================

With ``TRANSCRIPT_MIN_CONFIDENCE`` 0.40 every clean file passes and 12 of the 13 noisy ones
fail on confidence; coverage below 0.80 flags all 13, the last one included. The share of
low-posterior words overlaps between the sets, so it is reported but does not decide.
Synthetic speech is not dictation: re-measure on real recordings before relying on these.
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import fmean

from pydantic import BaseModel, Field

#: A word whose posterior is below this counts as low-confidence in the report.
LOW_CONFIDENCE_WORD = 0.5
#: Fraction of voiced audio that recognised words must cover.
MIN_SPEECH_COVERAGE = 0.8
#: Plausible dictation speed, in words per second of voiced audio.
MIN_WORDS_PER_SECOND = 0.5
MAX_WORDS_PER_SECOND = 6.0

#: Why a transcript needs review; stable codes shown to the reviewer.
NO_WORDS = "no_words_recognised"
LOW_CONFIDENCE = "confidence_below_minimum"
LOW_COVERAGE = "speech_not_covered"
TOO_SLOW = "speaking_rate_too_low"
TOO_FAST = "speaking_rate_too_high"


class Verification(BaseModel):
    """The verdict on one transcript, with the measurements behind it."""

    passed: bool
    #: Reason codes, empty when ``passed``.
    reasons: list[str]
    confidence: float = Field(ge=0.0, le=1.0)
    min_confidence: float
    word_count: int = Field(ge=0)
    low_confidence_words: float = Field(ge=0.0, le=1.0)
    duration_seconds: float = Field(ge=0.0)
    voiced_seconds: float = Field(ge=0.0)
    speech_coverage: float = Field(ge=0.0, le=1.0)
    words_per_second: float = Field(ge=0.0)


def verify_transcript(
    *,
    word_confidences: Sequence[float],
    duration_seconds: float,
    voiced_seconds: float,
    voiced_seconds_in_words: float,
    min_confidence: float,
) -> Verification:
    """Check a transcript's confidence and completeness from its numbers alone.

    ``voiced_seconds`` is how much of the recording sounded like speech and
    ``voiced_seconds_in_words`` how much of that the recognised words span.
    """
    count = len(word_confidences)
    confidence = fmean(word_confidences) if count else 0.0
    low = sum(c < LOW_CONFIDENCE_WORD for c in word_confidences) / count if count else 0.0
    coverage = min(1.0, voiced_seconds_in_words / voiced_seconds) if voiced_seconds else 0.0
    rate = count / voiced_seconds if voiced_seconds else 0.0

    reasons: list[str] = []
    if count == 0:
        reasons.append(NO_WORDS)
    if confidence < min_confidence:
        reasons.append(LOW_CONFIDENCE)
    if coverage < MIN_SPEECH_COVERAGE:
        reasons.append(LOW_COVERAGE)
    if count and rate < MIN_WORDS_PER_SECOND:
        reasons.append(TOO_SLOW)
    if rate > MAX_WORDS_PER_SECOND:
        reasons.append(TOO_FAST)
    return Verification(
        passed=not reasons,
        reasons=reasons,
        confidence=round(confidence, 4),
        min_confidence=min_confidence,
        word_count=count,
        low_confidence_words=round(low, 4),
        duration_seconds=round(duration_seconds, 3),
        voiced_seconds=round(voiced_seconds, 3),
        speech_coverage=round(coverage, 4),
        words_per_second=round(rate, 3),
    )
