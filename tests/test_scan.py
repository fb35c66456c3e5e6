"""Incremental scanning on real files and a real DuckDB file."""

from __future__ import annotations

import dataclasses
import os
import shutil

import numpy as np
import pytest
from audio import music_like, write_audio
from conftest import files_under, rows

from audiodb import Library
from audiodb.analysis.params import NOTEBOOK
from audiodb.index.worker import analyse
from audiodb.store.migrate import migrations


def scan(db, *roots, **kw):
    kw.setdefault("workers", 2)
    return Library(db).scan([str(r) for r in roots], **kw)


@pytest.mark.slow
def test_first_scan_indexes_every_file_with_its_metadata(music_dir, db_path):
    report = scan(db_path, music_dir)
    files = files_under(music_dir)
    assert report.counts() == {"added": 5, "updated": 0, "moved": 0, "removed": 0, "unchanged": 0, "failed": 0}
    got = rows(
        db_path,
        "SELECT path, file_name, folder, size, content_hash, duration_sec, sample_rate, "
        "native_sample_rate, channels, codec, indexed_at, mtime FROM tracks ORDER BY path",
    )
    assert [r[0] for r in got] == files
    for path, name, folder, size, digest, duration, sr, native, channels, codec, indexed_at, mtime in got:
        assert os.path.isabs(path) and name == os.path.basename(path) and folder == os.path.dirname(path)
        assert size == os.path.getsize(path) and len(digest) == 32
        assert duration == pytest.approx(2.0, abs=0.05) and sr == 22050
        assert native in (16000, 22050, 44100) and channels in (1, 2) and codec and indexed_at and mtime
    (n,) = rows(db_path, "SELECT count(*) FROM embeddings WHERE feature_set = ?", NOTEBOOK.id)[0]
    assert n == 5
    vec = rows(db_path, "SELECT vector FROM embeddings LIMIT 1")[0][0]
    assert len(vec) == 180 and all(np.isfinite(vec))


@pytest.mark.slow
def test_rescan_with_nothing_changed_opens_no_audio_file(music_dir, db_path):
    scan(db_path, music_dir)
    # Replace every file's bytes with garbage but keep size and mtime: a scan that
    # opened any of them would see a different hash or fail to decode it.
    for path in files_under(music_dir):
        st = os.stat(path)
        with open(path, "r+b") as f:
            f.write(b"\0" * st.st_size)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    report = scan(db_path, music_dir)
    assert report.counts() == {"added": 0, "updated": 0, "moved": 0, "removed": 0, "unchanged": 5, "failed": 0}


@pytest.mark.slow
def test_changed_file_is_reanalysed_and_touched_file_keeps_its_vector(music_dir, db_path):
    scan(db_path, music_dir)
    changed, touched = music_dir / "a" / "one.wav", music_dir / "b" / "three.ogg"
    before = dict(rows(db_path, "SELECT t.path, e.vector FROM tracks t JOIN embeddings e USING (track_id)"))
    write_audio(changed, music_like(3.0, 22050, seed=99), 22050)
    os.utime(touched)
    report = scan(db_path, music_dir)
    # The touched file's content is the same: unchanged (its mtime is updated, nothing decoded).
    assert report.updated == 1 and report.unchanged == 4 and report.added == 0
    after = dict(rows(db_path, "SELECT t.path, e.vector FROM tracks t JOIN embeddings e USING (track_id)"))
    assert after[str(changed)] != before[str(changed)]
    assert after[str(touched)] == before[str(touched)]
    assert rows(db_path, "SELECT duration_sec FROM tracks WHERE path = ?", str(changed))[0][0] == pytest.approx(
        3.0, abs=0.05
    )


@pytest.mark.slow
def test_moves_and_renames_relink_without_reanalysis(music_dir, db_path):
    scan(db_path, music_dir)
    before = dict(
        rows(db_path, "SELECT t.path, (t.track_id, e.computed_at) FROM tracks t JOIN embeddings e USING (track_id)")
    )
    os.rename(music_dir / "b", music_dir / "renamed")  # a folder with a subfolder
    os.rename(music_dir / "a" / "one.wav", music_dir / "one-moved.wav")
    report = scan(db_path, music_dir)
    assert report.counts() == {"added": 0, "updated": 0, "moved": 3, "removed": 0, "unchanged": 2, "failed": 0}
    after = dict(
        rows(db_path, "SELECT t.path, (t.track_id, e.computed_at) FROM tracks t JOIN embeddings e USING (track_id)")
    )
    assert after[str(music_dir / "one-moved.wav")] == before[str(music_dir / "a" / "one.wav")]
    assert after[str(music_dir / "renamed" / "c" / "four.mp3")] == before[str(music_dir / "b" / "c" / "four.mp3")]
    assert rows(db_path, "SELECT folder FROM tracks WHERE file_name = 'three.ogg'")[0][0] == str(music_dir / "renamed")


@pytest.mark.slow
def test_deleted_files_are_removed_and_copies_are_separate_tracks(music_dir, db_path):
    shutil.copy(music_dir / "a" / "one.wav", music_dir / "a" / "copy-of-one.wav")
    scan(db_path, music_dir)
    hashes = rows(db_path, "SELECT content_hash, count(*) FROM tracks GROUP BY 1 HAVING count(*) > 1")
    assert len(hashes) == 1 and hashes[0][1] == 2
    shutil.rmtree(music_dir / "b")
    report = scan(db_path, music_dir)
    assert report.removed == 2 and report.unchanged == 4
    assert rows(db_path, "SELECT count(*) FROM tracks")[0][0] == 4
    assert rows(db_path, "SELECT count(*) FROM embeddings")[0][0] == 4


@pytest.mark.slow
def test_scanning_one_folder_leaves_other_folders_tracks_alone(tmp_path, music_dir, db_path):
    other = tmp_path / "other"
    other.mkdir()
    write_audio(other / "x.flac", music_like(1.5, 44100, seed=7), 44100)
    scan(db_path, music_dir)
    report = scan(db_path, other)
    assert report.added == 1 and report.removed == 0
    assert rows(db_path, "SELECT count(*) FROM tracks")[0][0] == 6
    # A file moved from the first tree into the second is a move, found by content.
    os.rename(music_dir / "five.WAV", other / "five.WAV")
    report = scan(db_path, other)
    assert report.moved == 1 and report.added == 0


@pytest.mark.slow
def test_missing_folder_changes_nothing(music_dir, db_path, tmp_path):
    from audiodb.errors import UsageError

    scan(db_path, music_dir)
    with pytest.raises(UsageError, match="Folder not found"):
        scan(db_path, tmp_path / "not-mounted")
    assert rows(db_path, "SELECT count(*) FROM tracks")[0][0] == 5


def test_a_new_library_is_made_by_a_scan_even_of_an_empty_folder_and_never_by_a_dry_run(music_dir, tmp_path):
    """A new library is made while the first files are analysed (a thread of the store's): made
    whole by a scan that finds nothing to analyse too; a dry run of a new library writes nothing."""
    dry = tmp_path / "dry.duckdb"
    report = scan(dry, music_dir, dry_run=True)
    assert report.counts()["added"] == 5 and not dry.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    made = tmp_path / "made.duckdb"
    assert scan(made, empty).counts()["added"] == 0
    assert rows(made, "SELECT count(*) FROM tracks") == [(0,)]
    assert rows(made, "SELECT max(version) FROM schema_migrations")[0][0] == migrations()[-1][0]


@pytest.mark.slow
def test_dry_run_plans_without_writing(music_dir, db_path):
    scan(db_path, music_dir)
    os.remove(music_dir / "a" / "one.wav")
    write_audio(music_dir / "new.flac", music_like(1.0, 22050, seed=42), 22050)
    os.rename(music_dir / "b" / "three.ogg", music_dir / "three.ogg")
    report = scan(db_path, music_dir, dry_run=True)
    kinds = sorted((c.kind, os.path.basename(c.path)) for c in report.changes)
    assert kinds == [("added", "new.flac"), ("moved", "three.ogg"), ("removed", "one.wav")]
    assert rows(db_path, "SELECT count(*) FROM tracks WHERE file_name = 'new.flac'")[0][0] == 0
    assert scan(db_path, music_dir).counts()["added"] == 1


@pytest.mark.slow
def test_bad_files_are_recorded_and_skipped_until_they_change(music_dir, db_path):
    bad = music_dir / "bad"
    bad.mkdir()
    (bad / "empty.wav").write_bytes(b"")
    (bad / "text.mp3").write_text("this is not audio\n" * 50)
    good = write_audio(bad / "cut.flac", music_like(2.0, 44100, seed=5), 44100)
    (bad / "truncated.flac").write_bytes(good.read_bytes()[:60])  # header only
    (bad / "fake.m4a").write_bytes(b"\0\0\0\x18ftypM4A " + os.urandom(300))
    report = scan(db_path, music_dir)
    assert report.added == 6 and report.failed == 4
    reasons = dict(rows(db_path, "SELECT path, reason FROM failures"))
    assert set(reasons) == {str(bad / n) for n in ("empty.wav", "text.mp3", "truncated.flac", "fake.m4a")}
    assert "empty" in reasons[str(bad / "empty.wav")]
    assert all(len(r) > 10 for r in reasons.values())

    again = scan(db_path, music_dir)
    assert again.failed == 0 and again.skipped_failures == 4 and again.unchanged == 6

    write_audio(bad / "text.mp3", music_like(1.0, 44100, seed=6), 44100)  # fixed by the user
    fixed = scan(db_path, music_dir)
    assert fixed.added == 1 and fixed.skipped_failures == 3
    assert str(bad / "text.mp3") not in dict(rows(db_path, "SELECT path, reason FROM failures"))

    retried = scan(db_path, music_dir, retry_failed=True)
    assert retried.failed == 3


def test_a_vanished_file_is_a_failure_not_a_crash(tmp_path):
    result = analyse(str(tmp_path / "gone.wav"))
    assert result["status"] == "failed" and "vanished" in result["reason"]


@pytest.mark.slow
def test_discovery_rules(tmp_path, db_path):
    root = tmp_path / "lib"
    y = music_like(1.0, 22050, seed=1)
    for d in ("deep/er", ".cache"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for rel in [
        "Upper.FLAC",
        "x.Opus",
        "s.aif",
        "t.AIFF",
        "u.oga",
        ".hidden.wav",
        ".cache/in_hidden.wav",
        "notes.txt.wav.txt",
        "deep/er/still.wav",
    ]:
        ext = rel.rsplit(".", 1)[1].lower()
        if ext == "txt":
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text("x")
        else:
            write_audio(
                root / rel, y if ext != "opus" else music_like(1.0, 48000, seed=1), 22050 if ext != "opus" else 48000
            )
    os.symlink(root, root / "deep" / "loop")  # a symlink loop
    os.symlink(tmp_path / "nowhere", root / "dangling.wav")
    report = scan(db_path, root)
    names = sorted(r[0] for r in rows(db_path, "SELECT file_name FROM tracks"))
    assert names == ["Upper.FLAC", "s.aif", "still.wav", "t.AIFF", "u.oga", "x.Opus"]
    assert report.added == 6 and any("loop" in p or "visited" in p for p in report.problems)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads folders whatever their mode")
def test_unreadable_folder_is_reported_not_fatal(music_dir, db_path):
    locked = music_dir / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        report = scan(db_path, music_dir)
    finally:
        locked.chmod(0o755)
    assert report.added == 5 and any("cannot read" in p for p in report.problems)


@pytest.mark.slow
def test_changed_feature_parameters_make_vectors_stale(music_dir, db_path):
    scan(db_path, music_dir)
    other = dataclasses.replace(NOTEBOOK, top_db=60.0)
    lib = Library(db_path, params=other)
    assert lib.status()["stale"] == 5
    report = lib.scan([str(music_dir)], workers=1)
    assert report.updated == 5
    assert rows(db_path, "SELECT count(DISTINCT feature_set) FROM embeddings")[0][0] == 2
    assert lib.status()["stale"] == 0


@pytest.mark.slow
def test_scan_stores_the_second_feature_set_beside_the_notebooks(music_dir, db_path):
    from audiodb.analysis.params import EXTENDED
    from audiodb.analysis.reference import extended_reference

    scan(db_path, music_dir)
    lib = Library(db_path)
    status = lib.status()
    assert status["extended_feature_set"] == EXTENDED.id and status["extended_stale"] == 0
    assert rows(db_path, "SELECT count(*) FROM extended_embeddings WHERE feature_set = ?", EXTENDED.id)[0][0] == 5
    result = lib.sql("SELECT * FROM extended_features ORDER BY path")
    assert result.columns == ["track_id", "path", *EXTENDED.feature_names()]
    path = result.rows[0][1]
    ours = np.array(result.rows[0][2:], dtype=np.float64)
    theirs = extended_reference(path)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)  # stored as float32
    names = rows(db_path, "SELECT feature_names FROM feature_sets WHERE id = ?", EXTENDED.id)[0][0]
    assert names == EXTENDED.feature_names()


@pytest.mark.slow
def test_a_library_without_the_second_set_gets_it_on_the_next_scan(music_dir, db_path):
    """As a library indexed before the second set existed: notebook vectors only."""
    scan(db_path, music_dir)
    before = dict(rows(db_path, "SELECT path, track_id FROM track_files"))
    vectors = dict(rows(db_path, "SELECT track_id, vector FROM embeddings"))
    import duckdb

    with duckdb.connect(str(db_path)) as con:
        con.execute("DELETE FROM extended_embeddings")
    assert Library(db_path).status()["extended_stale"] == 5
    report = scan(db_path, music_dir)
    assert report.updated == 5 and report.added == 0
    assert dict(rows(db_path, "SELECT path, track_id FROM track_files")) == before
    assert dict(rows(db_path, "SELECT track_id, vector FROM embeddings")) == vectors
    assert Library(db_path).status()["extended_stale"] == 0
    assert scan(db_path, music_dir).counts()["unchanged"] == 5


@pytest.mark.slow
def test_removing_a_track_removes_both_vectors(music_dir, db_path):
    scan(db_path, music_dir)
    victim = files_under(music_dir)[0]
    os.remove(victim)
    assert scan(db_path, music_dir).removed == 1
    for table in ("embeddings", "extended_embeddings"):
        orphans = rows(
            db_path, f"SELECT count(*) FROM {table} WHERE track_id NOT IN (SELECT track_id FROM track_files)"
        )
        assert orphans[0][0] == 0
    assert rows(db_path, "SELECT count(*) FROM extended_embeddings")[0][0] == 4


class OldWorkers:
    """A pool whose workers run an audiodb from before the second feature set (as a stale Dask worker)."""

    def run(self, tasks, params, writer, progress=None, should_stop=None):
        for path, known in tasks:
            result = analyse(path, known, params)
            result.pop("extended", None)
            writer.add(result)
        return True

    def close(self, **kw):
        pass


@pytest.mark.slow
def test_a_result_without_the_second_set_is_a_failure_with_advice_not_a_crash(music_dir, db_path):
    report = scan(db_path, music_dir, pool=OldWorkers())
    assert report.failed == 5 and report.added == 0
    reasons = {r[0] for r in rows(db_path, "SELECT reason FROM failures")}
    assert len(reasons) == 1 and "same audiodb version" in reasons.pop()
    assert scan(db_path, music_dir, retry_failed=True).added == 5
