"""Full-scan throughput by worker count, and the cost of a no-change rescan.

    python benchmarks/bench_workers.py [AUDIO_DIR] [--tree-size N] [--tree-source DIR]
                                       [--repeat K] [--rescans R] [--skip-full] [--skip-rescan] [--seed S]

Part 1: audiodb.scan([AUDIO_DIR], db=<fresh temp DuckDB>, workers=W) for
W = 1, 2 (and os.cpu_count() if more), K times each, interleaved: wall time
(best and median), CPU time, files/s, audio-seconds/s, speedup over one
worker (goal: 2 workers >= 1.6x one).

Part 2: a tree of N hardlinks (default 20000, in nested folders; symlinks if
hardlinks are impossible) to the short freedesktop .oga sounds is indexed
once, then rescanned R times with nothing changed: seconds and microseconds
per file. A rescan must open no audio file: checked from the report (all
unchanged) and, if strace is installed, by an extra strace'd rescan counting
open() calls on files in the tree (directory opens by the walk are allowed).

BLAS/OpenMP pools are pinned to one thread (set below, before numpy is
imported); scan() pins its spawned workers the same way.
"""

import os

# Per-core measurement: one BLAS/OpenMP thread. Must precede any numpy import.
for _k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_k] = "1"

import argparse  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import soundfile as sf  # noqa: E402
from _common import DEFAULT_AUDIO_DIR, SOUNDS_DIR, audio_files, machine, table, warm_page_cache  # noqa: E402


def _burn(cpu_s: float) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    while time.process_time() - c0 < cpu_s:
        pass
    return t0, time.perf_counter()


def capacity(n: int | None = None, cpu_s: float = 0.5) -> float:
    """Cores this benchmark can get right now: n CPU-bound processes burn cpu_s each.

    ~2.0 on an idle 2-core machine; ~1.0 when another busy session takes its fair share
    (the kernel's autogroup scheduler shares CPU between sessions, not processes).
    """
    import multiprocessing

    n = n or os.cpu_count() or 1
    with multiprocessing.get_context("fork").Pool(n) as pool:
        spans = pool.map(_burn, [cpu_s] * n)
    wall = max(e for _, e in spans) - min(s for s, _ in spans)
    return n * cpu_s / wall


def load() -> str:
    return "load avg %.2f %.2f %.2f" % os.getloadavg()  # 1, 5, 15 min


def full_scans(audio_dir: str, tmp: str, repeat: int) -> None:
    import resource

    from audiodb import scan

    files = audio_files(audio_dir)
    audio_s = sum(sf.info(p).duration for p in files)
    warm_page_cache(files)
    counts = sorted({1, 2, os.cpu_count() or 1})
    print(
        f"## Part 1: full scan of {len(files)} files, {audio_s:.0f} s of audio ({audio_s / 3600:.2f} h), "
        f"{repeat} run(s) per worker count, interleaved; fresh DuckDB file each run"
    )
    walls: dict[int, list[float]] = {w: [] for w in counts}
    cpus: dict[int, list[float]] = {w: [] for w in counts}
    loads: dict[int, list[str]] = {w: [] for w in counts}
    for r in range(repeat):
        for w in counts:
            db = os.path.join(tmp, f"full-w{w}-r{r}.duckdb")
            loads[w].append("%.1f/%.1f" % (os.getloadavg()[0], capacity()))
            ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            me0 = resource.getrusage(resource.RUSAGE_SELF)
            t0 = time.perf_counter()
            rep = scan([audio_dir], db=db, workers=w)
            wall = time.perf_counter() - t0
            ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            me1 = resource.getrusage(resource.RUSAGE_SELF)
            cpu = (
                ru1.ru_utime
                + ru1.ru_stime
                - ru0.ru_utime
                - ru0.ru_stime
                + me1.ru_utime
                + me1.ru_stime
                - me0.ru_utime
                - me0.ru_stime
            )
            c = rep.counts()
            if c["added"] != len(files) or c["failed"]:
                print(f"  !! workers={w}: unexpected counts {c}")
            walls[w].append(wall)
            cpus[w].append(cpu)
            os.remove(db)
            print(f"  run {r + 1} workers={w}: {wall:.1f} s wall, {cpu:.1f} s CPU {c}", file=sys.stderr, flush=True)
    rows = []
    base = min(walls[1])
    base_med = statistics.median(walls[1])
    for w in counts:
        best, med = min(walls[w]), statistics.median(walls[w])
        rows.append(
            [
                str(w),
                f"{best:.1f}",
                f"{med:.1f}",
                f"{statistics.median(cpus[w]):.1f}",
                f"{len(files) / best:.2f}",
                f"{audio_s / best:.0f}",
                f"{base / best:.2f}x",
                f"{base_med / med:.2f}x",
                ",".join(loads[w]),
            ]
        )
    print(
        table(
            [
                "workers",
                "best wall s",
                "median s",
                "CPU s",
                "files/s",
                "audio s/s",
                "speedup (best)",
                "speedup (median)",
                "load / cores free",
            ],
            rows,
        )
    )
    print(
        "files/s and audio s/s from the best run; CPU s = main process + workers; "
        "load / cores free = 1-min load average and cores a CPU-bound probe got just before "
        "each run (2.0 = idle machine). goal: 2 workers >= 1.6x one"
    )
    # What load imbalance alone allows: greedy assignment in scan's order (sorted paths),
    # each file costing its duration.
    import heapq

    durs = [sf.info(p).duration for p in sorted(files)]
    for w in counts[1:]:
        free = [0.0] * w
        for d in durs:
            heapq.heappush(free, heapq.heappop(free) + d)
        print(f"scheduling ceiling for {w} workers (duration-weighted, path order): {sum(durs) / max(free):.2f}x")


def build_tree(root: str, sources: list[str], n: int, rng: random.Random) -> str:
    """n links in root/aa/bb/cc.oga-style nested folders: 20 x 20 folders, ~n/400 files each."""
    mode = "hardlink"
    for i in range(n):
        src = sources[rng.randrange(len(sources))]
        d = os.path.join(root, f"artist{i % 20:02d}", f"album{(i // 20) % 20:02d}")
        os.makedirs(d, exist_ok=True)
        dst = os.path.join(d, f"track{i:06d}{os.path.splitext(src)[1]}")
        if mode == "hardlink":
            try:
                os.link(src, dst)
                continue
            except OSError:
                mode = "symlink"  # another filesystem, or links not allowed
        os.symlink(src, dst)
    return mode


def strace_opens(tree: str, db: str) -> int | None:
    """Open calls on (non-directory) files under tree during a strace'd rescan, or None."""
    strace = shutil.which("strace")
    if not strace:
        return None
    log = db + ".strace"
    code = f"from audiodb import scan; r = scan([{tree!r}], db={db!r}, workers=2); print(r.counts())"
    proc = subprocess.run(
        [strace, "-f", "-qq", "-e", "trace=open,openat,openat2", "-o", log, sys.executable, "-c", code],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        print(f"  (strace check failed to run: {proc.stderr.strip()[-200:]})")
        return None
    n = 0
    with open(log) as f:
        for line in f:
            if tree + os.sep in line and "O_DIRECTORY" not in line:
                n += 1
    os.remove(log)
    return n


def rescans(n: int, source_dir: str, rescans_n: int, tmp: str, rng: random.Random) -> None:
    from audiodb import scan
    from audiodb.index.discover import discover

    # Resolve symlinks among the sources: a hardlink to a relative symlink would dangle.
    sources = sorted({os.path.realpath(p) for p in audio_files(source_dir)})
    tree = os.path.join(tmp, "tree")
    t0 = time.perf_counter()
    mode = build_tree(tree, sources, n, rng)
    built = time.perf_counter() - t0
    print()
    print(
        f"## Part 2: no-change rescan of {n} entries ({mode}s to {len(sources)} short files "
        f"from {source_dir}; 20 x 20 nested folders; built in {built:.1f} s)"
    )
    db = os.path.join(tmp, "rescan.duckdb")
    w = os.cpu_count() or 1
    t0 = time.perf_counter()
    rep = scan([tree], db=db, workers=w)
    first = time.perf_counter() - t0
    print(f"  initial index, workers={w}: {first:.1f} s ({1e3 * first / n:.2f} ms/file) {rep.counts()}")

    rows = []
    times = []
    for i in range(rescans_n):
        before = load()
        t0 = time.perf_counter()
        rep = scan([tree], db=db, workers=w)
        dt = time.perf_counter() - t0
        times.append(dt)
        c = rep.counts()
        ok = c["unchanged"] == n and sum(v for k, v in c.items() if k != "unchanged") == 0
        rows.append(
            [
                f"rescan {i + 1}",
                f"{dt:.3f}",
                f"{1e6 * dt / n:.0f}",
                f"yes ({c['unchanged']})" if ok else f"NO {c}",
                before,
            ]
        )
    t0 = time.perf_counter()
    found = discover([tree])
    walk = time.perf_counter() - t0
    rows.append(["walk only (discover)", f"{walk:.3f}", f"{1e6 * walk / n:.0f}", f"{len(found.files)} files", ""])
    print(table(["run", "seconds", "us/file", "all unchanged", "before run"], rows))
    med = statistics.median(times)
    print(
        f"median rescan {med:.3f} s = {1e6 * med / n:.0f} us/file; "
        f"walk is {100 * walk / med:.0f}% of it, the rest is loading DB state + planning"
    )
    opened = strace_opens(tree, db)
    if opened is None:
        print("audio files opened during a rescan: not checked (strace unavailable)")
    else:
        print(f"audio files opened during a rescan (strace -f, incl. any workers): {opened}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("audio_dir", nargs="?", default=DEFAULT_AUDIO_DIR)
    ap.add_argument("--tree-size", type=int, default=20000, help="links in the rescan tree (default 20000)")
    ap.add_argument("--tree-source", default=SOUNDS_DIR, help="folder of short files to link to")
    ap.add_argument("--rescans", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=2, help="full scans per worker count (default 2)")
    ap.add_argument("--skip-full", action="store_true")
    ap.add_argument("--skip-rescan", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    rng = random.Random(args.seed)
    print(f"# bench_workers; seed {args.seed}")
    print(f"# {machine()}")
    print(f"# {load()} at start; cores free {capacity():.2f} of {os.cpu_count()} (other processes share these cores)")
    with tempfile.TemporaryDirectory(prefix="audiodb-bench-", dir="/tmp") as tmp:
        if not args.skip_full:
            full_scans(args.audio_dir, tmp, args.repeat)
        if not args.skip_rescan:
            rescans(args.tree_size, args.tree_source, args.rescans, tmp, rng)


if __name__ == "__main__":
    main()
