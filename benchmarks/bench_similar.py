"""How fast `audiodb similar` answers: end to end on a small library, and per query at 1M tracks.

    python benchmarks/bench_similar.py [--tracks N] [--big N] [--repeat K] [--skip-big] [--db-dir DIR]

Part 1 (start-up): a library of N synthetic tracks (default 1000; random
vectors, no audio) is written once. Then, K times each, interleaved:
  (a) python -c "import duckdb, numpy"        the floor the issue measures against
  (b) python -c "import audiodb.cli"          what any audiodb command pays to start
  (c) audiodb similar <indexed track> -n 10   end to end, as `python -m audiodb.cli`
Wall time, best and median. Goal: (c) a small multiple of (a).

Part 2 (scale): a library of --big synthetic tracks (default 1,000,000) is
written once. In this process: reading the vectors from DuckDB (Arrow),
building the metric's space (z-score statistics and row norms), and one query
(`Space.distances`, `Space.nearest` with k=10) against a bare numpy float32
matrix-vector product over the same matrix: (n, 180) for the notebook-only
metrics, (n, 222) for `extended`, which also reads the second feature set and
joins it by track id. Goal: a query within a small multiple of the
matrix-vector product. Then `audiodb similar` end to end (default metric).

BLAS/OpenMP pools are pinned to one thread (by _common, before numpy is
imported), so the matrix-vector product and the query run on one core each.
"""

from _common import machine, table  # noqa: I001  (pins BLAS threads before numpy)

import argparse  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from audiodb import Library  # noqa: E402
from audiodb.analysis.params import EXTENDED  # noqa: E402
from audiodb.analysis.params import NOTEBOOK  # noqa: E402
from audiodb.query.space import DEFAULT_METRIC, EXTENDED_METRICS, METRICS, space_for  # noqa: E402
from audiodb.store.vectors import load_tracks  # noqa: E402


def synthetic_library(path: str, n: int) -> None:
    """A library of ``n`` tracks with random vectors (normal, per-feature scale and offset)."""
    if os.path.exists(path):
        os.remove(path)
    lib = Library(path)
    with lib.connect(read_only=False) as con:
        for fs in (NOTEBOOK, EXTENDED):
            con.execute(
                "INSERT INTO feature_sets VALUES (?, ?, ?, ?, ?, current_localtimestamp()) ON CONFLICT DO NOTHING",
                [fs.id, fs.name, fs.dims, fs.as_json(), list(fs.feature_names())],
            )
        con.execute(f"""
            INSERT INTO track_files (track_id, path, file_name, folder, size, mtime_ns, content_hash,
                                     duration_sec, sample_rate, native_sample_rate, channels, codec, container,
                                     indexed_at)
            SELECT i, '/music/f' || (i // 100) || '/t' || i || '.mp3', 't' || i || '.mp3', '/music/f' || (i // 100),
                   4000000, 0, md5(i::VARCHAR), 60 + (i % 240), 22050, 44100, 2, 'MPEG_LAYER_III', 'MP3',
                   current_localtimestamp()
            FROM range(1, {n + 1}) r(i)""")
        rng = np.random.default_rng(0)
        import pyarrow as pa

        for fs, table_name in ((NOTEBOOK, "embeddings"), (EXTENDED, "extended_embeddings")):
            scale = rng.uniform(0.5, 30, fs.dims).astype(np.float32)
            offset = rng.uniform(-40, 40, fs.dims).astype(np.float32)
            for a in range(0, n, 100_000):
                b = min(n, a + 100_000)
                x = rng.standard_normal((b - a, fs.dims), dtype=np.float32) * scale + offset
                batch = pa.table(
                    {  # noqa: F841  (read by DuckDB by name)
                        "track_id": pa.array(np.arange(a + 1, b + 1, dtype=np.int64)),
                        "vector": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), fs.dims),
                    }
                )
                con.execute(
                    f"INSERT INTO {table_name} SELECT track_id, ?, vector::FLOAT[{fs.dims}], "
                    "current_localtimestamp() FROM batch",
                    [fs.id],
                )


def timed_runs(commands: dict[str, list[str]], repeat: int, cwd: str) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {k: [] for k in commands}
    for _ in range(repeat):
        for name, cmd in commands.items():
            t = time.perf_counter()
            out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
            times[name].append(time.perf_counter() - t)
            if out.returncode:
                raise SystemExit(f"{name} failed: {out.stderr}")
    return times


def best_of(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tracks", type=int, default=1000)
    ap.add_argument("--big", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--skip-big", action="store_true")
    ap.add_argument("--db-dir", default=None, help="where the synthetic libraries go (default: a temp folder)")
    args = ap.parse_args()
    print(machine())
    folder = args.db_dir or tempfile.mkdtemp(prefix="bench-similar-")
    os.makedirs(folder, exist_ok=True)
    py = sys.executable

    small = os.path.join(folder, f"small-{args.tracks}.duckdb")
    synthetic_library(small, args.tracks)
    cmds = {
        "python -c 'import duckdb, numpy'": [py, "-c", "import duckdb, numpy"],
        "python -c 'import audiodb.cli'": [py, "-c", "import audiodb.cli"],
        "audiodb similar (indexed track)": [
            py,
            "-m",
            "audiodb.cli",
            "--db",
            small,
            "similar",
            "/music/f0/t1.mp3",
            "-n",
            "10",
        ],
    }
    timed_runs(cmds, 1, folder)  # warm the page cache
    times = timed_runs(cmds, args.repeat, folder)
    floor = min(times["python -c 'import duckdb, numpy'"])
    rows = [[k, f"{min(v):.3f}", f"{statistics.median(v):.3f}", f"{min(v) / floor:.1f}x"] for k, v in times.items()]
    print(f"\nStart-up, library of {args.tracks} tracks, {args.repeat} runs each (seconds):")
    print(table(["command", "best", "median", "best / floor"], rows))

    if args.skip_big:
        return
    big = os.path.join(folder, f"big-{args.big}.duckdb")
    t = time.perf_counter()
    synthetic_library(big, args.big)
    print(f"\nWrote a library of {args.big:,} synthetic tracks in {time.perf_counter() - t:.1f} s ({big})")
    lib = Library(big)
    rep = max(3, args.repeat)
    rows = []
    loaded = {}
    for extended in (False, True):
        with lib.connect() as con:
            t = time.perf_counter()
            tracks = load_tracks(con, lib.params, lib.extended if extended else None)
            load = time.perf_counter() - t
        x = tracks.vectors
        q32 = x[12345].copy()
        matvec = best_of(lambda: x @ q32, rep)
        loaded[extended] = (tracks, matvec)
        rows += [
            [f"read vectors from DuckDB (Arrow), (n, {x.shape[1]})", f"{load:.3f}", ""],
            [f"numpy X @ q, float32 (n, {x.shape[1]})", f"{matvec:.4f}", "1.0x"],
        ]
    for metric in METRICS:
        tracks, matvec = loaded[metric in EXTENDED_METRICS]
        q = tracks.vectors[12345].copy()
        t = time.perf_counter()
        space = space_for(tracks, metric)
        build = time.perf_counter() - t
        everything = np.ones(len(space), dtype=bool)
        dist = best_of(lambda s=space: s.distances(q), rep)
        near = best_of(lambda s=space, m=everything: s.nearest(q, 10, m), rep)
        rows += [
            [f"{metric}: build space (stats, row norms)", f"{build:.3f}", f"{build / matvec:.1f}x"],
            [f"{metric}: distances to all", f"{dist:.4f}", f"{dist / matvec:.1f}x"],
            [f"{metric}: 10 nearest (with mask)", f"{near:.4f}", f"{near / matvec:.1f}x"],
        ]
    print(
        f"\nOne query at {len(x):,} tracks, best of {rep} (seconds; ratio to the matrix-vector product "
        "of the same width):"
    )
    print(table(["step", "seconds", "ratio"], rows))
    tracks = space = x = loaded = None  # free two gigabytes before the subprocess

    cmd = {"audiodb similar": [py, "-m", "audiodb.cli", "--db", big, "similar", "/music/f0/t1.mp3", "-n", "10"]}
    e2e = timed_runs(cmd, 3, folder)["audiodb similar"]
    print(
        f"\naudiodb similar ({DEFAULT_METRIC}) end to end at {args.big:,} tracks: best {min(e2e):.2f} s, "
        f"median {statistics.median(e2e):.2f} s"
    )


if __name__ == "__main__":
    main()
