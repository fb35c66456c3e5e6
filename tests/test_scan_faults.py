"""Scans on messy trees: folders that cannot be read or have vanished, files audiodb does
not read, touched files, and two scans of one library at once."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import time

import pytest
from audio import music_like, write_audio
from conftest import AUDIODB, rows, run_audiodb
from test_watch import Watch, wait_for

import audiodb


def _tree(root, n=2, seed=0):
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        write_audio(root / f"t{i}.wav", music_like(1.0, 22050, seed=seed + i), 22050)


@pytest.mark.slow
def test_a_symlinked_folder_whose_target_is_gone_keeps_its_tracks(cli, tmp_path, db_path):
    music, drive = tmp_path / "music", tmp_path / "usb" / "Album"
    _tree(music, 1)
    _tree(drive, 2, seed=10)
    (music / "usb").symlink_to(drive, target_is_directory=True)
    cli("scan", music, "--workers", "2")
    assert rows(db_path, "SELECT count(*) FROM tracks")[0][0] == 3
    os.rename(tmp_path / "usb", tmp_path / "usb-unmounted")  # the drive is gone, the link stays
    result = cli("scan", music)
    assert "0 removed" in result.stdout and "2 unchanged" not in result.stdout
    assert f"{music / 'usb'}: symlink whose target is missing" in result.stderr
    assert "its 2 tracks in the library were kept" in result.stderr
    assert rows(db_path, "SELECT count(*) FROM tracks")[0][0] == 3
    # Back again: nothing to do. Then a file really deleted from the readable folder goes.
    os.rename(tmp_path / "usb-unmounted", tmp_path / "usb")
    assert json.loads(cli("scan", music, "-f", "json").stdout)["unchanged"] == 3
    os.remove(drive / "t0.wav")
    assert json.loads(cli("scan", music, "-f", "json").stdout)["removed"] == 1


@pytest.mark.slow
def test_a_scanned_root_behind_a_dead_symlink_is_not_a_deletion(tmp_path, db_path):
    """The watcher scans deleted paths with missing_ok; a path whose folder is a link to
    nothing is not deleted."""
    drive = tmp_path / "nas" / "rec"
    _tree(drive, 2)
    link = tmp_path / "rec"
    link.symlink_to(drive, target_is_directory=True)
    lib = audiodb.Library(db_path)
    lib.scan([link])
    shutil.rmtree(tmp_path / "nas")
    report = lib.scan([link / "t0.wav", link], missing_ok=True)
    assert report.removed == 0 and any("kept" in p for p in report.problems), report.problems
    assert rows(db_path, "SELECT count(*) FROM tracks")[0][0] == 2
    # A file really deleted from a folder that is there is removed.
    (tmp_path / "nas" / "rec").mkdir(parents=True)
    report = lib.scan([link / "t0.wav"], missing_ok=True)
    assert report.removed == 1


def _as_nobody():
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)


def test_an_unreadable_folder_keeps_its_tracks(tmp_path):
    """chmod 000 stops only a user that is not root: the scan runs as 'nobody'
    (a real unprivileged process) when the tests run as root."""
    base = tempfile.mkdtemp(prefix="audiodb-perm-")
    try:
        os.chmod(base, 0o755)
        music = os.path.join(base, "music")
        _tree(pathlib.Path(music) / "private", 2)
        _tree(pathlib.Path(music), 1, seed=5)
        db = os.path.join(base, "lib", "lib.duckdb")
        os.makedirs(os.path.dirname(db))
        for d, _dirs, files in os.walk(base):
            os.chmod(d, 0o777)
            for f in files:
                os.chmod(os.path.join(d, f), 0o666)
        kw = {"preexec_fn": _as_nobody} if os.geteuid() == 0 else {}
        try:
            probe = subprocess.run(AUDIODB + ["--help"], capture_output=True, cwd=base, **kw)
            problem = probe.stderr[-200:] if probe.returncode else None
        except OSError as e:
            problem = str(e)
        if problem:
            pytest.skip(
                "root reads folders whatever their mode, and Python cannot be run as the "
                f"unprivileged user 'nobody' here ({problem!r}); the dead-symlink tests cover it"
            )

        def scan():
            out = subprocess.run(
                AUDIODB + ["--db", db, "scan", music, "-w", "1", "-f", "json"],
                capture_output=True,
                text=True,
                cwd=base,
                timeout=300,
                **kw,
            )
            assert out.returncode == 0, out.stderr
            return json.loads(out.stdout), out.stderr

        first, _ = scan()
        assert first["added"] == 3
        os.chmod(os.path.join(music, "private"), 0)
        again, err = scan()
        assert again["removed"] == 0 and again["unchanged"] == 1, (again, err)
        assert f"{music}/private: cannot read folder (Permission denied)" in err and "were kept" in err
        os.chmod(os.path.join(music, "private"), 0o777)
        assert scan()[0]["unchanged"] == 3
    finally:
        for d, _, _ in os.walk(base):
            os.chmod(d, 0o755)
        shutil.rmtree(base)


@pytest.mark.slow
def test_watch_reconcile_keeps_tracks_of_a_vanished_symlinked_folder(tmp_path):
    music, drive = tmp_path / "music", tmp_path / "usb" / "Album"
    _tree(music, 1)
    _tree(drive, 2, seed=10)
    (music / "usb").symlink_to(drive, target_is_directory=True)
    w = Watch(tmp_path, music, "--reconcile", "1")
    try:
        assert rows(w.db, "SELECT count(*) FROM tracks")[0][0] == 3
        os.rename(tmp_path / "usb", tmp_path / "usb-unmounted")
        wait_for(lambda: "were kept" in w.stderr(), timeout=60)
        time.sleep(3)  # a few more reconciles: still kept, said once
        assert w.proc.poll() is None, w.stderr()
        assert w.stderr().count("symlink whose target is missing") == 1, w.stderr()
        assert not [e for e in w.events() if e["kind"] == "removed"]
    finally:
        assert w.stop() == 0, w.stderr()
    assert rows(w.db, "SELECT count(*) FROM tracks")[0][0] == 3


@pytest.mark.slow
def test_watch_reconcile_survives_its_watched_folder_vanishing(tmp_path):
    drive = tmp_path / "mnt" / "Music"
    _tree(drive, 2)
    w = Watch(tmp_path, drive, "--reconcile", "1")
    try:
        os.rename(tmp_path / "mnt", tmp_path / "mnt-gone")
        wait_for(lambda: "cannot be read now" in w.stderr(), timeout=60)
        time.sleep(2)
        assert w.proc.poll() is None, w.stderr()
        assert not [e for e in w.events() if e["kind"] == "removed"]
    finally:
        assert w.stop() == 0, w.stderr()
    assert rows(w.db, "SELECT count(*) FROM tracks")[0][0] == 2


@pytest.mark.slow
def test_unsupported_files_and_a_named_non_audio_file_are_counted_and_named(cli, tmp_path):
    music = tmp_path / "music"
    _tree(music, 1)
    for name in ("song.dsf", "old.MPC", "clip.mkv", "cover.jpg", "notes.txt"):
        (music / name).write_bytes(b"\0" * 100)
    result = cli("scan", music, music / "notes.txt")
    assert "1 added" in result.stdout and "4 skipped (--verbose names them)" in result.stdout, result.stdout
    verbose = cli("scan", music, music / "notes.txt", "--verbose")
    for name in ("song.dsf", "old.MPC", "clip.mkv", "notes.txt"):
        assert f"skipped: {music / name}: " in verbose.stderr
    assert "cover.jpg" not in verbose.stderr
    assert ".dsf extension: not an audio type audiodb reads" in verbose.stderr
    obj = json.loads(cli("scan", music, music / "notes.txt", "-f", "json").stdout)
    assert obj["skipped"] == 4 and obj["unchanged"] == 1


@pytest.mark.slow
def test_a_touched_file_with_the_same_content_is_unchanged_and_its_mtime_updated(tmp_path, db_path):
    music = tmp_path / "music"
    _tree(music, 2)
    lib = audiodb.Library(db_path)
    lib.scan([music])
    before = rows(
        db_path,
        "SELECT t.path, t.mtime_ns, e.computed_at, t.indexed_at FROM track_files t "
        "JOIN embeddings e USING (track_id) ORDER BY 1",
    )
    os.utime(music / "t0.wav", ns=(10**18, 10**18))
    report = lib.scan([music])
    assert report.unchanged == 2 and report.updated == 0 and not report.changes
    after = rows(
        db_path,
        "SELECT t.path, t.mtime_ns, e.computed_at, t.indexed_at FROM track_files t "
        "JOIN embeddings e USING (track_id) ORDER BY 1",
    )
    assert after[0][1] == 10**18 and after[0][2:] == before[0][2:] and after[1] == before[1]
    assert lib.scan([music]).unchanged == 2


@pytest.mark.slow
def test_a_second_scan_waits_for_the_first_and_finds_its_work_done(tmp_path):
    music = tmp_path / "music"
    _tree(music, 8)
    db = tmp_path / "lib.duckdb"
    lock = tmp_path / "lib.duckdb.scan.lock"
    first = subprocess.Popen(
        AUDIODB + ["--db", str(db), "scan", str(music), "-w", "1", "-f", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        wait_for(lambda: lock.exists() and lock.read_text().strip() == str(first.pid), timeout=60, every=0.05)
        second = run_audiodb("--db", db, "scan", music, "-w", "1", "-f", "json", cwd=tmp_path)
        out, err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0 and second.returncode == 0, (err, second.stderr)
    assert json.loads(out)["added"] == 8
    assert f"Another scan of this library ({db}) is running (pid {first.pid}); waiting" in second.stderr
    assert second.stderr.count("Another scan") == 1
    again = json.loads(second.stdout)
    assert again["added"] == 0 and again["updated"] == 0 and again["unchanged"] == 8
