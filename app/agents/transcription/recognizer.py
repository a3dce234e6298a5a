"""Offline speech recognition with PocketSphinx and the English model its wheel ships.

A word's confidence is its **lattice posterior probability**: after decoding, PocketSphinx
computes forward-backward posteriors over the word lattice (``Decoder.get_prob()``), and
each segment's ``prob`` is then the probability that this word occupies that span given
the audio. Posteriors are near 1 where the decoder had no competing hypothesis and fall
where many words fit the sound equally badly. The utterance confidence is the mean word
posterior (0 when nothing was recognised). See ``verify.py`` for the numbers measured on
clean and noisy speech.

Decoding is CPU-bound: about a fifth of the audio's length on one core for clean speech,
more than its whole length for noisy audio (the search widens). :meth:`Recognizer.recognize`
runs it in a worker thread (PocketSphinx releases the GIL while it decodes, so the event
loop keeps heartbeating); decoders are pooled because each holds the models (~0.3-0.5 s
to load) and is not thread-safe.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from statistics import fmean
from typing import Any

import numpy as np
import numpy.typing as npt
from pocketsphinx import Decoder, Vad

from app.agents.transcription.audio import RECOGNIZER_SAMPLE_RATE

#: PocketSphinx log level: its model-loading chatter would otherwise go to stderr.
_LOG_LEVEL = "FATAL"
#: How eagerly the voice-activity detector calls a frame speech (0 loose ... 3 strict).
_VAD_MODE = 0


@dataclass(frozen=True)
class RecognizedWord:
    """One recognised word, where it lies in the audio and how sure the decoder is."""

    word: str
    start_seconds: float
    end_seconds: float
    #: Lattice posterior probability of this word on this span, in [0, 1].
    confidence: float

    @property
    def seconds(self) -> float:
        """How long the word lasts."""
        return self.end_seconds - self.start_seconds


@dataclass(frozen=True)
class Recognition:
    """The decoder's best hypothesis for one recording."""

    words: tuple[RecognizedWord, ...]
    #: Seconds of audio the voice-activity detector classed as speech.
    voiced_seconds: float
    #: Seconds of voiced audio that fall inside a recognised word.
    voiced_seconds_in_words: float
    decode_ms: int

    @property
    def text(self) -> str:
        """The transcript: recognised words separated by spaces."""
        return " ".join(w.word for w in self.words)

    @property
    def confidence(self) -> float:
        """Mean word posterior; 0 when no word was recognised."""
        return fmean(w.confidence for w in self.words) if self.words else 0.0


class Recognizer:
    """English speech-to-text with PocketSphinx; safe to share between threads."""

    def __init__(self, **decoder_config: Any) -> None:
        """Keep ``decoder_config`` (PocketSphinx options, e.g. ``hmm=``, ``lm=``) for decoders."""
        self._config: dict[str, Any] = {"loglevel": _LOG_LEVEL, **decoder_config}
        self._idle: list[Decoder] = []
        self._lock = threading.Lock()

    async def recognize(self, samples: npt.NDArray[np.int16]) -> Recognition:
        """Transcribe 16 kHz mono 16-bit ``samples`` in a worker thread."""
        return await asyncio.to_thread(self.recognize_sync, samples)

    def recognize_sync(self, samples: npt.NDArray[np.int16]) -> Recognition:
        """Transcribe 16 kHz mono 16-bit ``samples`` in the calling thread."""
        raw = samples.astype("<i2", copy=False).tobytes()
        decoder = self._acquire()
        try:
            started = time.perf_counter()
            # Feature normalisation (CMN) otherwise carries over from the previous
            # utterance, so the same audio would score differently depending on what the
            # pooled decoder heard before; resetting it makes results reproducible.
            decoder.reinit_feat()
            decoder.start_utt()
            decoder.process_raw(raw, full_utt=True)
            decoder.end_utt()
            words = _best_words(decoder)
            decode_ms = round((time.perf_counter() - started) * 1000)
        finally:
            self._release(decoder)
        voiced, voiced_in_words = _voice_activity(raw, words)
        return Recognition(words, voiced, voiced_in_words, decode_ms)

    def _acquire(self) -> Decoder:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return Decoder(**self._config)

    def _release(self, decoder: Decoder) -> None:
        with self._lock:
            self._idle.append(decoder)


@lru_cache(maxsize=1)
def default_recognizer() -> Recognizer:
    """The process-wide recogniser using the wheel's bundled US English model."""
    return Recognizer()


def _best_words(decoder: Decoder) -> tuple[RecognizedWord, ...]:
    """Words of the best hypothesis with their posteriors (fillers and silence dropped)."""
    if decoder.hyp() is None:
        return ()
    # Computing the hypothesis posterior runs forward-backward over the lattice, which is
    # what fills in each segment's ``prob``; without it every segment reports 1.0.
    decoder.get_prob()
    frame_rate = float(decoder.config["frate"])
    words = []
    for seg in decoder.seg():
        word: str = seg.word
        if word.startswith(("<", "[", "+")):  # <s>, </s>, <sil>, [NOISE], [SPEECH]
            continue
        words.append(
            RecognizedWord(
                word=word.split("(", 1)[0],  # "to(2)" names an alternate pronunciation
                start_seconds=seg.start_frame / frame_rate,
                end_seconds=(seg.end_frame + 1) / frame_rate,
                confidence=min(1.0, max(0.0, float(seg.prob))),
            )
        )
    return tuple(words)


def _voice_activity(raw: bytes, words: tuple[RecognizedWord, ...]) -> tuple[float, float]:
    """Seconds of voiced audio, and how many of them lie inside recognised words."""
    vad = Vad(_VAD_MODE, RECOGNIZER_SAMPLE_RATE)
    frame_bytes: int = vad.frame_bytes
    frame_seconds = frame_bytes / 2 / RECOGNIZER_SAMPLE_RATE
    starts = np.array([w.start_seconds for w in words])
    ends = np.array([w.end_seconds for w in words])
    voiced = in_words = 0
    for offset in range(0, len(raw) - frame_bytes + 1, frame_bytes):
        if not vad.is_speech(raw[offset : offset + frame_bytes]):
            continue
        voiced += 1
        middle = (offset / 2 / RECOGNIZER_SAMPLE_RATE) + frame_seconds / 2
        if np.any((starts <= middle) & (middle < ends)):
            in_words += 1
    return voiced * frame_seconds, in_words * frame_seconds
