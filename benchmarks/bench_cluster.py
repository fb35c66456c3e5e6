"""Clustering: how long it takes at scale, and which space HDBSCAN should use.

    python benchmarks/bench_cluster.py scale [--n 100000] [--k 20]
    python benchmarks/bench_cluster.py spaces LIB.duckdb [LIB2.duckdb ...] [--seeds 10]
    python benchmarks/bench_cluster.py runs LIB.duckdb [--baseline OTHER_VENV/bin/python] [--runs 3]
    python benchmarks/bench_cluster.py stages LIB.duckdb

``scale`` writes a library of N synthetic tracks (180-number vectors drawn from
30 Gaussian blobs, each column on its own scale) into a temporary DuckDB file,
then times what ``audiodb cluster`` does, phase by phase: read the vectors
(read-only), compute with the library closed, write the run in one
transaction. It runs k-means (fixed k, and ``--k auto``) and HDBSCAN in each
space. HDBSCAN in the 180-dimensional ``scaled`` space is timed on a smaller
sample (``--scaled-hdbscan-n``): its cost grows much faster than n there.
BLAS/OpenMP use every core (the point is wall time on this machine).

``spaces`` clusters each library with HDBSCAN in every space and reports the
number of clusters, the fraction labelled noise, and, when the tracks sit in
more than one folder, the adjusted Rand index and purity against the folder
names (the demo library: one folder per kind of sound). That is the
measurement behind the default space (README, "Clustering").

``runs`` times ``audiodb cluster`` (both methods, the defaults) as a user
meets it: a new process each time, the first with an empty numba cache (a
fresh ``NUMBA_CACHE_DIR``: nothing compiled yet, as on a fresh install), then
the second and later runs using what the first kept. Wall and CPU (user +
system, from the child's rusage) per run. With ``--baseline`` (the python of
another venv, e.g. one with main installed) the two are interleaved run by run,
each on its own copy of the library and its own cache folder.

``stages`` breaks one run down in one process (after a first run has filled
the cache): imports, reading, then each stage the command says on a terminal,
wall and CPU.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import warnings

import numpy as np


def _machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def synthetic_library(path: str, n: int, *, centers: int = 30, seed: int = 0) -> np.ndarray:
    """Write ``n`` tracks with synthetic vectors into a new library; returns the blob labels."""
    import pyarrow as pa

    from audiodb.analysis.params import NOTEBOOK
    from audiodb.store import connection as db

    rng = np.random.default_rng(seed)
    means = rng.normal(scale=10.0, size=(centers, 180))
    labels = rng.integers(0, centers, size=n)
    X = means[labels] + rng.normal(scale=4.0, size=(n, 180))
    X = (X * rng.uniform(0.01, 1000.0, size=180)).astype(np.float32)  # features on their own scales
    ids = np.arange(1, n + 1)
    paths = [f"/synthetic/{i:06d}.wav" for i in ids]
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(X.ravel()), 180)
    table = pa.table({"track_id": ids, "path": paths, "vector": vectors, "duration_sec": rng.uniform(60, 400, size=n)})
    with db.connect(path) as con:
        con.execute("BEGIN TRANSACTION")
        con.execute(
            "INSERT INTO feature_sets VALUES (?, ?, ?, ?, ?, now())",
            [NOTEBOOK.id, NOTEBOOK.name, NOTEBOOK.dims, NOTEBOOK.as_json(), list(NOTEBOOK.feature_names())],
        )
        con.register("synthetic", table)
        con.execute("""INSERT INTO track_files (track_id, path, file_name, folder, size, mtime_ns, content_hash,
                           duration_sec, sample_rate, indexed_at)
                       SELECT track_id, path, split_part(path, '/', 3), '/synthetic', 0, 0, md5(path),
                              duration_sec, 22050, now() FROM synthetic""")
        con.execute(
            "INSERT INTO embeddings SELECT track_id, ?, vector::FLOAT[180], now() FROM synthetic", [NOTEBOOK.id]
        )
        con.unregister("synthetic")
        con.execute("COMMIT")
    return labels


def _timed(fn, *args, **kwargs):
    started = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - started


def scale(args) -> None:
    from sklearn.metrics import adjusted_rand_score

    from audiodb.query import cluster as C
    from audiodb.store import connection as db
    from audiodb.store.vectors import load_vectors

    warnings.simplefilter("ignore")
    print(f"# Clustering {args.n:,} synthetic tracks ({_machine()})\n")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.duckdb")
        truth, seconds = _timed(synthetic_library, path, args.n)
        print(f"library written in {seconds:.1f} s ({os.path.getsize(path) / 1e6:.0f} MB)\n")
        with db.connect(path, read_only=True) as con:
            (track_ids, X, _), read_s = _timed(load_vectors, con)
        # Warm up numba (umap, pynndescent, hdbscan) on a small sample, so the table shows steady-state
        # times; the one-off compile is reported on its own.
        _, warm = _timed(C.cluster_vectors, X[:300], method="hdbscan", space="umap")
        print(
            f"read {len(X):,} vectors (read-only connection): {read_s:.2f} s; "
            f"first-use compile of umap/hdbscan: {warm:.1f} s\n"
        )
        print("| method | space | options | compute (s) | write (s) | clusters | noise | ARI vs blobs |")
        print("|---|---|---|---:|---:|---:|---:|---:|")
        cases = [
            ("kmeans", "scaled", {"k": args.k}),
            ("kmeans", "scaled", {"k": "auto"}),
            ("kmeans", "pca", {"k": args.k}),
            ("kmeans", "umap", {"k": args.k}),
            ("hdbscan", "pca", {}),
            ("hdbscan", "umap", {}),
        ]
        for method, space, options in cases:
            run, compute = _timed(C.cluster_vectors, X, method=method, space=space, **options)
            run.track_ids = track_ids
            with db.connect(path) as con:
                _, write = _timed(C.store, con, run)
            _row(method, space, options, compute, write, run, adjusted_rand_score(truth, run.labels))
        m = min(args.scaled_hdbscan_n, len(X))
        pick = np.random.default_rng(0).choice(len(X), m, replace=False)
        run, compute = _timed(C.cluster_vectors, X[pick], method="hdbscan", space="scaled")
        _row(
            "hdbscan",
            "scaled",
            {"n": f"{m:,} of {len(X):,}"},
            compute,
            None,
            run,
            adjusted_rand_score(truth[pick], run.labels),
        )


def _row(method, space, options, compute, write, run, ari) -> None:
    opts = ", ".join(f"{k}={v}" for k, v in options.items()) or "defaults"
    if method == "kmeans" and options.get("k") == "auto":
        opts += f" (chose {run.parameters['k']})"
    w = "" if write is None else f"{write:.2f}"
    print(
        f"| {method} | {space} ({run.parameters['dims']} dims) | {opts} | {compute:.1f} | {w} | "
        f"{run.n_clusters} | {run.n_noise / run.n_tracks:.0%} | {ari:.2f} |",
        flush=True,
    )


def spaces(args) -> None:
    import duckdb
    from sklearn.metrics import adjusted_rand_score

    from audiodb.analysis.params import NOTEBOOK
    from audiodb.query import cluster as C

    warnings.simplefilter("ignore")
    candidates = [("scaled", None), ("pca", 2), ("pca", 5), ("pca", 10), ("umap", 2), ("umap", 5), ("umap", 10)]
    print(f"# HDBSCAN (min_cluster_size 4, min_samples 2) in each space ({_machine()})")
    for path in args.libraries:
        con = duckdb.connect(path, read_only=True)
        try:
            rows = con.execute(
                "SELECT t.folder, e.vector FROM embeddings e JOIN track_files t USING (track_id) "
                "WHERE e.feature_set = ? ORDER BY t.path",
                [NOTEBOOK.id],
            ).fetchall()
        finally:
            con.close()
        X = np.array([r[1] for r in rows], dtype=np.float32)
        folders = np.unique([r[0] for r in rows], return_inverse=True)[1]
        labelled = folders.max() > 0
        print(f"\n## {path}: {len(X)} tracks in {folders.max() + 1} folders\n")
        print("| space | clusters | noise | ARI vs folders | purity | over seeds: noise, ARI, all-noise runs |")
        print("|---|---:|---:|---:|---:|---|")
        for space, dims in candidates:
            run = C.cluster_vectors(X, method="hdbscan", space=space, dims=dims)
            ari = adjusted_rand_score(folders, run.labels) if labelled else float("nan")
            spread = ""
            if space == "umap" and args.seeds > 1:
                stats = []
                for seed in range(args.seeds):
                    C.SEED = seed
                    r = C.cluster_vectors(X, method="hdbscan", space=space, dims=dims)
                    stats.append(
                        (
                            r.n_noise / r.n_tracks,
                            adjusted_rand_score(folders, r.labels) if labelled else np.nan,
                            r.n_clusters == 0,
                        )
                    )
                C.SEED = 42
                s = np.array(stats, dtype=float)
                spread = (
                    f"{s[:, 0].mean():.0%}, {np.nanmean(s[:, 1]) if labelled else float('nan'):.2f}, "
                    f"{int(s[:, 2].sum())} of {args.seeds}"
                )
            purity = _purity(folders, run.labels) if labelled else float("nan")
            print(
                f"| {space}{'' if dims is None else f' {dims}'} | {run.n_clusters} | "
                f"{run.n_noise / run.n_tracks:.0%} | {ari:.2f} | {purity:.2f} | {spread} |",
                flush=True,
            )


def _purity(truth: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of clustered tracks that share their cluster's most common folder."""
    mask = labels != -1
    if not mask.any():
        return float("nan")
    return sum(np.bincount(truth[labels == c]).max() for c in set(labels[mask].tolist())) / mask.sum()


def runs(args) -> None:
    import resource
    import shutil
    import subprocess

    pythons = [("this", sys.executable)] + ([("baseline", args.baseline)] if args.baseline else [])
    print(f"# audiodb cluster on {args.library}, a new process per run ({_machine()})")
    print(f"load average before: {os.getloadavg()[0]:.2f}\n")
    with tempfile.TemporaryDirectory() as tmp:
        setup = {}
        for name, python in pythons:
            lib = os.path.join(tmp, f"{name}.duckdb")
            shutil.copy(args.library, lib)
            cache = os.path.join(tmp, f"numba-{name}")
            os.mkdir(cache)
            env = {**os.environ, "NUMBA_CACHE_DIR": cache, "AUDIODB_DB": lib}
            setup[name] = (python, env)
        table: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in pythons}
        for i in range(args.runs):
            for name, _ in pythons:  # interleaved: the machine's load falls on both alike
                python, env = setup[name]
                command = [python, "-c", "from audiodb.cli import main; main()", "cluster"]
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                started = time.perf_counter()
                done = subprocess.run(command, env=env, capture_output=True, text=True)
                wall = time.perf_counter() - started
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                if done.returncode != 0:
                    raise SystemExit(f"{name} run {i + 1} failed:\n{done.stderr}")
                cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
                table[name].append((wall, cpu))
                print(f"{name} run {i + 1}: wall {wall:.1f} s, CPU {cpu:.1f} s", flush=True)
    print(f"\nload average after: {os.getloadavg()[0]:.2f}\n")
    head = " | ".join(f"{name} wall s | {name} CPU s" for name, _ in pythons)
    print(f"| run | {head} |" + (" baseline / this (CPU) |" if args.baseline else ""))
    print("|---|" + "---:|" * (2 * len(pythons) + (1 if args.baseline else 0)))
    for i in range(args.runs):
        label = "first (empty numba cache)" if i == 0 else f"run {i + 1}"
        cells = " | ".join(f"{table[name][i][0]:.1f} | {table[name][i][1]:.1f}" for name, _ in pythons)
        ratio = f" {table['baseline'][i][1] / table['this'][i][1]:.2f}x |" if args.baseline else ""
        print(f"| {label} | {cells} |{ratio}")


def stages(args) -> None:
    started, cpu0 = time.perf_counter(), time.process_time()
    marks: list[tuple[str, float, float]] = []
    last = ["import duckdb", started, cpu0]  # each mark names the interval that starts there

    def stage(line: str) -> None:
        now, cpu = time.perf_counter(), time.process_time()
        marks.append((last[0], now - last[1], cpu - last[2]))
        last[:] = [line, now, cpu]

    import duckdb  # noqa: F401

    stage("import audiodb")
    from audiodb.library import Library

    lib = Library(args.library)
    stage("kmeans: read the vectors, import scikit-learn")
    lib.cluster("kmeans", on_stage=stage)  # its last stage: the fit, the silhouette, storing the run
    stage("hdbscan: read the vectors")
    lib.cluster("hdbscan", on_stage=stage)  # its last stage: import hdbscan, the fit, silhouette, store
    stage("end")
    print(f"# One `audiodb cluster` in stages, {args.library} ({_machine()}), load {os.getloadavg()[0]:.2f}\n")
    print("| stage | wall s | CPU s |\n|---|---:|---:|")
    for line, wall, cpu in marks:
        print(f"| {line.rstrip('…')} | {wall:.2f} | {cpu:.2f} |")
    print(
        f"| total (after the interpreter started) | {time.perf_counter() - started:.2f} | "
        f"{time.process_time() - cpu0:.2f} |"
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("scale", help="time clustering on synthetic vectors")
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--scaled-hdbscan-n", type=int, default=20_000)
    p.set_defaults(fn=scale)
    p = sub.add_parser("spaces", help="HDBSCAN in each space on indexed libraries")
    p.add_argument("libraries", nargs="+")
    p.add_argument("--seeds", type=int, default=10, help="UMAP seeds to try, for the spread (1: only 42)")
    p.set_defaults(fn=spaces)
    p = sub.add_parser("runs", help="first (empty numba cache), second, ... `audiodb cluster`, new processes")
    p.add_argument("library")
    p.add_argument("--baseline", help="python of another venv to interleave with this one")
    p.add_argument("--runs", type=int, default=3)
    p.set_defaults(fn=runs)
    p = sub.add_parser("stages", help="one run broken down by stage, in one process")
    p.add_argument("library")
    p.set_defaults(fn=stages)
    args = parser.parse_args(argv)
    args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
