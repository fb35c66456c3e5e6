"""audiodb's embedding against the notebook's own function (librosa), on real files."""

from __future__ import annotations

import numpy as np
import pytest
from audio import music_like, silence, tone, write_audio

from audiodb.analysis.embed import embed_file
from audiodb.analysis.filters import mel_filters
from audiodb.analysis.notebook import embedding
from audiodb.analysis.params import FEATURE_NAMES, NOTEBOOK
from audiodb.analysis.reference import extract_acoustic_embedding, tolerance


def assert_parity(ours: np.ndarray, theirs: np.ndarray) -> None:
    rel, absolute = tolerance(FEATURE_NAMES)
    bad = np.abs(ours - theirs) > np.maximum(rel * np.abs(theirs), absolute)
    if bad.any():
        lines = [f"{FEATURE_NAMES[i]}: ours {ours[i]!r} notebook {theirs[i]!r}" for i in np.flatnonzero(bad)]
        raise AssertionError("features outside tolerance:\n" + "\n".join(lines[:20]))


def test_names_and_order_are_the_notebooks():
    assert len(FEATURE_NAMES) == 180
    assert FEATURE_NAMES[:3] == ("mel_mean_0", "mel_mean_1", "mel_mean_2")
    assert FEATURE_NAMES[64] == "mel_std_0" and FEATURE_NAMES[128] == "mfcc_mean_0"
    assert FEATURE_NAMES[148] == "mfcc_std_0"
    assert FEATURE_NAMES[168:] == (
        "spec_cent_mean",
        "spec_cent_std",
        "spec_bw_mean",
        "spec_bw_std",
        "spec_roll_mean",
        "spec_roll_std",
        "spec_flat_mean",
        "spec_flat_std",
        "rms_mean",
        "rms_std",
        "zcr_mean",
        "zcr_std",
    )


def test_mel_filters_equal_librosas():
    import librosa

    ours = mel_filters(sr=22050, n_fft=2048, n_mels=64)
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours, librosa.filters.mel(sr=22050, n_fft=2048, n_mels=64))


# Every format libsndfile reads (what librosa.load uses), at several rates and channel counts.
FORMATS = [
    ("wav", 22050, 1),
    ("wav", 44100, 2),
    ("flac", 48000, 2),
    ("ogg", 44100, 2),
    ("oga", 32000, 1),
    ("mp3", 44100, 2),
    ("opus", 48000, 2),
    ("aiff", 44100, 1),
    ("aif", 8000, 1),
]


@pytest.mark.parametrize("ext,sr,channels", FORMATS)
def test_matches_the_notebook_on_every_libsndfile_format(tmp_path, ext, sr, channels):
    path = write_audio(tmp_path / f"music.{ext}", music_like(6.0, sr, seed=sr + channels, channels=channels), sr)
    theirs = extract_acoustic_embedding(path)
    vector, meta = embed_file(str(path))
    assert vector.shape == (180,) and vector.dtype == np.float32
    assert_parity(vector.astype(np.float64), theirs["embedding"])
    assert meta["duration_sec"] == pytest.approx(theirs["duration_sec"], abs=1e-9)
    assert meta["sample_rate"] == theirs["sample_rate"] == 22050
    assert meta["native_sample_rate"] == sr and meta["channels"] == channels
    assert meta["decoder"] == ("libopus" if ext == "opus" else "libsndfile")  # see tests/test_decode_choice.py


@pytest.mark.parametrize("block", [1, 7, 2048])
def test_blocked_stft_does_not_change_the_numbers(block):
    y = music_like(4.0, 22050, seed=11)
    np.testing.assert_allclose(embedding(y, block=block), embedding(y, block=100000), rtol=1e-5, atol=1e-6)


def test_trimming_and_its_fallback_match_the_notebook(tmp_path):
    sr = 22050
    # Loud 0.2 s burst in 3 s of near-silence: trimming leaves < 0.5 s, so the notebook falls back.
    y = silence(3.0, sr) + 1e-5
    y[sr : sr + sr // 5] = tone(0.2, sr, 1000.0, 0.8)
    path = write_audio(tmp_path / "burst.wav", y, sr, subtype="FLOAT")
    assert_parity(embed_file(str(path))[0].astype(float), extract_acoustic_embedding(path)["embedding"])


EDGE_CASES = {
    "silence": lambda: (silence(2.0, 22050), 22050, "PCM_16"),
    "tiny_10_samples": lambda: (tone(10 / 22050, 22050), 22050, "PCM_16"),
    "tenth_of_a_second": lambda: (tone(0.1, 44100), 44100, "PCM_16"),
    "8khz": lambda: (music_like(3.0, 8000, seed=3), 8000, "PCM_16"),
    "96khz_24bit": lambda: (music_like(2.0, 96000, seed=4, channels=2), 96000, "PCM_24"),
    "6_channels": lambda: (np.stack([music_like(2.0, 48000, seed=s) for s in range(6)], axis=1), 48000, "PCM_16"),
    "dc_offset": lambda: (np.full(22050, 0.25, dtype=np.float32), 22050, "FLOAT"),
}


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
def test_unusual_valid_input_gives_finite_numbers_matching_the_notebook(tmp_path, case):
    y, sr, subtype = EDGE_CASES[case]()
    path = write_audio(tmp_path / f"{case}.wav", y, sr, subtype=subtype)
    vector, meta = embed_file(str(path))
    assert np.all(np.isfinite(vector))
    assert_parity(vector.astype(float), extract_acoustic_embedding(path)["embedding"])


def test_m4a_is_decoded_with_ffmpeg_and_lands_near_its_source(tmp_path):
    y = music_like(5.0, 44100, seed=9, channels=2)
    wav = write_audio(tmp_path / "x.wav", y, 44100)
    m4a = write_audio(tmp_path / "x.m4a", y, 44100)
    v_wav, _ = embed_file(str(wav))
    v_m4a, meta = embed_file(str(m4a))
    assert meta["decoder"] == "ffmpeg" and meta["codec"] == "aac" and meta["channels"] == 2
    assert np.all(np.isfinite(v_m4a))
    # Lossy, so not parity: but much closer to its own source than to other music.
    other, _ = embed_file(str(write_audio(tmp_path / "o.wav", music_like(5.0, 44100, seed=10, channels=2), 44100)))
    scale = np.abs(v_wav) + 1.0
    assert np.linalg.norm((v_m4a - v_wav) / scale) < 0.5 * np.linalg.norm((other - v_wav) / scale)


def test_feature_set_id_changes_with_any_parameter():
    import dataclasses

    assert NOTEBOOK.id.startswith("notebook-")
    assert dataclasses.replace(NOTEBOOK, n_mels=128).id != NOTEBOOK.id
    assert dataclasses.replace(NOTEBOOK, top_db=60).id != NOTEBOOK.id
    assert dataclasses.replace(NOTEBOOK).id == NOTEBOOK.id


@pytest.mark.parametrize("n", [1, 100, 511, 512, 2048, 2049, 22050 * 3 + 17])
def test_per_frame_rms_and_zcr_match_librosa(n):
    import librosa

    from audiodb.analysis.frames import frame_features

    rng = np.random.default_rng(n)
    y = (rng.standard_normal(n) * 0.1).astype(np.float32)
    y[: n // 3] = 0.0  # exact zeros: the crossing threshold and silent frames
    frames = frame_features(y, block=5)
    np.testing.assert_array_equal(frames["zcr"], librosa.feature.zero_crossing_rate(y)[0])
    np.testing.assert_allclose(frames["rms"], librosa.feature.rms(y=y)[0], rtol=2e-6, atol=1e-9)
    np.testing.assert_array_equal(
        frames["rolloff"], librosa.feature.spectral_rolloff(y=y, sr=22050, roll_percent=0.85)[0]
    )
