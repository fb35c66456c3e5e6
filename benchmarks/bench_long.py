"""One long recording on 1 and 2 workers: time, peak memory per worker, and the difference to a whole-file analysis.

    python benchmarks/bench_long.py [AUDIO_DIR] [--minutes M] [--format flac|ogg|wav] [--keep FILE]

Builds an M-minute (default 120) 44.1 kHz stereo file by concatenating the real
tracks of AUDIO_DIR with ffmpeg (in a temp dir, or FILE with ``--keep``: reused
when it exists), then, each in a fresh Python process:

  scan --workers 1   audiodb.scan of a folder holding only that file, one worker
                     (the worker's embed_file streams it in chunks: bounded memory)
  scan --workers 2   the same with two workers: the file's chunks are split between them
  whole file         embed_file(path, extended=True, long_file_sec=inf): decoded whole
                     (the reference; its memory is what the chunked path avoids)

Peak memory is the kernel's max RSS: the scanning process's own (RUSAGE_SELF),
and its largest worker's (RUSAGE_CHILDREN, the max over the reaped worker
processes). Prints the time ratio (goal >= 1.7x), the peaks (goal < 1 GB per
worker) and the max relative difference of both feature sets to the whole-file
computation (goal <= 1e-5). BLAS/OpenMP run on one thread everywhere.
"""

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

import _common  # noqa: F401  (before numpy: one BLAS thread)

DEFAULT = "/work/bench-audio/usr/share/games/wesnoth/1.16/data/core/music"


def _worker_cpu(seen: dict[int, float], stop) -> None:
    """Poll this process's children's CPU seconds (utime + stime from /proc) until ``stop`` is set."""
    tick = os.sysconf("SC_CLK_TCK")
    me = os.getpid()
    while not stop.wait(0.2):
        try:
            kids = open(f"/proc/{me}/task/{me}/children").read().split()
        except OSError:
            continue
        for pid in map(int, kids):
            try:
                fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
                cmd = open(f"/proc/{pid}/cmdline", "rb").read()
            except OSError:
                continue
            if b"spawn_main" in cmd:  # a worker, not the resource tracker
                seen[pid] = max(seen.get(pid, 0.0), (int(fields[11]) + int(fields[12])) / tick)


def child(kind: str, path: str, work: str, out: str) -> None:
    import resource
    import threading

    import numpy as np

    seen: dict[int, float] = {}
    stop = threading.Event()
    threading.Thread(target=_worker_cpu, args=(seen, stop), daemon=True).start()
    t0 = time.perf_counter()
    if kind == "whole":
        from audiodb.analysis.embed import embed_file

        vec, meta = embed_file(path, extended=True, long_file_sec=float("inf"))
        result = {"vector": vec.tolist(), "extended": meta["extended_vector"].tolist()}
    else:
        import duckdb

        import audiodb

        workers = int(kind)
        db = os.path.join(work, f"w{workers}.duckdb")
        report = audiodb.scan([os.path.dirname(path)], db=db, workers=workers)
        assert report.added == 1 and report.failed == 0, report.counts()
        con = duckdb.connect(db, read_only=True)
        vec = con.execute("SELECT vector FROM embeddings").fetchone()[0]
        ext = con.execute("SELECT vector FROM extended_embeddings").fetchone()[0]
        con.close()
        result = {"vector": list(vec), "extended": list(ext)}
    result["seconds"] = time.perf_counter() - t0
    stop.set()
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    result["cpu"] = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
    result["self_cpu"] = me.ru_utime + me.ru_stime
    result["worker_cpu"] = sorted(seen.values(), reverse=True)
    result["self_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["worker_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    del np
    with open(out, "w") as f:
        json.dump(result, f)


def build(folder: str, minutes: float, fmt: str, dest: str) -> None:
    tracks = _common.audio_files(folder)
    random.Random(0).shuffle(tracks)
    listing = dest + ".txt"
    with open(listing, "w") as f:
        total = 0.0
        while total < minutes * 60 + 60:  # a minute more: -t cuts it to the length
            for t in tracks:
                f.write("file '" + t.replace("'", "'\\''") + "'\n")
                total += float(
                    subprocess.check_output(
                        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", t], text=True
                    )
                )
                if total >= minutes * 60 + 60:
                    break
    codec = {"flac": ["-c:a", "flac"], "ogg": ["-c:a", "libvorbis", "-q:a", "4"], "wav": ["-c:a", "pcm_s16le"]}[fmt]
    subprocess.check_call(
        ["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", listing, "-t", str(minutes * 60),
         "-ar", "44100", "-ac", "2", *(["-sample_fmt", "s16"] if fmt != "ogg" else []), *codec, dest]
    )  # fmt: skip
    os.remove(listing)


def _burn(cpu_s: float) -> tuple[float, float]:
    start = time.time()
    t = time.process_time()
    while time.process_time() - t < cpu_s:
        pass
    return start, time.time()


def capacity(n: int = 2, cpu_s: float = 0.5) -> float:
    """Cores a CPU-bound probe got just now (2.0: both free; ~1.0 while another session is busy:
    the kernel's autogroup scheduler shares CPU between sessions)."""
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(n) as pool:
        spans = pool.map(_burn, [cpu_s] * n)
    return n * cpu_s / (max(e for _, e in spans) - min(s for s, _ in spans))


def run(kind: str, path: str, work: str) -> dict:
    free, load = capacity(), os.getloadavg()[0]
    out = os.path.join(work, f"{kind}.json")
    subprocess.check_call([sys.executable, __file__, "--child", kind, path, work, out])
    with open(out) as f:
        return {**json.load(f), "free": free, "load": load}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("audio_dir", nargs="?", default=DEFAULT)
    ap.add_argument("--minutes", type=float, default=120.0)
    ap.add_argument("--format", choices=("flac", "ogg", "wav"), default="flac")
    ap.add_argument("--keep", help="build the long file here (reused if it exists)")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    import numpy as np

    work = tempfile.mkdtemp(prefix="bench-long-")
    try:
        folder = os.path.join(work, "audio")
        os.mkdir(folder)
        path = os.path.join(folder, f"long.{args.format}")
        if args.keep:
            if not os.path.exists(args.keep):
                print(f"building {args.minutes:g} min from {args.audio_dir} ...", flush=True)
                build(args.audio_dir, args.minutes, args.format, args.keep)
            os.symlink(os.path.abspath(args.keep), path)
        else:
            print(f"building {args.minutes:g} min from {args.audio_dir} ...", flush=True)
            build(args.audio_dir, args.minutes, args.format, path)
        import soundfile as sf

        info = sf.info(path)
        print(f"{path}: {info.duration / 60:.1f} min, {info.samplerate} Hz, {info.channels} ch, "
              f"{os.path.getsize(path) / 1e6:.0f} MB; {_common.machine()}")  # fmt: skip
        res = {kind: run(kind, path, work) for kind in ("1", "2", "whole")}
        ref = res["whole"]

        def rel(a, b):
            a, b = np.asarray(a, float), np.asarray(b, float)
            return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))

        rows = []
        for kind, label in (("1", "scan --workers 1"), ("2", "scan --workers 2"), ("whole", "whole file (reference)")):
            r = res[kind]
            rows.append(
                [
                    label,
                    f"{r['seconds']:.1f}",
                    f"{r['cpu']:.1f}",
                    f"{r['load']:.1f} / {r['free']:.2f}",
                    f"{r['self_mb']:.0f}",
                    f"{r['worker_mb']:.0f}" if kind != "whole" else "-",
                    f"{rel(r['vector'], ref['vector']):.1e}" if kind != "whole" else "-",
                    f"{rel(r['extended'], ref['extended']):.1e}" if kind != "whole" else "-",
                ]
            )
        print(
            _common.table(
                [
                    "run",
                    "seconds",
                    "CPU s",
                    "load / cores free",
                    "peak MB (process)",
                    "peak MB (largest worker)",
                    "max rel diff 180",
                    "max rel diff 42",
                ],
                rows,
            )
        )
        print(f"workers 2 vs 1: {res['1']['seconds'] / res['2']['seconds']:.2f}x wall (goal >= 1.7x)")
        # Contention-free estimate: the work of one run over the longest path of the other
        # (its busiest worker plus the scanning process's own CPU), both in CPU seconds.
        one, two = res["1"], res["2"]
        path1 = one["self_cpu"] + sum(one["worker_cpu"])
        path2 = two["self_cpu"] + (two["worker_cpu"][0] if two["worker_cpu"] else 0.0)
        print(
            f"CPU s per worker: 1 worker {[round(c, 1) for c in one['worker_cpu']]}, "
            f"2 workers {[round(c, 1) for c in two['worker_cpu']]}; scanning process {one['self_cpu']:.1f} / "
            f"{two['self_cpu']:.1f}; critical path 1 vs 2 workers: {path1 / path2:.2f}x (what the wall ratio is "
            "with two free cores)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
