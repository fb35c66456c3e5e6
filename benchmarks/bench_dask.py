"""Throughput of `audiodb scan --scheduler` with 1, 2 and 4 Dask worker processes.

    python benchmarks/bench_dask.py [AUDIO_DIR] [--workers 1,2,4]

Each run indexes AUDIO_DIR into a fresh temporary library through a
distributed.LocalCluster (one thread per worker process) and prints wall time,
files/s and seconds of audio per second, next to a local `--workers 2` scan.
On this project's 2-core machines, 4 workers oversubscribe the cores: the
figure shows the scheduling overhead, not a gain.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

DEFAULT = "/tmp/bench-audio/usr/share/games/wesnoth/1.16/data/core/music"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("audio_dir", nargs="?", default=DEFAULT)
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--limit", type=int, default=12, help="files to index (default 12)")
    args = ap.parse_args()

    import shutil

    from distributed import LocalCluster

    from audiodb import Library
    from audiodb.index.discover import discover

    files = sorted(discover([args.audio_dir]).files)[: args.limit]
    if not files:
        sys.exit(f"No audio under {args.audio_dir}: see benchmarks/README.md to fetch some.")
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "audio")
        os.mkdir(src)
        for f in files:
            os.symlink(f, os.path.join(src, os.path.basename(f)))

        def run(label, **kw):
            db = os.path.join(tmp, f"{label}.duckdb")
            t = time.perf_counter()
            report = Library(db).scan([src], **kw)
            wall = time.perf_counter() - t
            audio = Library(db).sql("select sum(duration_sec) from tracks").rows[0][0]
            print(f"{label:>18}  {wall:7.1f} s  {report.added / wall:6.2f} files/s  {audio / wall:7.1f} audio-s/s")
            return wall

        print(f"{len(files)} files from {args.audio_dir}")
        local = run("local --workers 2", workers=2)
        for n in [int(x) for x in args.workers.split(",")]:
            with LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=50
            ) as cluster:
                wall = run(f"dask {n} worker(s)", scheduler=cluster.scheduler_address)
            print(f"{'':>18}  ratio to local 2 workers: {local / wall:.2f}")
        shutil.rmtree(src)


if __name__ == "__main__":
    main()
