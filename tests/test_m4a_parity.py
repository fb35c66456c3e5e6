"""``.m4a`` against the notebook.

libsndfile cannot open MP4, so ``librosa.load`` falls back to audioread, which
runs the ``ffmpeg`` program to 16-bit PCM (``-f s16le``) and divides by 32768.
audiodb decodes with PyAV and must land on the same samples: same sample
format (16-bit, rounded as libswresample does), same start (FFmpeg's handling
of the encoder delay), same channel mix. Files are made by FFmpeg's encoders.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from audio import ffmpeg_encode, music_like, silence, write_audio

from audiodb.analysis.embed import embed_file
from audiodb.analysis.params import FEATURE_NAMES
from audiodb.analysis.reference import extract_acoustic_embedding, tolerance

CASES = [
    # (name, seconds, rate, channels, ffmpeg encoder arguments)
    ("aac-stereo-44k", 8.0, 44100, 2, ("-c:a", "aac", "-b:a", "128k")),
    ("aac-mono-48k", 6.0, 48000, 1, ("-c:a", "aac", "-b:a", "96k")),
    ("aac-stereo-22k-low-bitrate", 6.0, 22050, 2, ("-c:a", "aac", "-b:a", "48k")),
    ("alac-24bit", 4.0, 44100, 2, ("-c:a", "alac", "-sample_fmt", "s32p")),
]


def _notebook(path) -> dict:
    with warnings.catch_warnings():  # librosa warns that its audioread fallback is deprecated
        warnings.simplefilter("ignore")
        return extract_acoustic_embedding(path)


@pytest.mark.slow
@pytest.mark.parametrize("name,seconds,rate,channels,encoder", CASES, ids=[c[0] for c in CASES])
def test_m4a_matches_the_notebook_within_1e_3(tmp_path, name, seconds, rate, channels, encoder):
    y = music_like(seconds, rate, seed=rate + channels, channels=channels)
    if name.startswith("aac"):
        # quiet passages, where 16-bit rounding and float decoding part most
        y = np.concatenate([y, 1e-3 * y[: rate * 2], silence(1.0, rate).reshape(-1, *y.shape[1:])])
    src = write_audio(tmp_path / "src.wav", y, rate, subtype="FLOAT")
    path = ffmpeg_encode(src, tmp_path / f"{name}.m4a", *encoder)
    theirs = _notebook(path)
    vector, meta = embed_file(str(path))
    assert meta["decoder"] == "ffmpeg" and meta["channels"] == channels
    assert meta["duration_sec"] == pytest.approx(theirs["duration_sec"], abs=1e-9)
    expected = theirs["embedding"]
    _, absolute = tolerance(FEATURE_NAMES)
    bad = np.abs(vector - expected) > np.maximum(1e-3 * np.abs(expected), absolute)
    assert not bad.any(), [(FEATURE_NAMES[i], float(vector[i]), float(expected[i])) for i in np.flatnonzero(bad)]
