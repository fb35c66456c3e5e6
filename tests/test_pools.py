"""The local worker pool: short files go to the workers in chunks, and a worker killed while it
holds a chunk loses none of its files; a chunk of damaged files records each of them."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest
from audio import music_like, write_audio

import audiodb
from audiodb.index.pools import CHUNK_BYTES, CHUNK_FILES, chunk_tasks


def _sized(tmp_path, sizes):
    tasks = []
    for i, size in enumerate(sizes):
        path = tmp_path / f"f{i}.bin"
        path.write_bytes(b"\0" * size)
        tasks.append((str(path), None))
    return tasks


def test_chunks_keep_the_order_and_put_a_large_file_alone(tmp_path):
    big = CHUNK_BYTES + 1
    tasks = _sized(tmp_path, [1000] * 5 + [big] + [1000] * 3)
    tasks.append((str(tmp_path / "missing.wav"), "h"))  # cannot be stat'ed: sent all the same
    chunks = chunk_tasks(tasks, workers=1)
    assert [t for c in chunks for t in c] == tasks
    assert [(tasks[5],)] == [tuple(c) for c in chunks if tasks[5] in c]  # the large file alone
    assert all(len(c) <= CHUNK_FILES for c in chunks)


def test_chunks_spread_a_small_job_over_the_workers(tmp_path):
    tasks = _sized(tmp_path, [1000] * 16)
    chunks = chunk_tasks(tasks, workers=2)
    # A quarter of the bytes per worker: 2000 bytes, so 2 files a chunk and 8 chunks for 2 workers.
    assert [len(c) for c in chunks] == [2] * 8
    assert len(chunk_tasks(_sized(tmp_path, [10] * 100), workers=1)) == 4
    assert [len(c) for c in chunk_tasks(_sized(tmp_path, [10] * 100 * CHUNK_FILES), workers=1)][0] == CHUNK_FILES


def _worker_pids() -> list[int]:
    """This process's spawned pool workers (not multiprocessing's resource tracker)."""
    pids = []
    for task in os.listdir(f"/proc/{os.getpid()}/task"):
        try:
            with open(f"/proc/{os.getpid()}/task/{task}/children") as f:
                children = f.read().split()
        except OSError:  # the thread ended since the listing (the pool's manager thread, say)
            continue
        for pid in children:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as c:
                    cmdline = c.read()
            except OSError:
                continue
            if b"--multiprocessing-fork" in cmdline and b"resource_tracker" not in cmdline:
                pids.append(int(pid))
    return pids


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc and SIGKILL (Linux)")
def test_a_worker_killed_while_it_holds_a_chunk_loses_none_of_its_files(tmp_path, db_path, monkeypatch):
    monkeypatch.setenv("AUDIODB_IN_PROCESS_SEC", "0")  # workers, however little there is to analyse
    music = tmp_path / "music"
    music.mkdir()
    for i in range(12):
        write_audio(music / f"c{i:02d}.wav", music_like(0.5, 22050, seed=i), 22050)
    killed = []

    def progress(done, total, path):
        if not killed:  # the first chunk is back; the next ones are in flight: end the worker
            pids = _worker_pids()
            assert pids, "no pool worker found"
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            killed.extend(pids)

    report = audiodb.Library(db_path).scan([music], workers=1, progress=progress)
    assert killed
    assert report.counts()["added"] == 12 and report.failed == 0, report.changes


@pytest.mark.slow
def test_a_chunk_of_damaged_files_records_each_of_them(tmp_path, db_path, monkeypatch):
    monkeypatch.setenv("AUDIODB_IN_PROCESS_SEC", "0")
    music = tmp_path / "music"
    music.mkdir()
    for i in range(6):
        (music / f"bad{i}.wav").write_bytes(b"RIFF\0\0\0\0WAVEjunk" * (i + 1))
    for i in range(3):
        write_audio(music / f"good{i}.wav", music_like(0.5, 22050, seed=i), 22050)
    assert len(chunk_tasks([(str(p), None) for p in sorted(music.iterdir())], workers=1)) < 9  # some share a chunk
    report = audiodb.Library(db_path).scan([music], workers=1)
    assert report.counts()["added"] == 3
    assert sorted(os.path.basename(c.path) for c in report.changes if c.kind == "failed") == [
        f"bad{i}.wav" for i in range(6)
    ]


@pytest.mark.slow
def test_a_scan_imports_only_what_it_needs_in_the_parent_and_the_workers(tmp_path):
    """The console script is not run again in each worker (it would import click and every
    command), and nothing of a scan imports librosa, numba (no JIT compilation), pyarrow or pandas."""
    script = pathlib.Path(sys.executable).with_name("audiodb")
    if not script.is_file():
        pytest.skip("no audiodb console script next to this python")
    music = tmp_path / "music"
    music.mkdir()
    for i in range(3):
        write_audio(music / f"c{i}.wav", music_like(0.5, 22050, seed=i), 22050)
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1", "AUDIODB_DEBUG": "1"}  # workers keep their stderr
    env["AUDIODB_IN_PROCESS_SEC"] = "0"  # workers, however little there is to analyse
    done = subprocess.run(
        [str(script), "scan", str(music), "--db", str(tmp_path / "l.duckdb"), "--workers", "2", "-f", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["added"] == 3
    imported = [line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")]
    assert imported.count("audiodb.cli") == 1  # the parent only
    assert imported.count("audiodb.analysis.extended") >= 1  # a worker's imports are in the log too
    for heavy in ("librosa", "numba", "pyarrow", "pandas"):
        assert heavy not in imported, f"a scan imported {heavy}"


def _pids_with(marker: str) -> list[int]:
    needle = f"AUDIODB_POOL_TEST={marker}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if needle in f.read().split(b"\0"):
                        with open(f"/proc/{entry}/stat") as s:
                            if s.read().rsplit(")", 1)[1].split()[0] != "Z":
                                found.append(int(entry))
            except OSError:
                continue
    return found


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc and SIGKILL (Linux)")
def test_a_worker_started_while_the_plan_is_made_dies_with_a_killed_scan(tmp_path):
    music = tmp_path / "music"
    music.mkdir()
    for i in range(3):
        write_audio(music / f"c{i}.wav", music_like(0.5, 22050, seed=i), 22050)
    marker = os.urandom(8).hex()
    env = {**os.environ, "AUDIODB_POOL_TEST": marker, "AUDIODB_IN_PROCESS_SEC": "0"}
    cmd = [sys.executable, "-c", "import sys; from audiodb.cli import main; sys.exit(main())"]
    proc = subprocess.Popen(
        [*cmd, "scan", str(music), "--db", str(tmp_path / "l.duckdb")],
        env=env,
        cwd=tmp_path,  # not the source tree: the installed package (with its cli) is what runs
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while len(_pids_with(marker)) < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)  # the scan, multiprocessing's resource tracker, and the early worker
        assert proc.poll() is None, "the scan ended before a worker started"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        deadline = time.monotonic() + 10  # a worker still loading its libraries notices when they are loaded
        while _pids_with(marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _pids_with(marker), "a worker outlived the killed scan"
    finally:
        for pid in _pids_with(marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_a_rescan_with_nothing_to_do_leaves_no_worker_behind(tmp_path, db_path, monkeypatch):
    monkeypatch.setenv("AUDIODB_IN_PROCESS_SEC", "0")  # so the rescan starts its early worker
    music = tmp_path / "music"
    music.mkdir()
    write_audio(music / "c.wav", music_like(0.5, 22050, seed=1), 22050)
    lib = audiodb.Library(db_path)
    lib.scan([music], workers=1)
    report = lib.scan([music], workers=1)  # its early worker is killed: there is nothing to analyse
    assert report.unchanged == 1 and not report.changes
    deadline = time.monotonic() + 10
    while _worker_pids() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _worker_pids()


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc (Linux)")
def test_a_scans_workers_are_gone_when_it_returns(tmp_path, db_path, monkeypatch):
    # They exit while the last batch is written (wind_down), and the scan waits for them after it.
    monkeypatch.setenv("AUDIODB_IN_PROCESS_SEC", "0")
    music = tmp_path / "music"
    music.mkdir()
    for i in range(6):
        write_audio(music / f"c{i}.wav", music_like(0.5, 22050, seed=i), 22050)
    report = audiodb.Library(db_path).scan([music], workers=2)
    assert len(report.changes) == 6 and not report.failed
    assert not _worker_pids()
    assert audiodb.Library(db_path).sql("SELECT count(*) FROM embeddings").rows == [(6,)]


@pytest.mark.slow
def test_a_pool_wound_down_starts_new_workers_for_its_next_run(tmp_path, db_path):
    from audiodb.index.pools import ProcessPool

    music = tmp_path / "music"
    music.mkdir()
    write_audio(music / "a.wav", music_like(0.5, 22050, seed=1), 22050)
    lib = audiodb.Library(db_path)
    with ProcessPool(1) as pool:
        lib.scan([music], workers=1, pool=pool)
        first = _worker_pids()
        pool.wind_down()
        write_audio(music / "b.wav", music_like(0.5, 22050, seed=2), 22050)
        report = lib.scan([music], workers=1, pool=pool)
        assert [c.path for c in report.changes] == [str(music / "b.wav")]
        assert first and not set(first) & set(_worker_pids())
    assert not _worker_pids()
