"""A small scan analysed in the scanning process (no worker started): the workers' bits, its choice,
Ctrl-C, and the mark that sends the next scan to workers after one died analysing here."""

from __future__ import annotations

import multiprocessing
import os

import pytest
from conftest import music_like, rows, write_audio
from threadpoolctl import threadpool_limits

import audiodb
from audiodb.index import inprocess


def _scan(lib, folder, seen: list[int], **kw):
    def progress(done, total, path):
        seen.append(len(multiprocessing.active_children()))

    return lib.scan([folder], progress=progress, **kw)


def _vectors(db) -> list[tuple]:
    return rows(
        db,
        "SELECT t.file_name, e.vector, x.vector FROM track_files t JOIN embeddings e USING (track_id) "
        "JOIN extended_embeddings x USING (track_id) ORDER BY t.file_name",
    )


@pytest.mark.slow
def test_a_file_analysed_in_the_scanning_process_has_the_bits_a_worker_gives_it(tmp_path, monkeypatch):
    music = tmp_path / "music"
    music.mkdir()
    # 44.1 kHz stereo: the channels are mixed and resampled; 5 s, so the STFT and its BLAS products are real.
    write_audio(music / "five.wav", music_like(5.0, 44100, seed=7, channels=2), 44100)
    write_audio(music / "five.flac", music_like(5.0, 44100, seed=8, channels=1), 44100)
    in_parent, in_workers = [], []
    with threadpool_limits(limits=2):  # this process's BLAS as a user's may be: more than one thread
        report = _scan(audiodb.Library(tmp_path / "parent.duckdb"), music, in_parent, segments="calls")
    assert report.added == 2 and in_parent == [0, 0]  # analysed here: no worker process was started
    monkeypatch.setenv("AUDIODB_IN_PROCESS_SEC", "0")
    report = _scan(audiodb.Library(tmp_path / "workers.duckdb"), music, in_workers, segments="calls", workers=2)
    assert report.added == 2 and min(in_workers) >= 1
    parent, workers = _vectors(tmp_path / "parent.duckdb"), _vectors(tmp_path / "workers.duckdb")
    assert [r[0] for r in parent] == ["five.flac", "five.wav"]
    assert parent == workers  # bit for bit: every float of both feature sets
    segments = (
        "SELECT t.file_name, s.seg_index, s.start_ms, s.vector, s.rms_db, s.snr_db FROM segments s "
        "JOIN track_files t USING (track_id) ORDER BY t.file_name, s.seg_index"
    )
    in_parent_segments = rows(tmp_path / "parent.duckdb", segments)
    assert len(in_parent_segments) > 10 and in_parent_segments == rows(tmp_path / "workers.duckdb", segments)


def test_the_choice_counts_the_audio_in_the_headers(tmp_path, monkeypatch):
    write_audio(tmp_path / "five.wav", music_like(5.0, 22050, seed=1), 22050)
    five = [(str(tmp_path / "five.wav"), None)]
    assert inprocess.fits(five)
    assert not inprocess.fits(five * 13)  # 65 s of audio
    monkeypatch.setenv("AUDIODB_IN_PROCESS_SEC", "4")
    assert not inprocess.fits(five)
    monkeypatch.setenv("AUDIODB_IN_PROCESS_SEC", "0")
    assert not inprocess.fits(five) and not inprocess.could_fit([1])
    monkeypatch.delenv("AUDIODB_IN_PROCESS_SEC")
    monkeypatch.setenv("AUDIODB_LONG_FILE_SEC", "4")  # a long file now: its chunks go to the workers
    assert not inprocess.fits(five)
    monkeypatch.delenv("AUDIODB_LONG_FILE_SEC")
    # No header libsndfile reads: counted at 2,000 bytes a second, the tightest any codec packs audio.
    (tmp_path / "odd.m4a").write_bytes(b"\0" * 100_000)  # 50 s
    assert inprocess.fits([(str(tmp_path / "odd.m4a"), None)])
    assert not inprocess.fits([(str(tmp_path / "odd.m4a"), None)] * 2)
    assert not inprocess.could_fit([1000] * (inprocess.MAX_FILES + 1))
    assert not inprocess.could_fit([int(inprocess.IN_PROCESS_SEC * inprocess.MAX_BYTES_PER_SEC) + 1])


def test_ctrl_c_while_analysing_here_keeps_what_finished_and_leaves_no_mark(tmp_path, db_path):
    music = tmp_path / "music"
    music.mkdir()
    for i in range(3):
        write_audio(music / f"c{i}.wav", music_like(1.0, 22050, seed=i), 22050)
    lib = audiodb.Library(db_path)

    def interrupt(done, total, path):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        lib.scan([music], progress=interrupt)
    assert rows(db_path, "SELECT count(*) FROM embeddings") == [(1,)]  # the file done before Ctrl-C
    assert not inprocess.crash_mark(db_path).exists()
    report = lib.scan([music])
    assert report.added == 2 and report.unchanged == 1


def test_a_scan_that_died_analysing_here_sends_the_next_to_workers_once(tmp_path, db_path):
    music = tmp_path / "music"
    music.mkdir()
    write_audio(music / "c.wav", music_like(1.0, 22050, seed=3), 22050)
    mark = inprocess.crash_mark(db_path)
    mark.write_bytes(os.fsencode(music / "c.wav") + b"\n")  # what a scan killed while analysing here leaves
    seen: list[int] = []
    assert _scan(audiodb.Library(db_path), music, seen).added == 1
    assert seen and min(seen) >= 1  # a worker analysed it
    assert not mark.exists()  # done: the next scan may analyse here again
    (music / "d.wav").write_bytes((music / "c.wav").read_bytes()[:-2000])
    seen.clear()
    assert _scan(audiodb.Library(db_path), music, seen).added == 1 and seen == [0]


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: BLAS starts one thread anyway")
def test_the_scan_command_starts_no_blas_thread_pool_in_its_own_process(tmp_path):
    # It plans and writes, and analyses a few short files with one BLAS thread as the workers do.
    import json
    import subprocess
    import sys

    music = tmp_path / "music"
    music.mkdir()
    write_audio(music / "a.wav", music_like(0.5, 22050, seed=1), 22050)
    code = (
        "import json, sys\n"
        "from audiodb.cli import main\n"
        "{before}"
        "from threadpoolctl import threadpool_info\n"
        "print(json.dumps(sorted({{i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas'}})))\n"
    )
    scan = f"main(['--db', {str(tmp_path / 'l.duckdb')!r}, 'scan', {str(music)!r}], standalone_mode=False)\n"
    pinned = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    env = {k: v for k, v in os.environ.items() if k not in pinned}
    counts = {}
    for name, before in (("scan", scan), ("plain numpy", "import numpy\n")):
        done = subprocess.run(
            [sys.executable, "-c", code.format(before=before)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,  # the installed audiodb (with its audiodb.cli), not the checkout's folder
        )
        assert done.returncode == 0, done.stderr
        counts[name] = json.loads(done.stdout.strip().splitlines()[-1])
    assert counts["scan"] == [1]
    assert max(counts["plain numpy"]) > 1  # what it would have started
