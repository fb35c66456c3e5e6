"""duplicates finds transcodes of short clips (1-5 s) and keeps different short sounds apart.

Real files written by the tests: 2-s and 4-s sounds, their AAC, MP3 and Opus copies made
with the ffmpeg program at low bitrates, a neighbouring passage of the same piece (a
different recording that sounds alike) and other sounds of the same length.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from audio import ffmpeg_encode, music_like, write_audio

from audiodb import Library
from audiodb.query.duplicates import ClipEnvelopes, clip_envelope, clip_similarity

SR = 44100


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("short")
    originals, copies, others = root / "orig", root / "copies", root / "others"
    for d in (originals, copies, others):
        d.mkdir()
    piece = music_like(8.0, SR, seed=7, channels=1)
    write_audio(originals / "call.wav", piece[: 2 * SR], SR)  # a 2-s sound
    write_audio(others / "call_next.wav", piece[2 * SR : 4 * SR], SR)  # the passage after it
    write_audio(originals / "song.wav", music_like(4.0, SR, seed=8, channels=1), SR)  # a 4-s sound
    for seed in (9, 10):
        write_audio(others / f"other{seed}.wav", music_like(2.0, SR, seed=seed, channels=1), SR)
    for name in ("call", "song"):
        src = originals / f"{name}.wav"
        ffmpeg_encode(src, copies / f"{name}.m4a", "-c:a", "aac", "-b:a", "64k")
        ffmpeg_encode(src, copies / f"{name}.mp3", "-c:a", "libmp3lame", "-b:a", "64k")
        ffmpeg_encode(src, copies / f"{name}.opus", "-c:a", "libopus", "-b:a", "24k")
    db = root / "lib.duckdb"
    report = Library(db).scan([root], workers=2)
    assert report.failed == 0 and report.added == 11
    return {"root": root, "db": db, "lib": Library(db)}


def groups_by_name(groups) -> list[set[str]]:
    return [{m["path"].rsplit("/", 1)[1] for m in g} for g in groups]


@pytest.mark.slow
def test_short_clip_transcodes_are_one_group_and_other_sounds_stay_apart(clips):
    found = groups_by_name(clips["lib"].duplicates())
    want = [
        {"call.wav", "call.m4a", "call.mp3", "call.opus"},
        {"song.wav", "song.m4a", "song.mp3", "song.opus"},
    ]
    assert sorted(found, key=sorted) == sorted(want, key=sorted)


def test_the_mel_band_threshold_alone_misses_them(clips):
    """What duplicates did before the audio check: the low-bitrate copies of short clips are
    farther than 0.06 in the mel-band space, so some copy of each is missed."""
    before = groups_by_name(clips["lib"].duplicates(audio_check=False))
    assert not any({"call.wav", "call.m4a", "call.mp3", "call.opus"} <= g for g in before)


@pytest.mark.slow
def test_clip_similarity_of_copies_and_of_different_sounds(clips):
    root = clips["root"]
    call = clip_envelope(str(root / "orig" / "call.wav"))
    for ext in ("m4a", "mp3", "opus"):
        assert clip_similarity(call, clip_envelope(str(root / "copies" / f"call.{ext}"))) > 0.9
    for other in ("call_next.wav", "other9.wav", "other10.wav"):
        assert clip_similarity(call, clip_envelope(str(root / "others" / other))) < 0.6
    assert clip_similarity(call, call) == pytest.approx(1.0)


@pytest.mark.slow
def test_identical_vectors_always_pair(clips, tmp_path):
    """The prefilter allowed for no rounding: with a tiny --threshold a byte copy (distance 0,
    computed as |a|^2 + |b|^2 - 2ab, about 1e-16) could be dropped. Short and long files."""
    root = tmp_path / "lib"
    root.mkdir()
    write_audio(root / "long.wav", music_like(12.0, 22050, seed=3), 22050)
    write_audio(root / "short.wav", music_like(2.0, 22050, seed=4), 22050)
    shutil.copy(root / "long.wav", root / "long copy.wav")
    shutil.copy(root / "short.wav", root / "short copy.wav")
    lib = Library(tmp_path / "lib.duckdb")
    lib.scan([root], workers=1)
    for check in (True, False):
        found = groups_by_name(lib.duplicates(threshold=1e-12, audio_check=check))
        assert sorted(found, key=sorted) == [{"long copy.wav", "long.wav"}, {"short copy.wav", "short.wav"}]
        assert all(m["distance"] == 0.0 for g in lib.duplicates(threshold=1e-12) for m in g)


@pytest.mark.slow
def test_an_unreadable_short_clip_falls_back_to_the_threshold(clips, tmp_path):
    """A clip whose file is gone is judged by the mel-band threshold alone (no error)."""
    root = tmp_path / "lib"
    root.mkdir()
    y = music_like(2.0, SR, seed=11)
    write_audio(root / "a.wav", y, SR)
    write_audio(root / "b.wav", y, SR)
    lib = Library(tmp_path / "lib.duckdb")
    lib.scan([root], workers=1)
    (root / "b.wav").unlink()
    assert groups_by_name(lib.duplicates()) == [{"a.wav", "b.wav"}]


def shifted_correlation(a, b, lag: int) -> float:
    """clip_similarity by its definition: the envelopes' products summed over frames and bands,
    one shifted against the other by each of -lag..lag frames."""
    best = -np.inf
    for shift in range(-lag, lag + 1):
        x, y = (a[shift:], b) if shift >= 0 else (a, b[-shift:])
        n = min(len(x), len(y))
        best = max(best, float((x[:n] * y[:n]).sum()))
    return best


@pytest.mark.slow
def test_clip_similarity_is_the_shifted_correlation_for_one_pair_or_a_batch(clips):
    """The band-summed cross spectra give each shift's correlation exactly (no wrap-around), for
    one pair and for a row's candidates at once, clips of different lengths in one batch."""
    root = clips["root"]
    files = [root / "orig" / "call.wav", root / "orig" / "song.wav", root / "copies" / "song.opus"]
    files += [root / "others" / n for n in ("call_next.wav", "other9.wav")]
    envelopes = ClipEnvelopes({row: str(f) for row, f in enumerate(files)})
    lag = round(0.3 * 22050 / 256)
    want = [
        [shifted_correlation(envelopes(i), envelopes(j), lag) for j in range(len(files))] for i in range(len(files))
    ]
    for i in range(len(files)):
        for j in range(len(files)):
            assert clip_similarity(envelopes(i), envelopes(j)) == pytest.approx(want[i][j], abs=1e-9)
        for threshold in (0.5, 0.82, 0.95):
            got = envelopes.similar(i, list(range(len(files))), threshold)
            assert got == [w >= threshold for w in want[i]], (i, threshold)
    assert want[1][2] > 0.9 and want[0][1] < 0.6  # the song and its opus copy; the call and the song
