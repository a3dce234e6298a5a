"""Recordings on disk: find them, check they are WAV/PCM within limits, decode to 16 kHz.

Accepted: RIFF/WAVE, integer PCM of 8, 16, 24 or 32 bits, mono or stereo, 8 to 48 kHz,
no larger than ``AUDIO_MAX_BYTES`` and lasting between ``AUDIO_MIN_SECONDS`` and
``AUDIO_MAX_SECONDS``. Anything else raises :class:`InvalidAudio` naming what is wrong.
The recogniser wants 16 kHz mono 16-bit samples, which :func:`read_pcm16k_mono` returns.
"""

from __future__ import annotations

import hashlib
import struct
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from app.agents.transcription.exceptions import InvalidAudio
from app.config import Settings
from app.validation import inside_folder

#: Sample rate the recogniser's acoustic model was trained on.
RECOGNIZER_SAMPLE_RATE = 16_000
MIN_SAMPLE_RATE = 8_000
MAX_SAMPLE_RATE = 48_000
#: Bytes per sample the ``wave`` module reports, and the bit depths they stand for.
SAMPLE_BITS = {1: 8, 2: 16, 3: 24, 4: 32}

#: WAV format tags the ``wave`` module refuses, named for the error message.
_FORMAT_TAGS = {
    "3": "IEEE float",
    "6": "A-law",
    "7": "mu-law",
    "65534": "WAVE_FORMAT_EXTENSIBLE; re-save as plain PCM",
}
_HASH_CHUNK = 1 << 20
_READ_FRAMES = 1 << 16
#: Taps of the anti-aliasing filter applied before downsampling (odd: symmetric, no delay).
_LOWPASS_TAPS = 101


@dataclass(frozen=True)
class AudioLimits:
    """What a recording must satisfy to be accepted."""

    max_bytes: int
    min_seconds: float
    max_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> AudioLimits:
        """The limits configured by ``AUDIO_MAX_BYTES``, ``AUDIO_MIN/MAX_SECONDS``."""
        return cls(settings.audio_max_bytes, settings.audio_min_seconds, settings.audio_max_seconds)


@dataclass(frozen=True)
class AudioInfo:
    """What validation learnt about an accepted recording."""

    size_bytes: int
    sha256: str
    sample_rate: int
    channels: int
    sample_bits: int
    frames: int

    @property
    def duration_seconds(self) -> float:
        """Length of the recording in seconds."""
        return self.frames / self.sample_rate


def resolve_audio_path(raw: str, audio_root: Path) -> Path:
    """The recording's absolute path, refusing anything outside ``audio_root``.

    Relative paths are taken from ``audio_root`` (``AUDIO_DIR``); symlinks and ``..`` are
    resolved first, so a request cannot make the service read arbitrary files.
    """
    path = inside_folder(raw, audio_root)
    if path is None:
        raise InvalidAudio("audio_file_path is outside the audio folder")
    return path


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def inspect_wav(path: Path, limits: AudioLimits) -> AudioInfo:
    """Check ``path`` is an acceptable WAV/PCM recording and describe it.

    Raises :class:`InvalidAudio` with a message naming the first problem found. Messages
    never repeat the file name or path, which might identify a patient.
    """
    if not path.is_file():
        raise InvalidAudio("audio file not found")
    size = path.stat().st_size
    if size == 0:
        raise InvalidAudio("audio file is empty")
    if size > limits.max_bytes:
        raise InvalidAudio(
            f"audio file is {size} bytes, {size - limits.max_bytes} over the "
            f"{limits.max_bytes}-byte limit"
        )
    with path.open("rb") as fh:
        head = fh.read(12)
        if head[:4] != b"RIFF":
            raise InvalidAudio("not a WAV file (no RIFF header)")
        if head[8:12] != b"WAVE":
            raise InvalidAudio(f"not a WAV file (RIFF type is {head[8:12]!r}, not b'WAVE')")
        fh.seek(0)
        rate, channels, width, frames = _read_format(fh)
    _check_format(rate, channels, width)
    duration = frames / rate
    if duration < limits.min_seconds:
        raise InvalidAudio(
            f"audio lasts {duration:.2f} s, under the {limits.min_seconds:g} s minimum"
        )
    if duration > limits.max_seconds:
        raise InvalidAudio(
            f"audio is {duration - limits.max_seconds:.1f} s over the "
            f"{limits.max_seconds:g} s limit (lasts {duration:.1f} s)"
        )
    return AudioInfo(
        size_bytes=size,
        sha256=file_sha256(path),
        sample_rate=rate,
        channels=channels,
        sample_bits=SAMPLE_BITS[width],
        frames=frames,
    )


def _read_format(fh: BinaryIO) -> tuple[int, int, int, int]:
    """Sample rate, channels, bytes per sample and frames actually present."""
    try:
        with wave.open(fh, "rb") as wav:
            rate, channels, width = wav.getframerate(), wav.getnchannels(), wav.getsampwidth()
            declared = wav.getnframes()
            present = 0
            while chunk := wav.readframes(_READ_FRAMES):
                present += len(chunk) // (width * channels)
    except (EOFError, struct.error) as exc:
        raise InvalidAudio("corrupt WAV file: header is truncated") from exc
    except wave.Error as exc:
        reason = str(exc)
        if reason.startswith("unknown format"):
            tag = reason.rsplit(":", 1)[-1].strip()
            encoding = _FORMAT_TAGS.get(tag, f"format tag {tag}")
            raise InvalidAudio(
                f"unsupported WAV encoding ({encoding}); only integer PCM is accepted"
            ) from exc
        raise InvalidAudio(f"corrupt WAV file: {reason}") from exc
    if present < declared:
        raise InvalidAudio(
            f"corrupt WAV file: header declares {declared} frames "
            f"but only {present} are present (truncated?)"
        )
    return rate, channels, width, declared


def _check_format(rate: int, channels: int, width: int) -> None:
    if width not in SAMPLE_BITS:
        raise InvalidAudio(
            f"unsupported sample width of {width} bytes; use 8, 16, 24 or 32-bit PCM"
        )
    if channels not in (1, 2):
        raise InvalidAudio(f"audio has {channels} channels; only mono or stereo is accepted")
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise InvalidAudio(
            f"sample rate {rate} Hz is outside {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz"
        )


def read_pcm16k_mono(path: Path) -> npt.NDArray[np.int16]:
    """Decode an accepted WAV file to 16 kHz mono 16-bit samples for the recogniser.

    Channels are averaged; other rates are resampled (windowed-sinc low-pass when
    downsampling, then linear interpolation), which is ample for speech recognition.
    """
    try:
        with wave.open(str(path), "rb") as wav:
            rate, channels, width = wav.getframerate(), wav.getnchannels(), wav.getsampwidth()
            mono = np.empty(wav.getnframes(), dtype=np.float32)
            filled = 0
            while chunk := wav.readframes(_READ_FRAMES):
                block = _to_float(chunk, width).reshape(-1, channels).mean(axis=1)
                mono[filled : filled + len(block)] = block
                filled += len(block)
    except (EOFError, struct.error, wave.Error) as exc:
        raise InvalidAudio(f"corrupt WAV file: {exc}") from exc
    resampled = resample(mono[:filled], rate, RECOGNIZER_SAMPLE_RATE)
    scaled = np.round(resampled * 32767.0)
    return np.clip(scaled, -32768, 32767).astype(np.int16)


def resample(samples: npt.NDArray[np.float32], rate: int, target: int) -> npt.NDArray[np.float32]:
    """Resample float samples from ``rate`` to ``target`` Hz."""
    if rate == target or len(samples) == 0:
        return samples
    if target < rate:
        samples = _lowpass(samples, cutoff=0.45 * target / rate)
    count = round(len(samples) * target / rate)
    positions = np.arange(count, dtype=np.float64) * (rate / target)
    resampled = np.interp(positions, np.arange(len(samples), dtype=np.float64), samples)
    return resampled.astype(np.float32)


def _lowpass(samples: npt.NDArray[np.float32], cutoff: float) -> npt.NDArray[np.float32]:
    """Hamming-windowed sinc low-pass; ``cutoff`` is a fraction of the sample rate."""
    n = np.arange(_LOWPASS_TAPS) - (_LOWPASS_TAPS - 1) / 2
    taps = 2 * cutoff * np.sinc(2 * cutoff * n) * np.hamming(_LOWPASS_TAPS)
    taps = (taps / taps.sum()).astype(np.float32)
    return np.convolve(samples, taps, mode="same").astype(np.float32)


def _to_float(raw: bytes, width: int) -> npt.NDArray[np.float32]:
    """Little-endian integer PCM to floats in [-1, 1)."""
    if width == 1:  # 8-bit WAV is unsigned, centred on 128
        return (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    if width == 2:
        return np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    if width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        value = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        value = np.where(value >= 1 << 23, value - (1 << 24), value)
        return value.astype(np.float32) / float(1 << 23)
    return (np.frombuffer(raw, dtype="<i4").astype(np.float64) / float(1 << 31)).astype(np.float32)
