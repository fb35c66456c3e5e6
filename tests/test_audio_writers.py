"""The test-audio helpers (tests/audio.py) and the demo library write real, readable audio."""

from __future__ import annotations

import pathlib

import av
import numpy as np
import pytest
import soundfile as sf
from scipy import signal

try:  # `python -m pytest` (rootdir on sys.path) or a tests package
    from tests.audio import OPUS_SAMPLE_RATES, music_like, silence, tone, write_audio
except ModuleNotFoundError:  # plain `pytest`: tests/ itself is on sys.path
    from audio import OPUS_SAMPLE_RATES, music_like, silence, tone, write_audio

from audiodb.demo import write_demo_library

LOSSLESS = {".wav", ".flac", ".aif", ".aiff"}
LOSSY = {".ogg", ".oga", ".opus", ".mp3"}


def _read(path: pathlib.Path) -> tuple[np.ndarray, int]:
    y, sr = sf.read(path, dtype="float32", always_2d=True)
    return y, sr


def _decode_m4a(path: pathlib.Path) -> tuple[np.ndarray, int]:
    """Decode with PyAV to (n, channels) float32."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.name == "aac"
        frames = [f.to_ndarray() for f in container.decode(stream)]
        rate = stream.codec_context.sample_rate
    planar = np.concatenate(frames, axis=1)  # fltp -> (channels, n)
    return planar.T, rate


# --------------------------------------------------------------------------- write_audio


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("ext", sorted(LOSSLESS | LOSSY))
def test_soundfile_formats_round_trip(tmp_path, ext, channels):
    sr = 48000 if ext == ".opus" else 22050
    y = music_like(1.5, sr, seed=3, channels=channels)
    path = write_audio(tmp_path / f"x{ext}", y, sr)
    assert isinstance(path, pathlib.Path) and path.is_file() and path.stat().st_size > 0

    z, zsr = _read(path)
    assert zsr == sr
    assert z.shape[1] == channels
    ref = y.reshape(len(y), -1)
    if ext in LOSSLESS:
        assert len(z) == len(ref)
        np.testing.assert_allclose(z, ref, atol=1.5 / 32768)  # 16-bit quantization
    else:
        assert abs(len(z) - len(ref)) <= 0.05 * sr
        m = min(len(z), len(ref))
        for c in range(channels):  # same waveform, not just a file of the right length
            assert np.corrcoef(z[:m, c], ref[:m, c])[0, 1] > 0.9


def test_format_is_chosen_by_extension_case_insensitively(tmp_path):
    sr = 16000
    y = tone(0.5, sr)
    expected = {
        ".WAV": "WAV",
        ".Flac": "FLAC",
        ".OGG": "OGG",
        ".oga": "OGG",
        ".Mp3": "MP3",
        ".AIF": "AIFF",
        ".aiff": "AIFF",
        ".OPUS": "OGG",
    }
    for ext, fmt in expected.items():
        info = sf.info(write_audio(tmp_path / f"x{ext}", y, sr))
        assert info.format == fmt, ext
    assert sf.info(tmp_path / "x.OGG").subtype == "VORBIS"
    assert sf.info(tmp_path / "x.OPUS").subtype == "OPUS"
    assert sf.info(tmp_path / "x.WAV").subtype == "PCM_16"
    assert sf.info(tmp_path / "x.AIF").subtype == "PCM_16"


@pytest.mark.parametrize("subtype", ["PCM_24", "FLOAT"])
def test_wav_subtype_override(tmp_path, subtype):
    sr = 8000
    y = tone(0.25, sr, freq=300.0, amp=0.3)
    path = write_audio(tmp_path / "x.wav", y, sr, subtype=subtype)
    assert sf.info(path).subtype == subtype
    z, _ = sf.read(path, dtype="float32")
    np.testing.assert_allclose(z, y, atol=1e-6)  # much finer than PCM_16


@pytest.mark.parametrize("sr", OPUS_SAMPLE_RATES)
def test_opus_accepts_its_sample_rates(tmp_path, sr):
    path = write_audio(tmp_path / "x.opus", tone(0.3, sr, freq=200.0), sr)
    assert sf.info(path).samplerate == sr


@pytest.mark.parametrize("sr", [22050, 44100, 32000])
def test_opus_rejects_other_sample_rates(tmp_path, sr):
    with pytest.raises(ValueError, match="Opus"):
        write_audio(tmp_path / "x.opus", tone(0.3, sr), sr)
    assert not (tmp_path / "x.opus").exists()


def test_unknown_extension_and_bad_shapes_are_rejected(tmp_path):
    with pytest.raises(ValueError):
        write_audio(tmp_path / "x.xyz", tone(0.1, 8000), 8000)
    with pytest.raises(ValueError):
        write_audio(tmp_path / "x.wav", np.zeros((2, 2, 2)), 8000)
    with pytest.raises(ValueError):
        write_audio(tmp_path / "x.wav", np.zeros(0), 8000)


@pytest.mark.parametrize(("sr", "channels", "seconds"), [(44100, 2, 2.0), (22050, 1, 1.3), (48000, 1, 0.5)])
def test_m4a_round_trip_with_pyav(tmp_path, sr, channels, seconds):
    y = music_like(seconds, sr, seed=1, channels=channels)
    path = write_audio(tmp_path / "x.M4A", y, sr)
    with av.open(str(path)) as container:
        assert "mp4" in container.format.name
    z, zsr = _decode_m4a(path)
    assert zsr == sr
    assert z.shape[1] == channels
    assert abs(len(z) / zsr - seconds) < 0.1
    # aligned (encoder priming removed) and the same waveform
    ref = y.reshape(len(y), -1)
    m = min(len(z), len(ref))
    assert np.corrcoef(z[:m, 0], ref[:m, 0])[0, 1] > 0.9


def test_m4a_rejects_subtype_and_many_channels(tmp_path):
    with pytest.raises(ValueError):
        write_audio(tmp_path / "x.m4a", tone(0.1, 8000), 8000, subtype="PCM_16")
    with pytest.raises(ValueError):
        write_audio(tmp_path / "x.m4a", np.zeros((800, 3), np.float32), 8000)


# --------------------------------------------------------------------------- signals


def test_tone_and_silence():
    sr = 8000
    y = tone(0.5, sr, freq=1000.0, amp=0.25)
    assert y.dtype == np.float32 and y.shape == (4000,)
    assert np.max(np.abs(y)) == pytest.approx(0.25, rel=1e-3)
    spectrum = np.abs(np.fft.rfft(y))
    assert np.fft.rfftfreq(len(y), 1 / sr)[spectrum.argmax()] == pytest.approx(1000.0, abs=2.0)
    s = silence(0.25, 22050)
    assert s.dtype == np.float32 and s.shape == (round(0.25 * 22050),) and not s.any()


@pytest.mark.parametrize("channels", [1, 2])
def test_music_like_shape_level_and_quiet_edges(channels):
    sr = 22050
    y = music_like(3.0, sr, seed=7, channels=channels)
    assert y.dtype == np.float32
    assert y.shape == ((3 * sr,) if channels == 1 else (3 * sr, channels))
    assert 0.1 < np.max(np.abs(y)) <= 0.8
    y2 = y.reshape(len(y), -1)
    edge = int(0.28 * sr)
    body = y2[int(0.5 * sr) : -int(0.5 * sr)]

    def rms(x):
        return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))

    for part in (y2[:edge], y2[-edge:]):
        assert 0 < np.max(np.abs(part)) < 10 ** (-50 / 20)  # near-silent, but not digital zero
        assert 20 * np.log10(rms(body) / rms(part)) > 50
    # it changes over time: the strongest partial moves as notes change
    frames = body[: len(body) // 2048 * 2048, 0].reshape(-1, 2048) * np.hanning(2048)
    peaks = np.abs(np.fft.rfft(frames, axis=1)).argmax(axis=1)
    assert len(set(peaks.tolist())) >= 4
    if channels == 2:
        assert not np.allclose(y2[:, 0], y2[:, 1])


def test_music_like_is_harmonic_and_seeded():
    sr = 16000
    a = music_like(2.0, sr, seed=5)
    np.testing.assert_array_equal(a, music_like(2.0, sr, seed=5))
    assert not np.allclose(a, music_like(2.0, sr, seed=6))
    # tonal: the spectrum is peaky (far from flat noise)
    _, pxx = signal.welch(a, sr, nperseg=2048)
    flatness = np.exp(np.mean(np.log(pxx + 1e-20))) / np.mean(pxx)
    assert flatness < 0.1


# --------------------------------------------------------------------------- demo library


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo") / "nested" / "library"
    return folder, write_demo_library(folder, seed=0)


@pytest.mark.slow
def test_demo_library_layout_and_variety(demo):
    folder, paths = demo
    assert paths == sorted(paths)
    assert all(p.is_file() and p.parent.parent == folder for p in paths)
    assert sorted(paths) == sorted(p for p in folder.rglob("*") if p.is_file())
    kinds = {p.parent.name for p in paths}
    assert len(kinds) >= 5
    per_kind = {k: sum(p.parent.name == k for p in paths) for k in kinds}
    assert set(per_kind.values()) == {4}
    assert len({p.suffix for p in paths}) >= 3
    # every kind is not just one format
    assert all(len({p.suffix for p in paths if p.parent.name == k}) > 1 for k in kinds)
    infos = [sf.info(p) for p in paths]
    assert len({i.samplerate for i in infos}) >= 2
    assert {i.channels for i in infos} == {1, 2}


def test_demo_files_are_readable_and_not_clipped(demo):
    _, paths = demo
    durations = []
    for p in paths:
        y, sr = _read(p)
        assert sr in (22050, 44100, 48000)
        durations.append(len(y) / sr)
        assert 2.0 - 0.05 <= len(y) / sr <= 6.0 + 0.05, p
        peak = float(np.max(np.abs(y)))
        assert 0.05 < peak <= 0.9, p
        assert np.all(np.isfinite(y))
    assert max(durations) - min(durations) > 1.0  # durations vary


@pytest.mark.slow
def test_demo_signals_are_deterministic_per_seed(demo, tmp_path):
    _, first = demo
    again = write_demo_library(tmp_path / "again", n_per_kind=2, seed=0)
    other = write_demo_library(tmp_path / "other", n_per_kind=2, seed=1)
    first_by_name = {p.relative_to(p.parent.parent): p for p in first}
    compared = 0
    for a, b in zip(again, other):
        ref = first_by_name[a.relative_to(a.parent.parent)]
        ya, sra = _read(a)
        yr, srr = _read(ref)
        yb, _ = _read(b)
        assert sra == srr and ya.shape == yr.shape
        if a.suffix in (".wav", ".flac"):
            np.testing.assert_array_equal(ya, yr)
            compared += 1
        else:  # lossy: same signal, the encoder may differ in the last bits
            np.testing.assert_allclose(ya, yr, atol=1e-3)
        # another seed gives another sound
        assert ya.shape != yb.shape or not np.allclose(ya, yb, atol=1e-2)
    assert compared >= 4


def _features(y: np.ndarray, sr: int) -> np.ndarray:
    """Spectral shape (log band powers) and temporal envelope statistics."""
    x = y.mean(axis=1).astype(np.float64)
    nper = int(sr * 0.046)
    f, pxx = signal.welch(x, sr, nperseg=nper)
    edges = np.geomspace(60, 10000, 25)
    bands = np.array([pxx[(f >= lo) & (f < hi)].sum() for lo, hi in zip(edges[:-1], edges[1:])])
    spec = np.log10(bands / bands.sum() + 1e-12)
    hop = int(sr * 0.01)
    frames = x[: len(x) // hop * hop].reshape(-1, hop)
    env = 20 * np.log10(np.sqrt(np.mean(frames**2, axis=1)) + 1e-6)
    d = np.abs(np.diff(env))
    temporal = [env.std() / 10, np.mean(env < env.max() - 30), np.percentile(d, 90) / 10]
    return np.concatenate([spec, temporal])


def test_demo_kinds_are_acoustically_distinct(demo):
    """Leave-one-out 1-nearest-neighbour with crude features finds the right kind."""
    _, paths = demo
    feats = np.array([_features(*_read(p)) for p in paths])
    labels = np.array([p.parent.name for p in paths])
    z = (feats - feats.mean(0)) / (feats.std(0) + 1e-9)
    dist = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(dist, np.inf)
    accuracy = float(np.mean(labels[dist.argmin(1)] == labels))
    assert accuracy >= 0.8
