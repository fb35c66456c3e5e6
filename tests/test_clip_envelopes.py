"""Short clips' envelopes stored at scan time (migration 008): ``duplicates`` reads them instead of
decoding every clip again.

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
    base = tmp_path_factory.mktemp("env")
    make_library(base / "audio")
    db = base / "lib.duckdb"
    report = Library(db).scan([base / "audio"], workers=2)
    assert report.failed == 0 and report.added == 9
    return base, db


@pytest.mark.slow
def test_a_scan_stores_the_envelope_of_short_files_only(library):
    base, db = library
    env = stored(db)
    assert set(env) == {"call.wav", "call.m4a", "call.mp3", "call_next.wav", "song.wav", "song.m4a", "song.mp3"}
    for name, (version, frames, bands, blob) in env.items():
        assert version == ENVELOPE_VERSION and bands == envelope_bands() and len(blob) == frames * bands
        # Exactly what the file gives decoded again (the scan's own waveform, no second decode).
        want = clip_envelope_of(load(str(base / "audio" / name)).y)
        assert np.array_equal(np.frombuffer(blob, np.uint8).reshape(frames, bands), want)


@pytest.mark.slow
def test_duplicates_reads_the_stored_envelopes_and_opens_no_audio_file(library, tmp_path):
    base, db = library
    copy = tmp_path / "lib.duckdb"
    shutil.copy(db, copy)
    lib = Library(copy)
    assert names(lib.duplicates()) == WANT
    # Without the audio files: a decode would fail and leave the pairs to the mel-band threshold,
    # which misses the low-bitrate copies; the stored envelopes find the same groups.
    assert names(lib.duplicates(audio_check=False)) != WANT
    moved = tmp_path / "elsewhere"
    shutil.move(base / "audio", moved)
    try:
        assert names(lib.duplicates()) == WANT
    finally:
        shutil.move(moved, base / "audio")


def as_before_008(db) -> None:
    """Make ``db`` what an audiodb before migration 008 left: no clip_envelopes table, schema 7."""
    con = duckdb.connect(str(db))
    con.execute("DROP TABLE clip_envelopes")
    con.execute("DELETE FROM schema_migrations WHERE version >= 8")
    con.close()


@pytest.mark.slow
def test_a_library_from_before_008_decodes_until_its_next_scan_stores_the_envelopes(library, tmp_path):
    base, db = library
    old = tmp_path / "old.duckdb"
    shutil.copy(db, old)
    as_before_008(old)
    lib = Library(old)
    assert names(lib.duplicates()) == WANT  # migrated on open; the clips are decoded as before
    assert rows(old, "SELECT max(version) FROM schema_migrations") == [(8,)]
    assert rows(old, "SELECT count(*) FROM clip_envelopes") == [(0,)]
    # The next scan analyses the clips again (their envelopes are missing), the rest stays.
    report = lib.scan([base / "audio"], workers=1)
    assert (report.updated, report.unchanged, report.added) == (7, 2, 0)
    assert stored(old) == stored(db)
    assert lib.scan([base / "audio"], workers=1).unchanged == 9


@pytest.mark.slow
def test_an_envelope_of_another_version_is_computed_again(library, tmp_path):
    base, db = library
    copy = tmp_path / "lib.duckdb"
    shutil.copy(db, copy)
    con = duckdb.connect(str(copy))
    con.execute(
        "UPDATE clip_envelopes SET version = 'clipenv-older' "
        "WHERE track_id = (SELECT min(track_id) FROM clip_envelopes)"
    )
    con.close()
    report = Library(copy).scan([base / "audio"], workers=1)
    assert (report.updated, report.unchanged) == (1, 8)
    assert {v for v, *_ in stored(copy).values()} == {ENVELOPE_VERSION}


@pytest.mark.slow
def test_a_clip_analysed_in_chunks_is_not_asked_for_an_envelope(tmp_path, monkeypatch):
    """With a low AUDIODB_LONG_FILE_SEC a 4-s file is read in chunks (no whole waveform): it gets
    no envelope, and the next scan does not analyse it again for one."""
    monkeypatch.setenv("AUDIODB_LONG_FILE_SEC", "3")
    root = tmp_path / "audio"
    root.mkdir()
    write_audio(root / "song.wav", music_like(4.0, SR, seed=8, channels=1), SR)
    write_audio(root / "call.wav", music_like(2.0, SR, seed=7, channels=1), SR)
    lib = Library(tmp_path / "lib.duckdb")
    assert lib.scan([root], workers=1).added == 2
    assert set(stored(tmp_path / "lib.duckdb")) == {"call.wav"}
    assert lib.scan([root], workers=1).unchanged == 2
