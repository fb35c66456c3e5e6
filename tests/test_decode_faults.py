"""Damaged audio files: decoding stops at the real data, refuses absurd headers, says truthfully why.

Every file is written by the test; the reference is the notebook's own
``librosa.load`` (``audiodb.analysis.reference``) on the same damaged file.
"""

from __future__ import annotations

import struct
import tracemalloc
import warnings

import numpy as np
import pytest
from audio import ffmpeg_encode, music_like, write_audio

from audiodb.analysis.decode import load
from audiodb.analysis.embed import embed_file
from audiodb.analysis.params import FEATURE_NAMES
from audiodb.analysis.reference import extract_acoustic_embedding, tolerance
from audiodb.errors import DecodeError
from audiodb.index.worker import analyse


def notebook(path) -> dict:
    with warnings.catch_warnings():  # librosa's audioread fallback warns that it is deprecated
        warnings.simplefilter("ignore")
        return extract_acoustic_embedding(path)


def assert_matches_the_notebook(path) -> dict:
    """audiodb's duration and features for ``path`` are librosa's, within the parity tolerance."""
    theirs = notebook(path)
    vector, meta = embed_file(str(path))
    assert meta["duration_sec"] == pytest.approx(theirs["duration_sec"], abs=1e-9)
    rel, absolute = tolerance(FEATURE_NAMES)
    expected = theirs["embedding"]
    bad = np.abs(vector - expected) > np.maximum(rel * np.abs(expected), absolute)
    assert not bad.any(), [(FEATURE_NAMES[i], vector[i], expected[i]) for i in np.flatnonzero(bad)[:10]]
    return meta


def cut(path, fraction: float, suffix: str = ""):
    data = path.read_bytes()
    out = path.with_name(f"cut{suffix}{path.suffix}")
    out.write_bytes(data[: int(len(data) * fraction)])
    return out


# -- truncated files ----------------------------------------------------------------------------


def test_an_interrupted_mp3_download_is_the_audio_it_holds_not_its_headers_length(tmp_path):
    wav = write_audio(tmp_path / "src.wav", music_like(10.0, 44100, seed=21, channels=2), 44100)
    mp3 = ffmpeg_encode(wav, tmp_path / "song.mp3", "-c:a", "libmp3lame", "-b:a", "128k")
    partial = cut(mp3, 0.3)
    meta = assert_matches_the_notebook(partial)
    assert 2.0 < meta["duration_sec"] < 4.0  # about 30% of 10 s, not the 10 s the Info header claims


@pytest.mark.slow
@pytest.mark.parametrize("ext", ["wav", "flac", "ogg", "opus", "mp3", "m4a"])
def test_every_format_cut_at_30_percent_is_what_librosa_reads_or_a_failure(tmp_path, ext):
    sr = 48000 if ext == "opus" else 44100
    y = music_like(8.0, sr, seed=22, channels=2)
    if ext == "m4a":  # moov first, as streamed files are: otherwise a cut MP4 has no index at all
        path = ffmpeg_encode(
            write_audio(tmp_path / "src.wav", y, sr), tmp_path / "song.m4a", "-c:a", "aac", "-movflags", "+faststart"
        )
    else:
        path = write_audio(tmp_path / f"song.{ext}", y, sr)
    partial = cut(path, 0.3)
    meta = assert_matches_the_notebook(partial)
    assert meta["duration_sec"] < 0.5 * 8.0


def _mp3_claiming(tmp_path, mpeg_frames: int):
    """A short real MP3 whose Info header claims ``mpeg_frames`` frames."""
    wav = write_audio(tmp_path / "short.wav", music_like(0.4, 22050, seed=23), 22050)
    mp3 = ffmpeg_encode(wav, tmp_path / "short.mp3", "-c:a", "libmp3lame", "-b:a", "64k")
    data = bytearray(mp3.read_bytes())
    at = data.find(b"Info")
    assert at > 0 and data[at + 7] & 1, "libmp3lame wrote no Info header with a frame count"
    data[at + 8 : at + 12] = struct.pack(">I", mpeg_frames)
    patched = tmp_path / "patched.mp3"
    patched.write_bytes(data)
    return patched


def _flac_claiming(tmp_path, total: int):
    """A real FLAC whose STREAMINFO claims ``total`` samples."""
    data = bytearray(write_audio(tmp_path / "x.flac", music_like(2.0, 44100, seed=24, channels=2), 44100).read_bytes())
    field = int.from_bytes(data[18:26], "big")  # STREAMINFO: total samples are its low 36 bits here
    data[18:26] = ((field & ~((1 << 36) - 1)) | total).to_bytes(8, "big")
    patched = tmp_path / "patched.flac"
    patched.write_bytes(data)
    return patched


def _wav_claiming(tmp_path, n_bytes: int):
    """A WAV whose data chunk claims ``n_bytes`` (libsndfile bounds it by the file size)."""
    data = bytearray(write_audio(tmp_path / "x.wav", music_like(2.0, 22050, seed=25), 22050).read_bytes())
    at = data.find(b"data")
    data[at + 4 : at + 8] = struct.pack("<I", n_bytes)
    data[4:8] = struct.pack("<I", n_bytes + at)
    patched = tmp_path / "patched.wav"
    patched.write_bytes(data)
    return patched


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda d: _mp3_claiming(d, 20_000), id="mp3-info-frames"),
        pytest.param(lambda d: _flac_claiming(d, 50_000_000), id="flac-streaminfo-total"),
        pytest.param(lambda d: _wav_claiming(d, 0x7FFF0000), id="wav-data-size"),
    ],
)
def test_a_header_claiming_far_more_frames_than_the_data_holds(tmp_path, make):
    path = make(tmp_path)
    meta = assert_matches_the_notebook(path)
    assert meta["duration_sec"] < 3.0


def test_a_header_claim_does_not_set_the_memory_a_file_costs(tmp_path):
    # 3 KB of MP3 claiming 50 000 MPEG frames (48 min at 22.05 kHz): the decode
    # costs what the file holds (0.4 s), not a 115 MB buffer sized from the header.
    path = _mp3_claiming(tmp_path, 50_000)
    tracemalloc.start()
    try:
        decoded = load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert decoded.duration_sec < 1.0
    assert peak < 30e6, f"{peak / 1e6:.0f} MB peak for a {path.stat().st_size} B file"


# -- absurd headers -----------------------------------------------------------------------------


def _wav_at_rate(tmp_path, rate: int):
    """44 KB of 16-bit mono PCM whose header says ``rate`` Hz."""
    data = bytearray(write_audio(tmp_path / "x.wav", music_like(1.0, 22050, seed=26), 22050).read_bytes())
    assert data[12:16] == b"fmt "
    data[24:28] = struct.pack("<I", rate)
    data[28:32] = struct.pack("<I", rate * 2)  # byte rate, kept consistent
    path = tmp_path / f"rate{rate}.wav"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("rate", [1, 50, 50_000_000])
def test_an_implausible_sample_rate_is_refused_before_resampling(tmp_path, rate):
    path = _wav_at_rate(tmp_path, rate)
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError, match=rf"sample rate {rate} Hz is not plausible .*1 kHz to 1 MHz"):
            load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5e6  # nothing was decoded or resampled
    result = analyse(str(path))
    assert result["status"] == "failed" and "not plausible" in result["reason"]


def test_the_edges_of_the_accepted_sample_rates_still_decode(tmp_path):
    for rate in (1000, 192000):
        assert load(_wav_at_rate(tmp_path, rate)).native_sr == rate


# -- truthful failure reasons -------------------------------------------------------------------


def test_random_bytes_named_mp3_are_not_called_a_pipe(tmp_path):
    path = tmp_path / "download.mp3"
    path.write_bytes(np.random.default_rng(7).bytes(40_000))
    reason = analyse(str(path))["reason"]
    assert reason.startswith("not a decodable audio file")
    assert "none detected" in reason and ".mp3" in reason
    assert "pipe" not in reason and "regular file" not in reason


def test_a_damaged_file_of_a_known_format_says_which_format_it_looked_like(tmp_path):
    good = write_audio(tmp_path / "good.flac", music_like(2.0, 44100, seed=27), 44100)
    path = tmp_path / "header-only.flac"
    path.write_bytes(good.read_bytes()[:60])
    reason = analyse(str(path))["reason"]
    assert "not a decodable audio file" in reason and "starts like FLAC" in reason


def test_huge_float_samples_are_reported_as_out_of_range_not_as_nan(tmp_path):
    y = music_like(2.0, 22050, seed=28)
    y[5000:6000] = 1e30
    path = write_audio(tmp_path / "loud.wav", y, 22050, subtype="FLOAT")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the overflow is the reason, not a stream of numpy warnings
        reason = analyse(str(path))["reason"]
    assert "outside [-1, 1]" in reason and "1e+30" in reason
    assert "NaN" not in reason


def test_nan_samples_are_reported_as_non_finite(tmp_path):
    y = music_like(2.0, 22050, seed=29)
    y[100:110] = np.nan
    path = write_audio(tmp_path / "nan.wav", y, 22050, subtype="FLOAT")
    reason = analyse(str(path))["reason"]
    assert "non-finite samples" in reason and "10 of 44100" in reason
