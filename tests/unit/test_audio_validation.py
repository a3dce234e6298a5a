"""WAV validation and decoding, on committed fixtures and on files written per test."""

from __future__ import annotations

import hashlib
import struct
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from app.agents.base import PermanentError
from app.agents.transcription.audio import (
    AudioLimits,
    inspect_wav,
    read_pcm16k_mono,
    resolve_audio_path,
)
from app.agents.transcription.exceptions import InvalidAudio
from app.config import Settings

FIXTURES = Path(__file__).parent.parent / "fixtures" / "audio"
LIMITS = AudioLimits(max_bytes=10 * 1024 * 1024, min_seconds=0.5, max_seconds=600.0)


def tone(
    seconds: float, rate: int, hz: float = 440.0, amplitude: float = 0.5
) -> npt.NDArray[np.float64]:
    """A sine wave in [-1, 1]."""
    t = np.arange(round(seconds * rate)) / rate
    return amplitude * np.sin(2 * np.pi * hz * t)


def write_wav(
    path: Path,
    samples: npt.NDArray[np.float64],
    *,
    rate: int = 16_000,
    channels: int = 1,
    width: int = 2,
) -> Path:
    """Write float samples (repeated on every channel) as integer PCM of ``width`` bytes."""
    frames = np.repeat(samples[:, None], channels, axis=1).ravel()
    if width == 1:
        raw = np.round(frames * 127 + 128).astype(np.uint8).tobytes()
    elif width == 2:
        raw = np.round(frames * 32767).astype("<i2").tobytes()
    elif width == 3:
        ints = np.round(frames * (2**23 - 1)).astype("<i4")
        raw = ints.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    else:
        raw = np.round(frames * (2**31 - 1)).astype("<i4").tobytes()
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(raw)
    return path


def float_wav(path: Path, seconds: float = 1.0, rate: int = 16_000) -> Path:
    """A WAV of IEEE float samples (format tag 3), which is not integer PCM."""
    data = tone(seconds, rate).astype("<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, rate, rate * 4, 4, 32)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def rejection(path: Path, limits: AudioLimits = LIMITS) -> str:
    with pytest.raises(InvalidAudio) as info:
        inspect_wav(path, limits)
    return info.value.message


def test_fixture_recording_is_described_and_fingerprinted() -> None:
    path = FIXTURES / "chest_pain.wav"
    info = inspect_wav(path, LIMITS)
    assert (info.sample_rate, info.channels, info.sample_bits) == (16_000, 1, 16)
    assert info.size_bytes == path.stat().st_size
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    with wave.open(str(path)) as wav:
        assert info.duration_seconds == pytest.approx(wav.getnframes() / 16_000)


def test_invalid_audio_is_a_permanent_error() -> None:
    assert issubclass(InvalidAudio, PermanentError)


def test_text_file_is_not_a_wav(tmp_path: Path) -> None:
    path = tmp_path / "note.wav"
    path.write_text("patient dictation to follow\n")
    assert rejection(path) == "not a WAV file (no RIFF header)"


def test_other_riff_type_is_not_a_wav(tmp_path: Path) -> None:
    path = tmp_path / "clip.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", 4) + b"AVI " + b"\0" * 32)
    assert "RIFF type is b'AVI '" in rejection(path)


def test_truncated_header_is_corrupt(tmp_path: Path) -> None:
    whole = (FIXTURES / "no_allergies.wav").read_bytes()
    path = tmp_path / "cut.wav"
    path.write_bytes(whole[:30])
    message = rejection(path)
    assert message == "corrupt WAV file: header is truncated"


def test_truncated_data_is_corrupt(tmp_path: Path) -> None:
    whole = (FIXTURES / "no_allergies.wav").read_bytes()
    path = tmp_path / "cut.wav"
    path.write_bytes(whole[: len(whole) // 2])
    message = rejection(path)
    assert "header declares" in message
    assert "truncated?" in message


def test_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.touch()
    assert rejection(path) == "audio file is empty"


def test_missing_file_is_named(tmp_path: Path) -> None:
    assert rejection(tmp_path / "gone.wav") == "audio file not found"


def test_file_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "big.wav", tone(1.0, 16_000))
    size = path.stat().st_size
    limits = AudioLimits(max_bytes=size - 100, min_seconds=0.5, max_seconds=600.0)
    assert rejection(path, limits) == (
        f"audio file is {size} bytes, 100 over the {size - 100}-byte limit"
    )


def test_recording_over_the_duration_limit_says_by_how_much(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "long.wav", tone(3.3, 8_000), rate=8_000)
    limits = AudioLimits(max_bytes=LIMITS.max_bytes, min_seconds=0.5, max_seconds=1.0)
    assert rejection(path, limits) == "audio is 2.3 s over the 1 s limit (lasts 3.3 s)"


def test_recording_under_the_minimum_is_refused(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "blip.wav", tone(0.2, 16_000))
    assert rejection(path) == "audio lasts 0.20 s, under the 0.5 s minimum"


@pytest.mark.parametrize("rate", [4_000, 96_000])
def test_sample_rate_outside_8_to_48_khz_is_refused(tmp_path: Path, rate: int) -> None:
    path = write_wav(tmp_path / "odd.wav", tone(1.0, rate), rate=rate)
    assert rejection(path) == f"sample rate {rate} Hz is outside 8000 to 48000 Hz"


def test_more_than_two_channels_is_refused(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "surround.wav", tone(1.0, 16_000), channels=3)
    assert rejection(path) == "audio has 3 channels; only mono or stereo is accepted"


def test_float_samples_are_refused_as_not_pcm(tmp_path: Path) -> None:
    message = rejection(float_wav(tmp_path / "float.wav"))
    assert message == "unsupported WAV encoding (IEEE float); only integer PCM is accepted"


@pytest.mark.parametrize(
    ("rate", "channels", "width"),
    [(8_000, 2, 1), (16_000, 1, 2), (22_050, 2, 2), (44_100, 1, 3), (48_000, 2, 4)],
)
def test_integer_pcm_variants_decode_to_16khz_mono(
    tmp_path: Path, rate: int, channels: int, width: int
) -> None:
    path = write_wav(
        tmp_path / "tone.wav", tone(1.0, rate), rate=rate, channels=channels, width=width
    )
    info = inspect_wav(path, LIMITS)
    assert (info.sample_rate, info.channels, info.sample_bits) == (rate, channels, width * 8)

    samples = read_pcm16k_mono(path)
    assert samples.dtype == np.int16
    assert len(samples) == 16_000
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    assert np.argmax(spectrum) == pytest.approx(440, abs=2)  # 1 s of audio: bin = Hz
    peak = np.abs(samples[100:-100]).max() / 32767
    assert peak == pytest.approx(0.5, abs=0.02)


def test_24_bit_negative_samples_keep_their_sign(tmp_path: Path) -> None:
    values = np.array([-0.75, -0.25, 0.0, 0.25, 0.75] * 3200)
    path = write_wav(tmp_path / "steps.wav", values, width=3)
    samples = read_pcm16k_mono(path)
    assert samples[:5].tolist() == pytest.approx([-24575, -8192, 0, 8192, 24575], abs=1)


def test_relative_paths_resolve_inside_the_audio_folder(tmp_path: Path) -> None:
    assert resolve_audio_path("a/b.wav", tmp_path) == (tmp_path / "a" / "b.wav").resolve()
    inside = str((tmp_path / "c.wav").resolve())
    assert resolve_audio_path(inside, tmp_path) == Path(inside)


@pytest.mark.parametrize("raw", ["../secret.wav", "/etc/passwd", "a/../../x.wav"])
def test_paths_outside_the_audio_folder_are_refused(tmp_path: Path, raw: str) -> None:
    with pytest.raises(InvalidAudio, match="is outside the audio folder"):
        resolve_audio_path(raw, tmp_path / "audio")


def test_symlink_out_of_the_audio_folder_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "audio"
    root.mkdir()
    (root / "link.wav").symlink_to(FIXTURES / "chest_pain.wav")
    with pytest.raises(InvalidAudio, match="is outside the audio folder"):
        resolve_audio_path("link.wav", root)


def test_limits_come_from_settings() -> None:
    settings = Settings(
        _env_file=None,
        audio_max_bytes=1234,
        audio_min_seconds=1.5,
        audio_max_seconds=30.0,
    )
    assert AudioLimits.from_settings(settings) == AudioLimits(1234, 1.5, 30.0)
