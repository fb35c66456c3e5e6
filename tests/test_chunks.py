"""Long files analysed in chunks (audiodb.analysis.chunks, audiodb.index.chunks) give the whole-file numbers.

The files are real audio written here, long enough to be chunked with a small
threshold (AUDIODB_LONG_FILE_SEC, AUDIODB_CHUNK_SEC): the chunked path and the
whole-file path (``long_file_sec`` above the file's length) are compared.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import duckdb
import numpy as np
import pytest
import soundfile as sf
from audio import SOUNDFILE_FORMATS, music_like, tone
from conftest import AUDIODB

from audiodb.analysis import chunks
from audiodb.analysis.decode import load
from audiodb.analysis.embed import embed_file
from audiodb.analysis.frames import frame_features
from audiodb.analysis.params import NOTEBOOK

pytestmark = pytest.mark.slow

WHOLE = 1e9  # long_file_sec: never chunked


def write_long(path, y: np.ndarray, sr: int):
    """Write ``y`` block by block (one sf.write call of a long array makes a Vorbis file libsndfile
    itself reads inconsistently: header 45 s, sf.read 20 s, block reads 23 s)."""
    fmt, subtype = SOUNDFILE_FORMATS[os.path.splitext(str(path))[1].lower()]
    channels = 1 if y.ndim == 1 else y.shape[1]
    with sf.SoundFile(str(path), "w", sr, channels, format=fmt, subtype=subtype) as f:
        for i in range(0, len(y), 16384):
            f.write(y[i : i + 16384])
    return path


def with_silence(y: np.ndarray, sr: int, lead: float, tail: float) -> np.ndarray:
    pad = lambda sec: np.zeros((int(sec * sr), *y.shape[1:]), np.float32)  # noqa: E731
    return np.concatenate([pad(lead), y, pad(tail)])


def both(path, **kw):
    """(whole-file vector, extended, meta), (chunked ...)."""
    out = []
    for sec in (WHOLE, 10.0):
        vec, meta = embed_file(str(path), extended=True, long_file_sec=sec, **kw)
        out.append((vec, meta.pop("extended_vector"), meta))
    return out


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setenv("AUDIODB_CHUNK_SEC", "7")
    monkeypatch.setenv("AUDIODB_LONG_FILE_SEC", "10")


@pytest.mark.parametrize(
    "ext,sr,channels",
    [(".wav", 44100, 2), (".flac", 48000, 1), (".ogg", 44100, 2), (".mp3", 44100, 2), (".opus", 48000, 2)],
)
def test_chunked_analysis_equals_the_whole_file(tmp_path, small_chunks, ext, sr, channels):
    y = with_silence(music_like(32.0, sr, seed=7, channels=channels), sr, lead=2.3, tail=1.7)
    path = write_long(tmp_path / f"long{ext}", y, sr)
    src = chunks.probe(str(path))
    assert src is not None and src.duration_sec(NOTEBOOK.sr) > 10
    (v0, e0, m0), (v1, e1, m1) = both(path)
    np.testing.assert_allclose(v1, v0, rtol=1e-5, atol=0)
    np.testing.assert_allclose(e1, e0, rtol=1e-5, atol=1e-7)
    assert m1 == m0

    # The per-frame values of the untrimmed signal, joined from 5+ chunks, are the whole decode's.
    ff = chunks.file_frames(src, NOTEBOOK, extended=True)
    whole = frame_features(load(str(path)).y, n_mels=NOTEBOOK.n_mels, **chunks.feature_bases(NOTEBOOK, True))
    assert ff.n_frames == whole["rms"].shape[-1]
    for key, value in whole.items():
        np.testing.assert_allclose(ff.frames[key], value, rtol=1e-5, atol=1e-9, err_msg=key)
    start, end = ff.trim_bounds(NOTEBOOK)
    assert 0 < start and end < ff.n_samples  # both trim edges are inside the file: recomputed frames
    np.testing.assert_allclose(ff.times[:3], [0, 512 / 22050, 1024 / 22050])


def test_a_short_loud_stretch_falls_back_to_the_untrimmed_signal(tmp_path, small_chunks):
    sr = 44100
    rng = np.random.default_rng(3)
    y = (rng.standard_normal(sr * 30) * 1e-4).astype(np.float32)  # -80 dBFS noise
    y[sr * 17 : sr * 17 + sr // 5] += tone(0.2, sr, freq=880.0)[: sr // 5] * 0.5  # 0.2 s: under min_trimmed_sec
    path = write_long(tmp_path / "quiet.flac", y, sr)
    ff = chunks.file_frames(chunks.probe(str(path)), NOTEBOOK)
    start, end = ff.trim_bounds(NOTEBOOK)
    assert 0 < end - start < NOTEBOOK.min_trimmed_sec * NOTEBOOK.sr
    (v0, e0, m0), (v1, e1, m1) = both(path)
    np.testing.assert_allclose(v1, v0, rtol=1e-5, atol=0)
    np.testing.assert_allclose(e1, e0, rtol=1e-5, atol=1e-7)


def test_silence_only_at_the_end_and_a_rate_without_resampling(tmp_path, small_chunks):
    sr = 22050
    y = with_silence(music_like(25.0, sr, seed=9), sr, lead=0.0, tail=3.0)
    path = write_long(tmp_path / "tail.wav", y, sr)
    (v0, e0, _), (v1, e1, _) = both(path)
    np.testing.assert_allclose(v1, v0, rtol=1e-5, atol=0)
    np.testing.assert_allclose(e1, e0, rtol=1e-5, atol=1e-7)


def test_seam_periods_found_by_search_are_the_table_s(small_chunks):
    chunks.seam_periods.cache_clear()
    table = dict(chunks.SEAM_PERIODS)
    try:
        chunks.SEAM_PERIODS.clear()
        assert chunks.seam_periods(44100, 22050) == table[(44100, 22050)]
        assert chunks.seam_periods(32000, 22050) == table[(32000, 22050)]
    finally:
        chunks.SEAM_PERIODS.update(table)
        chunks.seam_periods.cache_clear()


def damaged_flac(path, seconds: float = 40.0):
    y = music_like(seconds, 44100, seed=5, channels=2)
    write_long(path, y, 44100)
    data = bytearray(path.read_bytes())
    at = int(len(data) * 0.6)
    data[at : at + 20000] = np.random.default_rng(1).integers(0, 256, 20000, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


def stored(db, path, table="embeddings"):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(
            f"SELECT e.vector FROM track_files t JOIN {table} e USING (track_id) WHERE t.path = ?", [str(path)]
        ).fetchone()
    finally:
        con.close()


def test_a_chunk_that_cannot_be_decoded_sends_the_file_to_the_whole_file_decode(tmp_path, small_chunks):
    import audiodb

    root = tmp_path / "m"
    root.mkdir()
    bad = damaged_flac(root / "damaged.flac")
    good = write_long(root / "good.ogg", music_like(24.0, 44100, seed=2, channels=2), 44100)
    report = audiodb.scan([root], db=tmp_path / "lib.duckdb", workers=2)
    assert report.counts()["added"] == 2 and report.failed == 0
    for path in (bad, good):
        vec, meta = embed_file(str(path), extended=True, long_file_sec=WHOLE)
        np.testing.assert_allclose(np.array(stored(tmp_path / "lib.duckdb", path)[0]), vec, rtol=1e-5, atol=1e-6)
    # libsndfile loses sync in the damaged stretch: the whole-file decode reads it with FFmpeg
    assert embed_file(str(bad), long_file_sec=WHOLE)[1]["decoder"] == "ffmpeg"


def _workers_of(pid: int) -> list[int]:
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
        return "sndfile" in open(f"/proc/{pid}/maps").read()
    except OSError:
        return False


@pytest.mark.process
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc (Linux)")
def test_a_worker_killed_during_a_chunk_retries_the_file_and_loses_nothing(tmp_path):
    root = tmp_path / "m"
    root.mkdir()
    long = write_long(root / "long.flac", music_like(90.0, 44100, seed=11, channels=2), 44100)
    for i in range(3):
        write_long(root / f"s{i}.wav", music_like(3.0, 44100, seed=20 + i), 44100)
    db = tmp_path / "k.duckdb"
    env = {**os.environ, "AUDIODB_LONG_FILE_SEC": "10", "AUDIODB_CHUNK_SEC": "5"}
    proc = subprocess.Popen(
        AUDIODB + ["--db", str(db), "scan", str(root), "--workers", "2", "-f", "json"],
        cwd=tmp_path,
        env=env,
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
    counts = json.loads(out)
    assert counts["added"] == 4 and counts["failed"] == 0, counts
    vec, meta = embed_file(str(long), extended=True, long_file_sec=WHOLE)
    np.testing.assert_allclose(np.array(stored(db, long)[0]), vec, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        np.array(stored(db, long, "extended_embeddings")[0]), meta["extended_vector"], rtol=1e-5, atol=1e-6
    )


@pytest.fixture
def dask_workers(tmp_path):
    """A real `dask scheduler` and two single-thread `dask worker` processes."""
    import distributed

    d = tmp_path / "dask"
    d.mkdir()
    sched_file = d / "scheduler.json"
    common = dict(cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dask",
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(sched_file),
            ],
            **common,
        )
    ]
    try:
        deadline = time.monotonic() + 60
        while not sched_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sched_file.exists(), "the dask scheduler did not start within 60 s"
        for _ in range(2):
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "dask",
                        "worker",
                        "--scheduler-file",
                        str(sched_file),
                        "--nthreads",
                        "1",
                        "--no-dashboard",
                    ],
                    **common,
                )
            )
        address = json.loads(sched_file.read_text())["address"]
        with distributed.Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=90)
            yield address, client
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(timeout=30)


@pytest.mark.process
def test_a_long_file_s_chunks_run_on_several_dask_workers(tmp_path, small_chunks, dask_workers):
    import audiodb

    address, client = dask_workers
    root = tmp_path / "m"
    root.mkdir()
    long = write_long(root / "long.ogg", music_like(40.0, 44100, seed=13, channels=2), 44100)
    client.get_task_stream()  # the scheduler records tasks from here on
    started = time.time()
    report = audiodb.scan([root], db=tmp_path / "lib.duckdb", scheduler=address)
    assert report.counts()["added"] == 1 and report.failed == 0
    stream = client.get_task_stream(start=started)
    on = {t["worker"] for t in stream if t["key"].startswith("analyse_chunk_on_worker")}
    assert len(on) == 2, stream
    vec, meta = embed_file(str(long), extended=True, long_file_sec=WHOLE)
    np.testing.assert_allclose(np.array(stored(tmp_path / "lib.duckdb", long)[0]), vec, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["seg.flac", "seg.m4a"])
def test_frames_of_file_is_the_hook_for_segments_and_finishes_to_the_file_s_numbers(tmp_path, name):
    from audio import write_audio

    sr = 44100
    y = with_silence(music_like(12.0, sr, seed=4, channels=2), sr, lead=1.0, tail=1.0)
    path = write_audio(tmp_path / name, y, sr)
    ff = chunks.frames_of_file(str(path), NOTEBOOK, extended=True)
    assert (ff.source is None) == name.endswith(".m4a")  # m4a: only FFmpeg reads it, decoded whole
    assert len(ff.times) == ff.n_frames == 1 + ff.n_samples // NOTEBOOK.hop_length
    start, end = ff.trim_bounds(NOTEBOOK)
    assert 0 < start and end < ff.n_samples
    vec, ext = chunks.finish(ff, NOTEBOOK, extended=True)
    v0, m0 = embed_file(str(path), extended=True, long_file_sec=WHOLE)
    np.testing.assert_allclose(vec, v0, rtol=1e-5, atol=0)
    np.testing.assert_allclose(ext, m0["extended_vector"], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("ext", [".flac", ".ogg"])
def test_a_long_file_s_segments_come_from_its_chunks_equal_to_the_whole_decode(tmp_path, small_chunks, ext):
    """Segments of a chunked file (never decoded whole) are those of the whole-file path."""
    from audiodb.analysis.embed import segment_file
    from audiodb.analysis.segments import parse_segmentation

    sr = 44100
    y = with_silence(music_like(24.0, sr, seed=5, channels=2), sr, 1.5, 2.0)
    path = write_long(tmp_path / f"long{ext}", y, sr)
    segs = [parse_segmentation("calls"), parse_segmentation("3/1.5")]
    (_, _, whole), (_, _, chunked) = both(path, segmentations=segs)
    assert whole["segments"].keys() == chunked["segments"].keys() == {s.id for s in segs}
    only = segment_file(str(path), segs)
    for s in segs:
        a, b, c = whole["segments"][s.id], chunked["segments"][s.id], only[s.id]
        assert len(a["start_ms"]) > 10
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
            np.testing.assert_array_equal(a[key], c[key], err_msg=key)


def test_a_long_file_split_over_two_workers_gets_the_segments_of_one_worker(tmp_path, small_chunks):
    import audiodb

    sr = 44100
    music = tmp_path / "music"
    music.mkdir()
    write_long(music / "long.flac", with_silence(music_like(30.0, sr, seed=9, channels=2), sr, 1.0, 1.0), sr)
    got = {}
    for workers in (1, 2):
        db = tmp_path / f"w{workers}.duckdb"
        report = audiodb.Library(db).scan([music], workers=workers, segments="calls")
        assert report.added == 1 and report.failed == 0
        con = duckdb.connect(str(db), read_only=True)
        got[workers] = con.execute(
            "SELECT seg_index, start_ms, end_ms, rms_db, active, vector FROM segments ORDER BY seg_index"
        ).fetchall()
        con.close()
    assert len(got[1]) > 50 and got[1] == got[2]
