"""Clustering: how long it takes at scale, and which space HDBSCAN should use.

    python benchmarks/bench_cluster.py scale [--n 100000] [--k 20]
    python benchmarks/bench_cluster.py spaces LIB.duckdb [LIB2.duckdb ...] [--seeds 10]

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
    args = parser.parse_args(argv)
    args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
