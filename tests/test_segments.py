"""Segment-level embeddings (#14): windows per file, kept current by scans, searched by example.

The recordings are written here: long stretches of wind-like noise with three kinds of short
call (a whistle of two falling sweeps, a harmonic hoot with vibrato, a rattle of broadband
clicks) placed at known times and gains, so every check knows where each call is.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from audio import write_audio
from conftest import AUDIODB, rows, run_audiodb

from audiodb import Library
from audiodb.analysis.extended import embeddings
from audiodb.analysis.segments import (
    SegmentParams,
    embeddings_and_segments,
    file_levels,
    parse_segmentation,
    segment_rows,
    segment_signal,
    untrimmed_frames,
    window_bounds,
)
from audiodb.errors import UsageError
from audiodb.query.moments import merge_moments

SR = 22050
SECONDS = 24.0

# (kind, start second) in file k: whistles shift with k so files differ.
PLACEMENT = {
    0: [
        ("whistle", 2.0),
        ("hoot", 5.2),
        ("rattle", 8.1),
        ("whistle", 10.3),
        ("hoot", 13.7),
        ("whistle", 17.1),
        ("rattle", 20.2),
    ],
    1: [("hoot", 1.5), ("whistle", 4.4), ("rattle", 7.9), ("whistle", 11.6), ("hoot", 15.0), ("whistle", 19.3)],
    2: [("rattle", 1.1), ("whistle", 3.7), ("hoot", 7.4), ("whistle", 12.9), ("rattle", 16.3), ("whistle", 20.6)],
}


def _t(seconds: float) -> np.ndarray:
    return np.arange(int(seconds * SR)) / SR


def call(kind: str, rng: np.random.Generator) -> np.ndarray:
    """One call of ``kind``, peak about 1 (before gain)."""
    if kind == "whistle":  # two falling sweeps 4.2 -> 2.6 kHz, 0.3 s each, 0.1 s apart
        t = _t(0.3)
        f = 4200 - 1600 * t / 0.3
        sweep = np.sin(2 * np.pi * np.cumsum(f) / SR) * np.hanning(len(t))
        return np.concatenate([sweep, np.zeros(int(0.1 * SR)), sweep])
    if kind == "hoot":  # 420 Hz with harmonics and 6 Hz vibrato, 0.6 s
        t = _t(0.6)
        f = 420 + 15 * np.sin(2 * np.pi * 6 * t)
        ph = 2 * np.pi * np.cumsum(f) / SR
        return (np.sin(ph) + 0.5 * np.sin(2 * ph) + 0.25 * np.sin(3 * ph)) / 1.75 * np.hanning(len(t))
    if kind == "rattle":  # 15 clicks of band-passed noise, 40 ms apart
        y = np.zeros(int(0.6 * SR))
        n = int(0.008 * SR)
        for i in range(15):
            burst = np.diff(rng.standard_normal(n + 1)) * np.hanning(n)
            a = int(i * 0.04 * SR)
            y[a : a + n] += burst / 2
        return y
    raise ValueError(kind)


def background(seconds: float, rng: np.random.Generator, level: float = 0.01) -> np.ndarray:
    """Wind-like noise: low-passed noise whose loudness drifts slowly, about -40 dBFS."""
    n = int(seconds * SR)
    white = rng.standard_normal(n)
    red = np.convolve(white, np.ones(8) / 8, mode="same") + 0.3 * white
    drift = 1.0 + 0.3 * np.sin(2 * np.pi * np.arange(n) / SR / rng.uniform(3, 7))
    y = red * drift
    return y / np.sqrt(np.mean(y**2)) * level


def recording(k: int, seed: int = 0) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    rng = np.random.default_rng(100 * k + seed)
    y = background(SECONDS, rng)
    events = []
    for kind, at in PLACEMENT[k]:
        c = call(kind, rng) * rng.uniform(0.15, 0.3)
        a = int(at * SR)
        y[a : a + len(c)] += c
        events.append((kind, at, at + len(c) / SR))
    return y.astype(np.float32), events


def overlaps(a0, a1, b0, b1) -> bool:
    return a0 < b1 and a1 > b0


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    """Three recordings indexed with the ``calls`` segmentation, and a whistle clip not indexed."""
    root = tmp_path_factory.mktemp("field")
    rec = root / "recordings"
    rec.mkdir()
    events = {}
    for k in PLACEMENT:
        y, ev = recording(k)
        path = rec / f"site{k}.flac"
        write_audio(path, y, SR)
        events[str(path)] = ev
    rng = np.random.default_rng(7)
    clip = background(1.2, rng, level=0.004)
    whistle = call("whistle", rng) * 0.5
    clip[int(0.2 * SR) : int(0.2 * SR) + len(whistle)] += whistle
    clip_path = root / "query-whistle.wav"
    write_audio(clip_path, clip.astype(np.float32), SR)
    lib = Library(root / "lib.duckdb")
    report = lib.scan([rec], segments="calls", workers=2)
    assert report.added == 3
    return lib, events, str(clip_path)


def kind_at(events, path, start, end) -> set[str]:
    return {kind for kind, a, b in events[path] if overlaps(start, end, a, b)}


# --------------------------------------------------------------------------- analysis (pure)


def test_windows_presets_and_short_files():
    assert parse_segmentation("calls").label == "1.0/0.5"
    assert (parse_segmentation("song").window_ms, parse_segmentation("song").hop_ms) == (3000, 1500)
    assert (parse_segmentation("soundscape").window_ms, parse_segmentation("soundscape").hop_ms) == (60000, 60000)
    assert parse_segmentation("2/0.25").hop_ms == 250
    for bad in ("1.0", "x/y", "0.5/1.0", "soundscapes"):
        with pytest.raises(ValueError):
            parse_segmentation(bad)
    # shorter than a window: one window, the whole file
    start, end = window_bounds(int(0.4 * SR), SR, 1000, 500)
    assert start.tolist() == [0] and end.tolist() == [400]
    # 10.3 s: full windows up to 10.0, then the 0.3 s tail (>= half a hop) as a last, shorter window
    start, end = window_bounds(int(10.3 * SR), SR, 1000, 500)
    assert start[-2:].tolist() == [9000, 9500] and end[-2:].tolist() == [10000, 10300]
    # 10.2 s: the 0.2 s tail is less than half a hop: dropped
    start, end = window_bounds(int(10.2 * SR), SR, 1000, 500)
    assert end[-1] == 10000


def test_rows_of_a_stream_slice_equal_the_whole_files():
    """Fed a slice of the frames (with their global index), the windows inside it come out the same."""
    y, _ = recording(0)
    seg = SegmentParams()
    whole = segment_signal(y, [seg])[seg.id]
    frames = untrimmed_frames(y)
    levels = file_levels(frames["rms"], float(frames["mel"].max()), seg)
    a, b = 200, 700
    part = {k: (v[..., a:b]) for k, v in frames.items()}
    sliced = segment_rows(part, seg, n_samples=len(y), levels=levels, first_frame=a)
    assert len(sliced) > 5
    at = np.searchsorted(whole.seg_index, sliced.seg_index)
    np.testing.assert_array_equal(whole.start_ms[at], sliced.start_ms)
    np.testing.assert_allclose(whole.vectors[at], sliced.vectors, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(whole.active[at], sliced.active)
    assert frames.keys() >= {"mel", "rms", "chroma", "contrast_peak"}


@pytest.mark.parametrize("padding", [0.0, 2.0])
def test_one_stft_serves_the_file_vectors_and_the_segments_exactly(padding):
    """Untrimmed (padding 0: noise throughout) the scan's single transform gives the file-level
    vectors bit for bit; with silence to trim (2 s each side) the trimmed signal gets its own."""
    y, _ = recording(2)
    pad = np.zeros(int(padding * SR), np.float32)
    y = np.concatenate([pad, y[: 8 * SR], pad])
    seg = SegmentParams()
    notebook, extended, rows = embeddings_and_segments(y, [seg])
    want_notebook, want_extended = embeddings(y)
    assert np.array_equal(notebook, want_notebook) and np.array_equal(extended, want_extended)
    assert np.array_equal(rows[seg.id].vectors, segment_signal(y, [seg])[seg.id].vectors)
    assert rows[seg.id].start_ms[0] == 0 and rows[seg.id].end_ms[-1] == round(len(y) * 1000 / SR)


def test_calls_are_active_and_background_is_not():
    y, events = recording(1)
    seg = SegmentParams()
    r = segment_signal(y, [seg])[seg.id]
    assert r.vectors.shape == (len(r), 220) and r.vectors.dtype == np.float32
    for j in range(len(r)):
        s, e = r.start_ms[j] / 1000, r.end_ms[j] / 1000
        has_call = any(overlaps(s + 0.25, e - 0.25, a, b) for _, a, b in events)  # in its middle half
        near_call = any(overlaps(s, e, a, b) for _, a, b in events)
        if has_call:
            assert r.active[j], (s, e)
        if not near_call:
            assert not r.active[j], (s, e)
            assert r.snr_db[j] < 6  # the wind drifts up to ~5 dB above its floor; calls reach 7+


def test_merge_moments_joins_touching_windows_of_one_file():
    t = np.array([1, 1, 1, 1, 2, 2])
    s = np.array([0, 500, 1000, 5000, 0, 3000])
    e = s + 1000
    d = np.array([0.2, 0.1, 0.3, 0.4, 0.25, np.inf])
    m = merge_moments(t, s, e, d, 10)
    assert [(x.track_id, x.start_ms, x.end_ms, x.distance) for x in m] == [
        (1, 0, 2000, 0.1),
        (2, 0, 1000, 0.25),
        (1, 5000, 6000, 0.4),
    ]
    # with n = 1 the windows ranked after the first window of a second moment (0.25) are not
    # candidates: 1000-2000 (0.3) does not join
    assert [(x.start_ms, x.end_ms) for x in merge_moments(t, s, e, d, 1)] == [(0, 1500)]


# --------------------------------------------------------------------------- search


def test_a_clip_finds_every_instance_of_its_call_and_nothing_else(field):
    lib, events, clip = field
    whistles = [(p, a, b) for p, ev in events.items() for kind, a, b in ev if kind == "whistle"]
    found = lib.similar_moments(clip, n=len(whistles))
    assert [r["rank"] for r in found] == list(range(1, len(whistles) + 1))
    assert sorted(r["distance"] for r in found) == [r["distance"] for r in found]
    hits = set()
    for r in found:
        assert kind_at(events, r["path"], r["start_sec"], r["end_sec"]) == {"whistle"}, r
        (inst,) = [w for w in whistles if w[0] == r["path"] and overlaps(r["start_sec"], r["end_sec"], w[1], w[2])]
        hits.add(inst)
        # merged: the moment covers the call (0.7 s), a few windows wide, not one window per row
        assert r["start_sec"] <= inst[1] + 0.5 and r["end_sec"] >= inst[2] - 0.5
    assert hits == set(whistles)  # each instance once: its windows merged into one moment


def test_a_moment_of_an_indexed_file_finds_the_others_without_itself(field):
    lib, events, _ = field
    path = sorted(events)[0]
    kind, a, b = events[path][1]  # a hoot
    assert kind == "hoot"
    found = lib.similar_moments(f"{path}@{a:.2f}-{b:.2f}", n=5)
    hoots = [(p, x, y) for p, ev in events.items() for k, x, y in ev if k == "hoot" and not (p == path and x == a)]
    assert len(found) == 5
    for r in found:
        assert not (r["path"] == path and overlaps(r["start_sec"], r["end_sec"], a, b)), "own moment returned"
    top = found[: len(hoots)]
    assert all(kind_at(events, r["path"], r["start_sec"], r["end_sec"]) == {"hoot"} for r in top), top
    # --where restricts to the tracks view's rows
    other = lib.similar_moments(f"{path}@{a:.2f}-{b:.2f}", n=5, where=f"path <> '{sorted(events)[1]}'")
    assert other and all(r["path"] != sorted(events)[1] for r in other)


def test_inactive_windows_only_with_all_segments(field, tmp_path):
    lib, events, _ = field
    quiet_clip = tmp_path / "wind.wav"
    write_audio(quiet_clip, background(2.0, np.random.default_rng(11)).astype(np.float32), SR)
    active_only = lib.similar_moments(str(quiet_clip), n=3)
    everything = lib.similar_moments(str(quiet_clip), n=3, all_segments=True)
    # only active windows are searched by default: every moment holds a call
    assert all(kind_at(events, r["path"], r["start_sec"], r["end_sec"]) for r in active_only)
    # with inactive windows too, wind finds wind
    assert all(not kind_at(events, r["path"], r["start_sec"], r["end_sec"]) for r in everything), everything
    (s,) = lib.segmentations()
    assert 0 < s["active_segments"] < s["segments"]


def test_cli_raven_table_parses_back_to_the_same_moments(field, tmp_path):
    lib, events, clip = field
    common = ["--db", lib.path, "similar", clip, "--segments", "-n", "6"]
    as_json = run_audiodb(*common, "--format", "json", cwd=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    moments = json.loads(as_json.stdout)
    raven = run_audiodb(*common, "--format", "raven", cwd=tmp_path)
    assert raven.returncode == 0, raven.stderr
    table = list(csv.DictReader(io.StringIO(raven.stdout), delimiter="\t"))
    assert list(table[0]) == [
        "Selection",
        "View",
        "Channel",
        "Begin Time (s)",
        "End Time (s)",
        "Low Freq (Hz)",
        "High Freq (Hz)",
        "Begin Path",
        "File Offset (s)",
        "Distance",
    ]
    assert [(r["Begin Path"], float(r["Begin Time (s)"]), float(r["End Time (s)"])) for r in table] == [
        (m["path"], m["start_sec"], m["end_sec"]) for m in moments
    ]
    assert [int(r["Selection"]) for r in table] == list(range(1, 7))
    assert [float(r["File Offset (s)"]) for r in table] == [m["start_sec"] for m in moments]
    assert [float(r["Distance"]) for r in table] == [m["distance"] for m in moments]


def test_status_lists_the_segmentation(field, tmp_path):
    lib, _, _ = field
    out = run_audiodb("--db", lib.path, "status", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    (s,) = lib.segmentations()
    n = rows(lib.path, "select count(*), count(*) filter (active) from segments")[0]
    assert (s["segments"], s["active_segments"], s["files_to_do"]) == (n[0], n[1], 0)
    assert f"1.0/0.5 ({s['id']}): {n[0]} segments, {n[1]} active, 0 files to do" in out.stdout
    js = json.loads(run_audiodb("--db", lib.path, "status", "-f", "json", cwd=tmp_path).stdout)
    assert js["segmentations"][0]["segments"] == n[0]
    # every window of every file, in order, times in integer ms; the view's seconds agree
    per_track = rows(lib.path, "select track_id, count(*), max(end_ms), min(start_ms) from segments group by 1")
    for _, count, last_end, first in per_track:
        assert first == 0 and count == 47 and last_end == 24000
    v = rows(lib.path, "select start_sec, end_sec, mel_mean_0, onset_std, vector[1] from segment_features limit 1")[0]
    assert v[1] - v[0] == 1.0 and v[2] == v[4]


def test_segment_storage_is_under_a_kilobyte(tmp_path):
    y = np.concatenate([recording(k)[0] for k in PLACEMENT] * 3)  # 3.6 min
    d = tmp_path / "long"
    d.mkdir()
    write_audio(d / "long.flac", y, SR)
    empty = Library(tmp_path / "a.duckdb")
    empty.scan([d], workers=1)
    with_segments = Library(tmp_path / "b.duckdb")
    with_segments.scan([d], workers=1, segments="0.1/0.02")  # 10,800 rows: DuckDB grows in 256 KB blocks
    n = with_segments.segmentations()[0]["segments"]
    extra = with_segments.path.stat().st_size - empty.path.stat().st_size
    assert n > 10_000 and extra / n < 1024, (n, extra)


def test_bad_input_is_a_clear_error(field, tmp_path):
    lib, events, _ = field
    with pytest.raises(UsageError, match="WINDOW/HOP"):
        lib.scan([tmp_path], segments="1s")
    with pytest.raises(UsageError, match="No segmentation"):
        lib.similar_moments(sorted(events)[0] + "@1-2", segmentation="3.0/1.5")
    with pytest.raises(Exception, match="not an indexed file"):
        lib.similar_moments(str(tmp_path / "nope.wav") + "@1-2")


# --------------------------------------------------------------------------- incremental


def seg_rows(db) -> dict[int, list[tuple]]:
    out: dict[int, list[tuple]] = {}
    for r in rows(
        db, "select track_id, seg_index, start_ms, end_ms, rms_db, active, vector from segments order by 1, 2"
    ):
        out.setdefault(r[0], []).append(r[1:])
    return out


def test_edit_move_remove_and_late_registration(tmp_path):
    rec = tmp_path / "rec"
    (rec / "a").mkdir(parents=True)
    for k in PLACEMENT:
        write_audio(rec / "a" / f"site{k}.wav", recording(k)[0], SR)
    lib = Library(tmp_path / "lib.duckdb")
    lib.scan([rec], workers=2)  # before any segmentation
    vectors_at = rows(lib.path, "select track_id, computed_at from embeddings order by 1")

    # registered later: the indexed files get their segments without re-analysing their vectors
    report = lib.scan([rec], workers=2, segments="calls")
    assert (report.added, report.updated, report.segments_only) == (0, 0, 3)
    assert rows(lib.path, "select track_id, computed_at from embeddings order by 1") == vectors_at
    assert lib.segmentations()[0]["files_to_do"] == 0
    before = seg_rows(lib.path)
    assert len(before) == 3
    assert lib.scan([rec], workers=2).segments_only == 0  # nothing left to do

    # edit one recording: only its segments change
    ids = dict((p, t) for t, p in rows(lib.path, "select track_id, path from track_files"))
    edited = str(rec / "a" / "site1.wav")
    y, _ = recording(1, seed=5)
    write_audio(edited, y[: int(15 * SR)], SR)
    report = lib.scan([rec], workers=2)
    assert report.updated == 1
    after = seg_rows(lib.path)
    for t, r in before.items():
        if t == ids[edited]:
            assert r != after[t] and len(after[t]) == 29  # 15 s
        else:
            assert after[t] == r

    # move one: kept, not recomputed
    moved_from = rec / "a" / "site2.wav"
    (rec / "b").mkdir()
    shutil.move(moved_from, rec / "b" / "site2.wav")
    report = lib.scan([rec], workers=2)
    assert (report.moved, report.added, report.updated, report.segments_only) == (1, 0, 0, 0)
    assert seg_rows(lib.path) == after

    # remove one: its segments go
    os.remove(rec / "a" / "site0.wav")
    assert lib.scan([rec], workers=2).removed == 1
    left = seg_rows(lib.path)
    assert ids[str(rec / "a" / "site0.wav")] not in left and len(left) == 2
    (s,) = lib.segmentations()
    assert s["files_to_do"] == 0 and s["segments"] == sum(len(v) for v in left.values())


# --------------------------------------------------------------------------- real processes

MARK = "AUDIODB_SEGMENT_TEST_MARKER"


def _marked(token: str) -> list[int]:
    needle = f"{MARK}={token}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if needle in f.read().split(b"\0"):
                        found.append(int(entry))
            except OSError:
                pass
    return found


@pytest.fixture
def token():
    """A token in the environment of every process a test starts; they are killed, by pid, at the end."""
    import uuid

    value = uuid.uuid4().hex
    yield value
    for pid in _marked(value):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _segments_committed(db, *, wait: bool = False, then=None) -> int | None:
    """Segments committed so far, read under audiodb's shared sidecar lock (None: a writer has it,
    and ``wait`` is false). ``then(n)`` runs while the lock is still held."""
    import duckdb

    if not os.path.exists(db):
        return 0
    fd = os.open(str(db) + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            return None
        try:
            con = duckdb.connect(str(db), read_only=True)
        except duckdb.Error:
            return None
        try:
            n = con.execute("SELECT count(*) FROM segments").fetchone()[0]
        except duckdb.Error:
            n = 0
        finally:
            con.close()
        if then is not None:
            then(n)
        return n
    finally:
        os.close(fd)


@pytest.mark.slow
@pytest.mark.process
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc and SIGKILL (Linux)")
@pytest.mark.parametrize("pass_", ["with_new_files", "segments_only"])
def test_kill_9_during_a_segment_scan_then_the_next_scan_finishes(pass_, tmp_path, token):
    rec = tmp_path / "rec"
    rec.mkdir()
    n_files = 16
    for i in range(n_files):
        write_audio(rec / f"r{i}.flac", recording(i % 3, seed=i)[0], SR)
    db = tmp_path / "lib.duckdb"
    env = dict(os.environ, AUDIODB_BATCH_SIZE="1", **{MARK: token})
    env.pop("AUDIODB_DB", None)
    if pass_ == "segments_only":  # indexed first; the killed scan only adds segments
        assert run_audiodb("--db", db, "scan", rec, "-w", "2", cwd=tmp_path, env=env).returncode == 0
    with open(tmp_path / "out", "wb") as out, open(tmp_path / "err", "wb") as err:
        proc = subprocess.Popen(
            AUDIODB + ["--db", str(db), "scan", str(rec), "-w", "2", "--segments", "calls"],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=err,
        )
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        # Under audiodb's shared sidecar lock the scan cannot commit: seeing its first segments and
        # killing it there lands mid-scan however fast the rest would go.
        if _segments_committed(db, wait=True, then=lambda n: n and os.kill(proc.pid, signal.SIGKILL)):
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the scan ended before the kill: nothing was tested"
    for pid in _marked(token):  # orphaned workers
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    # what was committed is whole: a file has all its 47 windows or none
    partial = rows(db, "select track_id, count(*) from segments group by 1 having count(*) <> 47")
    assert partial == []
    done_before = rows(db, "select count(DISTINCT track_id) from segments")[0][0]
    assert 1 <= done_before < n_files
    again = run_audiodb("--db", db, "scan", rec, "-w", "2", "-f", "json", cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr
    n = n_files * 47
    assert rows(db, "select count(*), count(DISTINCT (track_id, seg_index)) from segments") == [(n, n)]
    assert rows(db, "select count(*) from track_files") == [(n_files,)]
    status = json.loads(run_audiodb("--db", db, "status", "-f", "json", cwd=tmp_path, env=env).stdout)
    assert status["segmentations"][0]["files_to_do"] == 0


@pytest.mark.slow
@pytest.mark.process
def test_watch_keeps_a_registered_segmentation_current(tmp_path, token):
    root = tmp_path / "rec"
    root.mkdir()
    write_audio(root / "first.wav", recording(0)[0][: 6 * SR], SR)
    db = tmp_path / "w.duckdb"
    env = dict(os.environ, **{MARK: token})
    env.pop("AUDIODB_DB", None)
    assert run_audiodb("--db", db, "scan", root, "--segments", "calls", cwd=tmp_path, env=env).returncode == 0
    err = open(tmp_path / "watch.err", "w+")
    proc = subprocess.Popen(
        AUDIODB + ["--db", str(db), "watch", str(root), "--settle", "0.6", "-w", "1", "-f", "jsonl"],
        stdout=subprocess.DEVNULL,
        stderr=err,
        cwd=tmp_path,
        env=env,
    )
    try:

        def seen(text):
            err.flush()
            return text in open(err.name).read()

        deadline = time.monotonic() + 120
        while not seen("Caught up") and time.monotonic() < deadline:
            time.sleep(0.3)
        assert seen("Caught up"), open(err.name).read()
        write_audio(tmp_path / "second.wav", recording(1)[0][: 8 * SR], SR)
        os.replace(tmp_path / "second.wav", root / "second.wav")

        def windows():
            out = run_audiodb(
                "--db",
                db,
                "sql",
                "select t.file_name, count(*) from segments s join track_files t using (track_id) group by 1",
                "-f",
                "json",
                cwd=tmp_path,
                env=env,
            )
            return {r["file_name"]: r["count_star()"] for r in json.loads(out.stdout)} if out.returncode == 0 else {}

        deadline = time.monotonic() + 120
        while windows().get("second.wav") is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert windows() == {"first.wav": 11, "second.wav": 15}
        os.remove(root / "first.wav")
        deadline = time.monotonic() + 120
        while "first.wav" in windows() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert windows() == {"second.wav": 15}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
