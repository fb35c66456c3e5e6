"""The decoder's shortcuts give ``librosa.load``'s bits: 16-bit PCM read as integers, reused soxr streams."""

from __future__ import annotations

import threading

import librosa
import numpy as np
import pytest
from audio import music_like, write_audio

from audiodb.analysis.decode import load
from audiodb.errors import DecodeError


def librosa_load(path) -> np.ndarray:
    return librosa.load(path, sr=22050, mono=True)[0]


@pytest.mark.parametrize(
    ("ext", "subtype", "sr", "channels"),
    [
        ("wav", "PCM_16", 44100, 1),
        ("wav", "PCM_16", 44100, 2),
        ("wav", "PCM_16", 48000, 4),
        ("wav", "PCM_16", 22050, 2),  # no resampling
        ("wav", "PCM_24", 44100, 2),  # read as float by libsndfile
        ("aiff", "PCM_16", 32000, 2),
        ("flac", "PCM_16", 44100, 2),
    ],
)
def test_pcm_is_librosas_samples_bit_for_bit(tmp_path, ext, subtype, sr, channels):
    y = music_like(1.3, sr, seed=channels, channels=channels)
    y[:50] = 1.0  # full scale: the extreme integers
    y[50:100] = -1.0
    path = write_audio(tmp_path / f"a.{ext}", y, sr, subtype=subtype)
    decoded = load(path)
    np.testing.assert_array_equal(decoded.y, librosa_load(path))
    assert decoded.y.dtype == np.float32 and decoded.channels == channels and decoded.native_sr == sr


def test_a_long_16_bit_wav_read_in_blocks_is_librosas(tmp_path):
    path = write_audio(tmp_path / "long.wav", music_like(4.0, 44100, seed=5, channels=2), 44100)  # 3 blocks of 64 Ki
    np.testing.assert_array_equal(load(path).y, librosa_load(path))


def test_a_reused_resampler_gives_a_fresh_ones_bits(tmp_path):
    """Streams are kept per thread and rate pair and cleared before use, also after a decode that failed."""
    a = write_audio(tmp_path / "a.wav", music_like(1.0, 44100, seed=1, channels=2), 44100)
    b = write_audio(tmp_path / "b.flac", music_like(2.0, 48000, seed=2), 48000)
    short = write_audio(tmp_path / "short.wav", music_like(0.05, 44100, seed=3), 44100)
    expected = {p: librosa_load(p) for p in (a, b, short)}
    damaged = tmp_path / "damaged.wav"
    damaged.write_bytes(a.read_bytes()[:44] + b"\x00" * 3)  # a header and one odd byte of data
    for p in (a, b, a, short, a, b):
        np.testing.assert_array_equal(load(p).y, expected[p])
        with pytest.raises(DecodeError):
            load(damaged)
    results: dict[int, list[bool]] = {}

    def work(k: int) -> None:
        results[k] = [np.array_equal(load(p).y, expected[p]) for p in (a, b, short, a) * 3]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(all(v) for v in results.values()) and len(results) == 3
