"""`audiodb watch` as a real process on a real tree, with other audiodb processes alongside."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time

import duckdb
import pytest
from audio import music_like, tone, write_audio
from conftest import AUDIODB, run_audiodb

pytestmark = [pytest.mark.slow, pytest.mark.process]


def tracks(db) -> dict[str, float]:
    out = run_audiodb("--db", db, "sql", "select path, duration_sec from tracks", "-f", "json", cwd=os.path.dirname(db))
    assert out.returncode == 0, out.stderr
    return {r["path"]: r["duration_sec"] for r in json.loads(out.stdout)}


def wait_for(predicate, timeout=60.0, every=0.3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("condition not reached in time")


class Watch:
    def __init__(self, tmp_path, root, *args):
        self.db = str(tmp_path / "w.duckdb")
        self.out = open(tmp_path / "watch.jsonl", "w+")
        self.err = open(tmp_path / "watch.err", "w+")
        self.proc = subprocess.Popen(
            AUDIODB + ["--db", self.db, "watch", str(root), "--settle", "0.6", "-w", "2", "-f", "jsonl", *args],
            stdout=self.out,
            stderr=self.err,
            cwd=tmp_path,
        )
        wait_for(lambda: "Caught up" in self.stderr(), timeout=120)

    def stderr(self) -> str:
        self.err.flush()
        with open(self.err.name) as f:
            return f.read()

    def events(self) -> list[dict]:
        with open(self.out.name) as f:
            return [json.loads(line) for line in f if line.strip()]

    def stop(self) -> int:
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=60)  # generous: a loaded 2-core machine starts workers slowly
        self.elapsed = time.monotonic() - started
        return code


class Readers:
    """Other audiodb processes reading the same library in a loop; records any failure."""

    def __init__(self, db, cwd):
        self.db, self.cwd, self.failures, self.runs = db, cwd, [], 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        commands = [
            ["sql", "select count(*) from tracks"],
            ["status", "-f", "json"],
            ["failures"],
            ["sql", "select avg(rms_mean) from features"],
        ]
        i = 0
        while not self._stop.is_set():
            out = run_audiodb("--db", self.db, *commands[i % len(commands)], cwd=self.cwd, timeout=120)
            self.runs += 1
            if out.returncode != 0 or "Could not set lock" in out.stderr:
                self.failures.append((commands[i % len(commands)], out.returncode, out.stderr))
            i += 1

    def stop(self):
        self._stop.set()
        self.thread.join(timeout=120)


def slow_copy(src, dst, pieces=6, pause=0.3):
    data = open(src, "rb").read()
    step = len(data) // pieces + 1
    with open(dst, "wb") as f:
        for i in range(0, len(data), step):
            f.write(data[i : i + step])
            f.flush()
            time.sleep(pause)


def test_watch_follows_everything_a_file_system_does(tmp_path):
    root = tmp_path / "tree"
    (root / "keep").mkdir(parents=True)
    for i in range(3):
        write_audio(root / "keep" / f"k{i}.wav", music_like(1.0, 22050, seed=i), 22050)
    staging = tmp_path / "staging"
    staging.mkdir()
    long_src = write_audio(staging / "long.wav", music_like(6.0, 44100, seed=50, channels=2), 44100)

    watch = Watch(tmp_path, root)
    readers = Readers(watch.db, tmp_path)
    try:
        assert len(tracks(watch.db)) == 3
        # New files and a new subfolder with files.
        write_audio(root / "new.flac", music_like(1.0, 44100, seed=10), 44100)
        (root / "sub" / "deeper").mkdir(parents=True)
        write_audio(root / "sub" / "deeper" / "a.ogg", music_like(1.0, 44100, seed=11), 44100)
        write_audio(root / "sub" / "b.mp3", music_like(1.0, 44100, seed=12), 44100)
        # A slow copy is read once, complete.
        slow_copy(long_src, root / "slow.wav")
        wait_for(lambda: len(tracks(watch.db)) == 7)
        assert tracks(watch.db)[str(root / "slow.wav")] == pytest.approx(6.0, abs=0.01)

        # Edit in place, and an atomic save (temp file renamed over the original).
        write_audio(root / "keep" / "k0.wav", music_like(2.0, 22050, seed=20), 22050)
        tmp = root / "keep" / ".k1.wav.partial"
        write_audio(staging / "k1-new.wav", music_like(3.0, 22050, seed=21), 22050)
        shutil.copy(staging / "k1-new.wav", tmp)
        os.replace(tmp, root / "keep" / "k1.wav")
        wait_for(
            lambda: (
                tracks(watch.db).get(str(root / "keep" / "k1.wav"), 0) > 2.5
                and tracks(watch.db).get(str(root / "keep" / "k0.wav"), 0) > 1.5
            )
        )

        # Renames and moves within the tree: paths follow, no re-analysis.
        before = {
            r["path"]: r["track_id"]
            for r in json.loads(
                run_audiodb(
                    "--db", watch.db, "sql", "select path, track_id from tracks", "-f", "json", cwd=tmp_path
                ).stdout
            )
        }
        os.rename(root / "new.flac", root / "renamed.flac")
        os.rename(root / "sub", root / "moved-sub")
        wait_for(
            lambda: (
                str(root / "moved-sub" / "deeper" / "a.ogg") in tracks(watch.db)
                and str(root / "renamed.flac") in tracks(watch.db)
            )
        )
        after = {
            r["path"]: r["track_id"]
            for r in json.loads(
                run_audiodb(
                    "--db", watch.db, "sql", "select path, track_id from tracks", "-f", "json", cwd=tmp_path
                ).stdout
            )
        }
        assert after[str(root / "renamed.flac")] == before[str(root / "new.flac")]
        assert after[str(root / "moved-sub" / "b.mp3")] == before[str(root / "sub" / "b.mp3")]

        # Deletes: a file, and a folder moved out of the tree (one event for the folder).
        os.remove(root / "keep" / "k2.wav")
        shutil.move(str(root / "moved-sub"), str(tmp_path / "gone-sub"))
        wait_for(lambda: len(tracks(watch.db)) == 4)
        assert set(tracks(watch.db)) == {
            str(root / p) for p in ("keep/k0.wav", "keep/k1.wav", "renamed.flac", "slow.wav")
        }
        # and a whole folder deleted
        shutil.rmtree(root / "keep")
        wait_for(lambda: len(tracks(watch.db)) == 2)
    finally:
        readers.stop()
        code = watch.stop()
    assert code == 0 and watch.elapsed < 10
    assert readers.runs > 5 and readers.failures == []
    kinds = [e["kind"] for e in watch.events()]
    for kind in ("added", "updated", "moved", "removed"):
        assert kind in kinds, (kind, kinds)
    added = [e["path"] for e in watch.events() if e["kind"] == "added"]
    assert added.count(str(root / "slow.wav")) == 1
    # The library file opens, and a scan after the watcher finds nothing to do.
    out = run_audiodb("--db", watch.db, "scan", root, "-f", "json", cwd=tmp_path)
    assert json.loads(out.stdout) == {
        "added": 0,
        "updated": 0,
        "moved": 0,
        "removed": 0,
        "unchanged": 2,
        "failed": 0,
        "skipped": 0,
    }


def test_copying_many_files_indexes_each_once(tmp_path):
    root = tmp_path / "tree"
    root.mkdir()
    src = tmp_path / "src"
    src.mkdir()
    n = 150
    for i in range(n):
        write_audio(src / f"f{i:03d}.wav", tone(0.3, 8000, freq=200 + 7 * i), 8000)
    watch = Watch(tmp_path, root)
    try:
        shutil.copytree(src, root / "batch")
        wait_for(lambda: len(tracks(watch.db)) == n, timeout=180)
        time.sleep(1.5)  # give a duplicate a chance to show
    finally:
        assert watch.stop() == 0
    added = [e["path"] for e in watch.events() if e["kind"] == "added"]
    assert len(added) == n and len(set(added)) == n
    con = duckdb.connect(watch.db, read_only=True)
    assert con.execute("select count(*), count(distinct path) from tracks").fetchone() == (n, n)
    assert con.execute("select count(*) from embeddings").fetchone()[0] == n
    con.close()


def test_polling_mode_and_reconcile_catch_changes(tmp_path):
    root = tmp_path / "tree"
    root.mkdir()
    watch = Watch(tmp_path, root, "--poll", "0.5", "--reconcile", "3")
    try:
        write_audio(root / "polled.wav", music_like(1.0, 22050, seed=3), 22050)
        wait_for(lambda: str(root / "polled.wav") in tracks(watch.db), timeout=30)
    finally:
        assert watch.stop() == 0


def test_ctrl_c_stops_cleanly_and_the_next_start_catches_up(tmp_path):
    root = tmp_path / "tree"
    root.mkdir()
    for i in range(4):
        write_audio(root / f"x{i}.wav", music_like(1.0, 22050, seed=i), 22050)
    watch = Watch(tmp_path, root)
    watch.proc.send_signal(signal.SIGINT)
    assert watch.proc.wait(timeout=20) == 0
    write_audio(root / "while-stopped.wav", music_like(1.0, 22050, seed=9), 22050)
    watch2 = Watch(tmp_path, root)
    try:
        assert str(root / "while-stopped.wav") in tracks(watch2.db)
    finally:
        assert watch2.stop() == 0


def test_a_renames_two_paths_settle_together(tmp_path):
    """A rename's source and destination are recorded at one moment, so one settled() call takes
    both and the scan sees a move (apart, a check between them gave a removal and a new track)."""
    from audiodb.index.watch import _Dirty

    src, dest = tmp_path / "old.wav", tmp_path / "new.wav"
    write_audio(dest, music_like(0.5, 22050, seed=1), 22050)
    dirty = _Dirty()
    dirty.touch(str(src), str(dest), kind="moved")
    assert dirty.paths[str(src)].last_event == dirty.paths[str(dest)].last_event
    time.sleep(0.05)
    assert sorted(dirty.settled(0.05)) == sorted([str(src), str(dest)])
