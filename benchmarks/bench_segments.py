"""Segments at scale (issue #14 item 7): scan cost, storage, a 2-hour file's memory, search over a million.

    python benchmarks/bench_segments.py [--audio DIR] [--only scan,storage,long,search]
                                        [--n-segments 1000000] [--minutes 120] [--keep-long FILE]

(a) scan     the same real recordings (the Wesnoth music: 1-5 minute tracks) scanned into two
             fresh libraries, one without segments and one with ``--segments calls``, each in a
             fresh process on one worker; the time ratio (goal <= 1.3x).
(b) storage  the library file's growth per stored segment: the ``calls`` library minus the
             plain one, over its segments (goal <= ~1 KB), after a CHECKPOINT.
(c) long     peak memory (max RSS, the worker's and the scanning process's) of a scan with
             ``--segments calls`` of one 2-hour 44.1 kHz stereo FLAC built as bench_long.py
             builds it (goal < 1 GB).
(d) search   1,000,000 segments in a real library file (the tracks and segments of a real
             scan, then copies of its tracks with synthetic vectors: the real windows' vectors
             plus noise, inserted from Arrow); ``similar_moments`` of a ``PATH@START-END``
             moment end to end in a fresh process (goal: a few seconds), and warm (second
             query in the process); one query window's search time (the space's distances
             over the matrix) against a bare numpy float32 matrix-vector product over the
             same matrix (goal <= 3x).

BLAS/OpenMP run on one thread everywhere (benchmarks/_common.py).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import _common  # noqa: F401  (before numpy: one BLAS thread)

MUSIC = "/work/bench-audio/usr/share/games/wesnoth/1.16/data/core/music"


def _rss() -> dict:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"self_mb": me.ru_maxrss / 1024, "worker_mb": kids.ru_maxrss / 1024}


def _child(argv: list[str]) -> None:
    """One timed run in a fresh process; prints a JSON line."""
    kind = argv[0]
    if kind == "scan":
        import audiodb

        folder, db, segments = argv[1], argv[2], argv[3]
        t0 = time.perf_counter()
        report = audiodb.scan([folder], db=db, workers=1, segments=None if segments == "-" else segments)
        out = {"seconds": time.perf_counter() - t0, "added": report.added, "failed": report.failed}
    elif kind == "similar":
        t0 = time.perf_counter()
        import audiodb

        lib = audiodb.Library(argv[1])
        t1 = time.perf_counter()
        rows = lib.similar_moments(argv[2], n=10)
        t2 = time.perf_counter()
        rows2 = lib.similar_moments(argv[2], n=10)
        t3 = time.perf_counter()
        assert [r["start_sec"] for r in rows] == [r["start_sec"] for r in rows2]
        out = {"import": t1 - t0, "first": t2 - t1, "second": t3 - t2, "rows": len(rows), "top": rows[0]}
    else:
        raise SystemExit(f"unknown child {kind}")
    out.update(_rss())
    print(json.dumps(out))


def child(*args: str) -> dict:
    res = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(res.stderr)
    return json.loads(res.stdout.strip().splitlines()[-1])


def _dir_size(db: str) -> int:
    return sum(os.path.getsize(p) for p in (db, db + ".wal") if os.path.exists(p))


def _checkpoint(db: str) -> None:
    import duckdb

    con = duckdb.connect(db)
    con.execute("CHECKPOINT")
    con.close()


def segment_bytes(db: str, work: str) -> tuple[int, float]:
    """``(segments, bytes per segment)``: the ``segments`` table of ``db`` (its DDL, primary key
    included) copied alone into a fresh file, checkpointed, less the same file empty."""
    import duckdb

    ddl = duckdb.connect(db, read_only=True)
    sql = ddl.execute("SELECT sql FROM duckdb_tables() WHERE table_name = 'segments'").fetchone()[0]
    ddl.close()
    sizes = []
    for fill in (False, True):
        path = os.path.join(work, f"segments-only-{fill}.duckdb")
        con = duckdb.connect(path)
        con.execute("SET enable_progress_bar = false")
        con.execute(sql)
        if fill:
            con.execute(f"ATTACH '{db}' AS src (READ_ONLY)")
            con.execute("INSERT INTO segments SELECT * FROM src.segments")
            n = con.execute("SELECT count(*) FROM segments").fetchone()[0]
            con.execute("DETACH src")
        con.execute("CHECKPOINT")
        con.close()
        sizes.append(_dir_size(path))
        os.remove(path)
    return n, (sizes[1] - sizes[0]) / max(n, 1)


def scan_and_storage(audio: str, work: str, limit: int) -> None:
    files = _common.audio_files(audio)[:limit]
    folder = os.path.join(work, "music")
    os.makedirs(folder)
    for f in files:
        os.symlink(f, os.path.join(folder, os.path.basename(f)))
    _common.warm_page_cache(files)
    import soundfile as sf

    minutes = sum(sf.info(f).duration for f in files) / 60
    print(f"(a) scan: {len(files)} files, {minutes:.1f} min of {audio}; {_common.machine()}", flush=True)
    runs = {}
    for label, seg in (("plain", "-"), ("calls", "calls"), ("plain2", "-"), ("calls2", "calls")):
        db = os.path.join(work, f"{label}.duckdb")
        runs[label] = child("scan", folder, db, seg)
        _checkpoint(db)
        runs[label]["bytes"] = _dir_size(db)
        print(f"    {label:7s} {runs[label]['seconds']:7.1f} s", flush=True)
    plain = min(runs["plain"]["seconds"], runs["plain2"]["seconds"])
    calls = min(runs["calls"]["seconds"], runs["calls2"]["seconds"])
    print(
        f"    scan with calls / without: {calls:.1f} / {plain:.1f} s = {calls / plain:.2f}x (goal <= 1.3x; best of 2)"
    )
    import duckdb

    con = duckdb.connect(os.path.join(work, "calls.duckdb"), read_only=True)
    n, active = con.execute("SELECT count(*), count(*) FILTER (WHERE active) FROM segments").fetchone()
    con.close()
    grow = runs["calls"]["bytes"] - runs["plain"]["bytes"]
    _, per = segment_bytes(os.path.join(work, "calls.duckdb"), work)
    print(
        f"(b) storage: {n} segments ({active} active); library {runs['plain']['bytes'] / 1e6:.1f} MB -> "
        f"{runs['calls']['bytes'] / 1e6:.1f} MB: {grow / n:.0f} bytes per segment with DuckDB's block "
        f"granularity; the segments table alone: {per:.0f} bytes per segment (goal <= ~1 KB; the vector "
        f"alone is 880)"
    )


def long_file(audio: str, work: str, minutes: float, keep: str | None) -> None:
    import bench_long

    folder = os.path.join(work, "long")
    os.makedirs(folder)
    path = os.path.join(folder, "long.flac")
    if keep:
        if not os.path.exists(keep):
            print(f"(c) building {minutes:g} min from {audio} ...", flush=True)
            bench_long.build(audio, minutes, "flac", keep)
        os.symlink(os.path.abspath(keep), path)
    else:
        print(f"(c) building {minutes:g} min from {audio} ...", flush=True)
        bench_long.build(audio, minutes, "flac", path)
    r = child("scan", folder, os.path.join(work, "long.duckdb"), "calls")
    import duckdb

    con = duckdb.connect(os.path.join(work, "long.duckdb"), read_only=True)
    n = con.execute("SELECT count(*) FROM segments").fetchone()[0]
    con.close()
    print(
        f"(c) long: {minutes:g} min FLAC scanned with --segments calls in {r['seconds']:.0f} s, {n} segments; "
        f"peak RSS worker {r['worker_mb']:.0f} MB, scanning process {r['self_mb']:.0f} MB (goal < 1 GB)"
    )
    n, per = segment_bytes(os.path.join(work, "long.duckdb"), work)
    print(f"(b) storage of its {n} segments, the segments table alone: {per:.0f} bytes per segment")


def build_million(audio: str, work: str, n_segments: int) -> tuple[str, str]:
    """A real library (a real scan of a few tracks with ``calls``), grown to ``n_segments``."""
    import duckdb
    import numpy as np
    import pyarrow as pa

    folder = os.path.join(work, "seed")
    os.makedirs(folder)
    for f in _common.audio_files(audio)[:3]:
        os.symlink(f, os.path.join(folder, os.path.basename(f)))
    db = os.path.join(work, "million.duckdb")
    child("scan", folder, db, "calls")
    con = duckdb.connect(db)
    seg_id, dims = con.execute("SELECT id, dims FROM segmentations").fetchone()
    real = con.execute("SELECT track_id, max(seg_index) + 1, count(*) FROM segments GROUP BY ALL").fetchall()
    tab = con.sql("SELECT vector, active FROM segments").to_arrow_table()
    base = np.asarray(tab.column("vector").combine_chunks().flatten(), dtype=np.float32).reshape(-1, dims)
    have = sum(r[2] for r in real)
    per_track = 1000  # windows of a synthetic 8.3-minute file
    n_tracks = (n_segments - have + per_track - 1) // per_track
    top = con.execute("SELECT max(track_id) FROM track_files").fetchone()[0]
    t0 = time.perf_counter()
    con.execute("BEGIN")
    con.execute(
        f"""INSERT INTO track_files SELECT * EXCLUDE (k) REPLACE ({top} + k AS track_id, path || '.copy' || k AS path,
                   file_name || '.copy' || k AS file_name)
            FROM (SELECT * FROM track_files WHERE track_id = {real[0][0]}) t,
                 (SELECT range AS k FROM range(1, {n_tracks + 1})) r"""
    )
    rng = np.random.default_rng(0)
    std = base.std(axis=0)
    batch = 200  # tracks per insert
    for a in range(0, n_tracks, batch):
        tracks = np.arange(a, min(a + batch, n_tracks)) + top + 1
        m = len(tracks) * per_track
        pick = rng.integers(0, len(base), m)
        vec = base[pick] + rng.standard_normal((m, dims), dtype=np.float32) * (0.3 * std)
        idx = np.tile(np.arange(per_track, dtype=np.int32), len(tracks))
        t = pa.table(
            {
                "track_id": np.repeat(tracks, per_track).astype(np.int64),
                "segmentation": pa.array([seg_id] * m, pa.string()),
                "seg_index": idx,
                "start_ms": idx * 500,
                "end_ms": idx * 500 + 1000,
                "rms_db": np.full(m, -30, np.float32),
                "snr_db": np.full(m, 10, np.float32),
                "active_fraction": np.full(m, 0.5, np.float32),
                "active": np.ones(m, bool),  # every synthetic window searched
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vec.reshape(-1)), dims),
            }
        )
        con.register("batch", t)
        con.execute(f"INSERT INTO segments SELECT * REPLACE (vector::FLOAT[{dims}] AS vector) FROM batch")
        con.unregister("batch")
    con.execute("COMMIT")
    con.execute("CHECKPOINT")
    total, act = con.execute("SELECT count(*), count(*) FILTER (WHERE active) FROM segments").fetchone()
    path = con.execute("SELECT path FROM track_files WHERE track_id = ? ", [real[0][0]]).fetchone()[0]
    con.close()
    print(f"(b) storage at {total} segments, the segments table alone: {segment_bytes(db, work)[1]:.0f} bytes each")
    print(
        f"(d) library: {total} segments ({act} active) over {n_tracks + len(real)} tracks, built in "
        f"{time.perf_counter() - t0:.0f} s, {_dir_size(db) / 1e9:.2f} GB",
        flush=True,
    )
    return db, path


def search(audio: str, work: str, n_segments: int) -> None:
    import numpy as np

    db, path = build_million(audio, work, n_segments)
    if os.environ.get("BENCH_KEEP_MILLION"):
        shutil.copy(db, os.environ["BENCH_KEEP_MILLION"])
    from audiodb.paths import from_stored

    query = f"{from_stored(path)}@10.0-11.0"
    cold = child("similar", db, query)  # the first search after the segments changed: builds the cache
    warm = child("similar", db, query)  # a fresh process, the cache current
    print(
        f"(d) similar --segments {query.rsplit('/', 1)[-1]} over the library, each in a fresh process: first search "
        f"(builds the cache) {cold['import'] + cold['first']:.2f} s; with the cache "
        f"{warm['import'] + warm['first']:.2f} s (import {warm['import']:.2f} s + query {warm['first']:.2f} s), "
        f"again in that process {warm['second']:.2f} s;"
        f" peak RSS {warm['self_mb']:.0f} MB (goal: a few seconds)"
    )
    # One query window's search against a numpy matrix-vector product over the same matrix.
    import audiodb
    from audiodb.query.space import Space
    from audiodb.store import segment_cache
    from audiodb.store import segments as segment_store

    lib = audiodb.Library(db)
    with lib.file.connect() as con:
        seg = segment_store.registered(con)[0]
        t0 = time.perf_counter()
        stored = segment_store.load_segments(con, seg.id, active_only=True)
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        segment_cache.read_segments(con, seg.id, seg.dims, active_only=True)
        read_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    space = Space(np.arange(len(stored.track_ids)), stored.vectors, "extended", seg.feature_names())
    space_s = time.perf_counter() - t0
    X = stored.vectors
    q = X[12345].copy()

    def best(f, k=7):
        ts = []
        for _ in range(k):
            t = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t)
        return min(ts)

    ours = best(lambda: space.distances(q))
    bare = best(lambda: X @ q)
    print(
        f"(d) {len(X)} x {X.shape[1]} float32 from DuckDB: load_segments (ORDER BY in DuckDB) {load_s:.2f} s, "
        f"segment_cache.read_segments (one unordered scan, ordered in numpy) {read_s:.2f} s; "
        f"z-score statistics {space_s:.2f} s; one query "
        f"window {ours * 1000:.1f} ms vs numpy X @ q {bare * 1000:.1f} ms = {ours / bare:.2f}x (goal <= 3x)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--audio", default=MUSIC)
    ap.add_argument("--only", default="scan,storage,long,search")
    ap.add_argument("--files", type=int, default=12, help="recordings for (a) and (b)")
    ap.add_argument("--n-segments", type=int, default=1_000_000)
    ap.add_argument("--minutes", type=float, default=120.0)
    ap.add_argument("--keep-long", help="build the long file here (reused if it exists)")
    ap.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child)
        return
    only = set(args.only.split(","))
    work = tempfile.mkdtemp(prefix="bench-segments-")
    try:
        if only & {"scan", "storage"}:
            scan_and_storage(args.audio, work, args.files)
        if "long" in only:
            long_file(args.audio, work, args.minutes, args.keep_long)
        if "search" in only:
            search(args.audio, work, args.n_segments)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
