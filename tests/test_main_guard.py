"""A script that scans at its top level, without ``if __name__ == "__main__":``.

Worker processes are started with ``spawn``, which runs the main script again
in each of them. That used to start a scan inside every worker and record
every file as "the decoder crashed"; now the scan stops with an error that
says what to add, and records nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import AUDIODB, music_like, rows, write_audio

pytestmark = [pytest.mark.slow, pytest.mark.process]

UNGUARDED = """\
import audiodb

report = audiodb.Library({db!r}).scan([{root!r}], workers=2)
print("scanned", report.added, report.failed)
"""

GUARDED = """\
import audiodb

if __name__ == "__main__":
    report = audiodb.Library({db!r}).scan([{root!r}], workers=2)
    print("scanned", report.added, report.failed)
"""


@pytest.fixture(autouse=True)
def _workers(monkeypatch):
    """These tests are about worker processes: have every scan start them, however little it has to
    analyse (the scripts and commands run here inherit the environment)."""
    monkeypatch.setenv("AUDIODB_IN_PROCESS_SEC", "0")


def run_script(tmp_path, name: str, text: str) -> subprocess.CompletedProcess:
    script = tmp_path / name
    script.write_text(text)
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=300)


def test_a_scan_at_a_scripts_top_level_says_what_to_add_and_records_nothing(tmp_path, music_dir):
    db = tmp_path / "script.duckdb"
    out = run_script(tmp_path, "unguarded.py", UNGUARDED.format(db=str(db), root=str(music_dir)))
    assert out.returncode == 1
    assert "scanned" not in out.stdout
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("audiodb.errors.UsageError: ")
    assert 'if __name__ == "__main__":' in last and "Library.scan" in last and "top level" in last
    assert "decoder crashed" not in out.stderr
    assert "bootstrapping phase" not in out.stderr  # the workers left quietly, before scanning themselves
    assert rows(db, "SELECT count(*) FROM failures") == [(0,)]
    assert rows(db, "SELECT count(*) FROM track_files") == [(0,)]

    # Adding the guard is all it takes; the same library then fills normally.
    out = run_script(tmp_path, "guarded.py", GUARDED.format(db=str(db), root=str(music_dir)))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["scanned", "5", "0"]
    assert rows(db, "SELECT count(*) FROM failures") == [(0,)]


def test_a_small_scan_at_a_scripts_top_level_starts_no_worker_and_so_works(tmp_path, music_dir, monkeypatch):
    """Five 2-s files are analysed in the scanning process (no worker is spawned, so the unguarded
    script is not run again); after a scan that died analysing in its own process (its crash mark
    left behind), the next one uses workers, and the unguarded script gets the guard's message."""
    monkeypatch.delenv("AUDIODB_IN_PROCESS_SEC")
    db = tmp_path / "small.duckdb"
    out = run_script(tmp_path, "unguarded.py", UNGUARDED.format(db=str(db), root=str(music_dir)))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["scanned", "5", "0"]
    assert not (tmp_path / "small.duckdb.analysing").exists()

    db = tmp_path / "crashed.duckdb"
    mark = tmp_path / "crashed.duckdb.analysing"
    mark.write_bytes(os.fsencode(music_dir / "a" / "one.wav") + b"\n")  # as a scan killed mid-analysis leaves it
    out = run_script(tmp_path, "unguarded.py", UNGUARDED.format(db=str(db), root=str(music_dir)))
    assert out.returncode == 1 and 'if __name__ == "__main__":' in out.stderr
    assert mark.exists()  # that scan did not finish: the next one uses workers too
    out = run_script(tmp_path, "guarded.py", GUARDED.format(db=str(db), root=str(music_dir)))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["scanned", "5", "0"]
    assert not mark.exists()


def _workers_of(pid: int) -> list[int]:
    """The scan's spawn workers (not multiprocessing's resource tracker)."""
    try:
        children = open(f"/proc/{pid}/task/{pid}/children").read().split()
    except OSError:
        return []
    out = []
    for c in map(int, children):
        try:
            cmd = open(f"/proc/{c}/cmdline", "rb").read()
        except OSError:
            continue
        if b"spawn_main" in cmd and b"resource_tracker" not in cmd:
            out.append(c)
    return out


def _is_decoding(pid: int) -> bool:
    try:
        return "sndfile" in open(f"/proc/{pid}/maps").read()  # loaded by its first file
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc (Linux)")
def test_a_worker_killed_while_analysing_is_still_a_crash_to_retry_not_a_start_failure(tmp_path):
    root = tmp_path / "many"
    root.mkdir()
    n = 12
    for i in range(n):
        write_audio(root / f"m{i:02d}.flac", music_like(4.0, 44100, seed=200 + i, channels=2), 44100)
    db = tmp_path / "k.duckdb"
    proc = subprocess.Popen(
        AUDIODB + ["--db", str(db), "scan", str(root), "--workers", "2", "-f", "json"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    victim = None
    deadline = time.monotonic() + 120
    while victim is None and time.monotonic() < deadline and proc.poll() is None:
        victim = next((w for w in _workers_of(proc.pid) if _is_decoding(w)), None)
        time.sleep(0.05)
    assert victim is not None, "no worker was seen analysing"
    os.kill(victim, signal.SIGKILL)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "died while starting" not in err
    assert json.loads(out) == {
        "added": n,
        "updated": 0,
        "moved": 0,
        "removed": 0,
        "unchanged": 0,
        "failed": 0,
        "skipped": 0,
    }
    assert rows(db, "SELECT count(*) FROM failures") == [(0,)]
