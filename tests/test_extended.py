"""The second feature set (contrast, chroma, onsets, tempo) against librosa's own functions."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from audio import music_like, silence, tone, write_audio

from audiodb.analysis.decode import load
from audiodb.analysis.extended import embeddings
from audiodb.analysis.notebook import embedding
from audiodb.analysis.params import EXTENDED, NOTEBOOK
from audiodb.analysis.reference import extended_reference


def assert_close(ours: np.ndarray, theirs: np.ndarray) -> None:
    # float32 spectra summed in another order: ~1e-6 relative; tempo and clarity exact-ish.
    bad = np.abs(ours - theirs) > np.maximum(1e-5 * np.abs(theirs), 1e-6)
    if bad.any():
        names = EXTENDED.feature_names()
        raise AssertionError(
            "\n".join(f"{names[i]}: ours {ours[i]!r} librosa {theirs[i]!r}" for i in np.flatnonzero(bad))
        )


def test_names():
    names = EXTENDED.feature_names()
    assert len(names) == EXTENDED.dims == 42 and len(set(names)) == 42
    assert names[:2] == ["contrast_mean_0", "contrast_mean_1"] and names[14] == "chroma_mean_0"
    assert names[-4:] == ["onset_mean", "onset_std", "tempo_bpm", "pulse_clarity"]


@pytest.mark.parametrize(
    "ext,sr,channels", [("wav", 44100, 2), ("ogg", 48000, 1), ("mp3", 44100, 2), ("flac", 22050, 1)]
)
def test_matches_librosa(tmp_path, ext, sr, channels):
    path = write_audio(tmp_path / f"m.{ext}", music_like(7.0, sr, seed=sr + channels, channels=channels), sr)
    y = load(str(path), sr=22050).y
    notebook, extended = embeddings(y)
    np.testing.assert_array_equal(notebook, embedding(y))  # the notebook's numbers are untouched
    assert_close(extended, extended_reference(path))


@pytest.mark.parametrize("case", ["silence", "tiny", "tenth", "dc"])
def test_edge_cases_are_finite_and_match_librosa(tmp_path, case):
    y = {
        "silence": silence(2.0, 22050),
        "tiny": tone(10 / 22050, 22050),
        "tenth": tone(0.1, 22050),
        "dc": np.full(22050, 0.25, dtype=np.float32),
    }[case]
    path = write_audio(tmp_path / f"{case}.wav", y, 22050, subtype="FLOAT")
    _, extended = embeddings(load(str(path), sr=22050).y)
    assert np.all(np.isfinite(extended))
    assert_close(extended, extended_reference(path))


@pytest.mark.parametrize("block", [1, 7, 4096])
def test_blocks_do_not_change_the_numbers(block):
    y = music_like(4.0, 22050, seed=5)
    np.testing.assert_allclose(embeddings(y, block=block)[1], embeddings(y, block=100000)[1], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("bpm", [72.0, 100.0, 138.0])
def test_tempo_of_a_click_track(bpm):
    sr = 22050
    y = np.zeros(int(20 * sr), dtype=np.float32)
    click = tone(0.03, sr, 2000.0, 0.9)
    click *= np.hanning(len(click)).astype(np.float32)
    for start in np.arange(0.25, 19.5, 60.0 / bpm):
        i = int(start * sr)
        y[i : i + len(click)] += click
    _, extended = embeddings(y)
    names = EXTENDED.feature_names()
    assert extended[names.index("tempo_bpm")] == pytest.approx(bpm, rel=0.02)
    assert extended[names.index("pulse_clarity")] > 0.5
    noise = np.random.default_rng(0).standard_normal(len(y)).astype(np.float32) * 0.1
    assert embeddings(noise)[1][names.index("pulse_clarity")] < 0.2


@pytest.mark.parametrize("note,freq", [(9, 440.0), (0, 261.63), (7, 392.0)])
def test_chroma_of_a_tone_peaks_at_its_pitch_class(note, freq):
    _, extended = embeddings(tone(2.0, 22050, freq))
    chroma = extended[14:26]
    assert int(np.argmax(chroma)) == note


def test_feature_set_id_follows_its_own_and_the_base_parameters():
    assert EXTENDED.id.startswith("extended-") and EXTENDED.id != NOTEBOOK.id
    assert dataclasses.replace(EXTENDED, fmin=100.0).id != EXTENDED.id
    assert dataclasses.replace(EXTENDED, base=dataclasses.replace(NOTEBOOK, n_mels=128)).id != EXTENDED.id
