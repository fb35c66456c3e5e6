"""Short clips' envelopes kept in the library (migration 008): ``duplicates`` decodes a clip the
first time it compares it and keeps its envelope; later runs read it instead of decoding again.

Real files written by the tests: 2-s and 4-s sounds with low-bitrate AAC and MP3 copies made by the
ffmpeg program, a different 2-s sound, a 0.3-s blip and a 12-s piece (no envelope for those two).
"""

from __future__ import annotations

import shutil

import duckdb
import numpy as np
import pytest
from audio import ffmpeg_encode, music_like, write_audio
from conftest import rows

from audiodb import Library
from audiodb.analysis.decode import load
from audiodb.analysis.envelope import ENVELOPE_VERSION, clip_envelope_of, envelope_bands

SR = 44100
WANT = [{"call.wav", "call.m4a", "call.mp3"}, {"song.wav", "song.m4a", "song.mp3"}]


def make_library(root):
    root.mkdir()
    piece = music_like(8.0, SR, seed=7, channels=1)
    write_audio(root / "call.wav", piece[: 2 * SR], SR)
    write_audio(root / "call_next.wav", piece[2 * SR : 4 * SR], SR)  # the passage after it: a different sound
    write_audio(root / "song.wav", music_like(4.0, SR, seed=8, channels=1), SR)
    write_audio(root / "blip.wav", music_like(0.3, SR, seed=9, channels=1), SR)
    write_audio(root / "piece.wav", music_like(12.0, SR, seed=10, channels=1), SR)
    for name in ("call", "song"):
        ffmpeg_encode(root / f"{name}.wav", root / f"{name}.m4a", "-c:a", "aac", "-b:a", "64k")
        ffmpeg_encode(root / f"{name}.wav", root / f"{name}.mp3", "-c:a", "libmp3lame", "-b:a", "64k")


def names(groups) -> list[set[str]]:
    return sorted(({m["path"].rsplit("/", 1)[1] for m in g} for g in groups), key=sorted)


def stored(db) -> dict[str, tuple]:
    return {
        p.rsplit("/", 1)[1]: (v, f, b, blob)
        for p, v, f, b, blob in rows(
            db,
            "SELECT t.path, c.version, c.frames, c.bands, c.envelope "
            "FROM clip_envelopes c JOIN track_files t USING (track_id)",
        )
    }


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """A scanned library (no envelope yet: a scan keeps none) and a copy after one ``duplicates``."""
    base = tmp_path_factory.mktemp("env")
    make_library(base / "audio")
    db = base / "lib.duckdb"
    report = Library(db).scan([base / "audio"], workers=2)
    assert report.failed == 0 and report.added == 9
    assert rows(db, "SELECT count(*) FROM clip_envelopes") == [(0,)]  # the scan pays nothing for them
    kept = base / "kept.duckdb"
    shutil.copy(db, kept)
    assert names(Library(kept).duplicates()) == WANT
    return base, db, kept


@pytest.mark.slow
def test_duplicates_keeps_the_envelopes_of_the_clips_it_decoded(library):
    base, _, kept = library
    env = stored(kept)
    # The clips with a candidate; not the 0.3-s blip nor the 12-s piece (no envelope is compared there).
    assert {"call.wav", "call.m4a", "call.mp3", "song.wav", "song.m4a", "song.mp3"} <= set(env)
    assert not {"blip.wav", "piece.wav"} & set(env)
    for name, (version, frames, bands, blob) in env.items():
        assert version == ENVELOPE_VERSION and bands == envelope_bands() and len(blob) == frames * bands
        want = clip_envelope_of(load(str(base / "audio" / name)).y)  # what a decode gives now
        assert np.array_equal(np.frombuffer(blob, np.uint8).reshape(frames, bands), want)


@pytest.mark.slow
def test_the_next_duplicates_reads_them_and_opens_no_audio_file(library, tmp_path):
    base, _, kept = library
    copy = tmp_path / "lib.duckdb"
    shutil.copy(kept, copy)
    lib = Library(copy)
    # Without the audio files a decode would fail and leave the pairs to the mel-band threshold,
    # which misses the low-bitrate copies; the kept envelopes find the same groups.
    assert names(lib.duplicates(audio_check=False)) != WANT
    moved = tmp_path / "elsewhere"
    shutil.move(base / "audio", moved)
    try:
        assert names(lib.duplicates()) == WANT
    finally:
        shutil.move(moved, base / "audio")


@pytest.mark.slow
def test_a_file_analysed_again_or_removed_loses_its_envelope(library, tmp_path):
    base, _, kept = library
    audio = tmp_path / "audio"
    shutil.copytree(base / "audio", audio)
    copy = tmp_path / "lib.duckdb"
    shutil.copy(kept, copy)
    con = duckdb.connect(str(copy))
    con.execute("UPDATE track_files SET path = replace(path, ?, ?)", [str(base / "audio"), str(audio)])
    con.close()
    before = stored(copy)
    write_audio(audio / "song.wav", music_like(4.0, SR, seed=99, channels=1), SR)  # other audio, same name
    (audio / "call.mp3").unlink()
    report = Library(copy).scan([audio], workers=1)
    assert (report.updated, report.removed) == (1, 1)
    after = stored(copy)
    assert set(after) == set(before) - {"song.wav", "call.mp3"}
    assert all(after[n] == before[n] for n in after)


def as_before_008(db) -> None:
    """Make ``db`` what an audiodb before migration 008 left: no clip_envelopes table, schema 7."""
    con = duckdb.connect(str(db))
    con.execute("DROP TABLE clip_envelopes")
    con.execute("DELETE FROM schema_migrations WHERE version >= 8")
    con.close()


@pytest.mark.slow
def test_a_library_from_before_008_migrates_and_nothing_is_analysed_again(library, tmp_path):
    base, db, kept = library
    old = tmp_path / "old.duckdb"
    shutil.copy(db, old)
    as_before_008(old)
    lib = Library(old)
    assert lib.scan([base / "audio"], workers=1).unchanged == 9  # migrated on open; no file analysed again
    assert rows(old, "SELECT max(version) FROM schema_migrations") == [(8,)]
    assert names(lib.duplicates()) == WANT
    assert stored(old) == stored(kept)


@pytest.mark.slow
def test_an_envelope_of_another_version_is_not_used_and_is_replaced(library, tmp_path):
    base, _, kept = library
    copy = tmp_path / "lib.duckdb"
    shutil.copy(kept, copy)
    con = duckdb.connect(str(copy))
    con.execute("UPDATE clip_envelopes SET version = 'clipenv-older', envelope = repeat('\\x00', frames * bands)::BLOB")
    con.close()
    assert names(Library(copy).duplicates()) == WANT  # all-zero envelopes would say nothing alike
    assert stored(copy) == stored(kept)
