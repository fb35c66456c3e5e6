"""Scan throughput as a whole process: `audiodb scan` against the notebook's warm loop.

    python benchmarks/bench_throughput.py [AUDIO_ROOT] [--work DIR] [--clips N] [--repeat K] [--only a,b,c,d,e]
                                          [--base CHECKOUT] [--bliss-python PYTHON]

AUDIO_ROOT is where benchmarks/fetch_audio.sh unpacked (default /work/bench-audio). In one run:
  (a) 6 real tracks of mixed formats (mp3, 2x ogg, opus, flac, wav; the opus one 12.5 min, the
      others 3-5 min), made with ffmpeg from the wesnoth tracks: `audiodb scan --workers 1` as a
      whole process (start-up, imports, workers, writes) against the notebook's warm loop
      (audiodb.analysis.reference.extract_acoustic_embedding called once first, then timed over the
      same files in this process);
  (b) the same 6 tracks, `--workers 2` against `--workers 1`;
  (c) N 1-s clips (default 400) at 44.1 kHz stereo wav, `audiodb scan --workers 2` against the
      notebook's warm loop on them; also its CPU time (the scan's and its workers'), and half of
      it: the wall time if both cores were busy from the first instant to the last, a ceiling on
      the ratio that only less CPU raises;
  (d) one 5-s sound in a folder of its own, `audiodb scan` against `python -c "import duckdb, numpy"`
      (run round by round with it, best of 5), in wall time and in CPU time (user + sys of the
      scan and every process it waited for, its workers);
  (e) every wesnoth track (41, 2.1 h) transcoded round robin to mp3, ogg (as it is), opus, flac, m4a
      (AAC) and wav: in-process CPU seconds per core of the notebook's function and of
      `embed_file(path, extended=True)` (what a scan computes), one warm call first, and of bliss-rs
      (`bliss_audio.Song(path)`, bliss-audio 0.1.11) in its own Python (--bliss-python, default
      $BLISS_PYTHON or /work/venvs/bliss/bin/python; the row is skipped with a message without it).
      bliss runs 7-8 threads per song: its figure is the CPU time of all of them (process_time of
      its process around the loop), so it is per core too. Per format as well.
Each scan writes a fresh library in a temporary folder. Scans, and (d)'s import, run in the
environment the shell gave (the pins of BLAS to one thread are for this script's in-process
timings: the notebook, (e)). The built audio is kept in --work (default /tmp/bench-throughput)
and reused. Every figure is the best of K runs (default 1;
(d) always best of 5). Ratios: notebook / audiodb, or workers 1 / workers 2 (higher is better).
The issue's baseline figures (main before the pipeline work) are printed beside them.
With --base (a checkout of another commit, e.g. `git worktree add --detach /tmp/base main`),
every scan is also run with that checkout's code (`python -m cli` with PYTHONPATH=CHECKOUT),
interleaved run by run with this one's, and printed on a row of its own: an A/B in one run, so
both see the same load on a shared machine. In (e), audiodb's embed_file runs in a warm process of
its own (the notebook in this one), and with --base that checkout's too, file by file in turn,
--repeat-e rounds (default 2), best per file (a row and a per-format column of its own).
The checkouts' sources are byte-compiled first (``__pycache__``, as an installed wheel has them;
--no-compile leaves them as they are: with PYTHONDONTWRITEBYTECODE every process compiles them).
"""

import _common  # noqa: F401, I001  (first: pins BLAS/OpenMP to one thread before numpy loads)

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

from _common import machine, table, user_env, warm_page_cache  # noqa: E402

MUSIC = "usr/share/games/wesnoth/1.16/data/core/music"

# (output name, ffmpeg input args, ffmpeg output args)
TRACKS = [
    ("battle.mp3", ["-i", "battle.ogg"], ["-c:a", "libmp3lame", "-b:a", "192k"]),
    ("heroes_rite.ogg", None, None),  # copied as it is
    ("journeys_end.ogg", None, None),
    (
        "long.wav",
        ["-i", "knalgan_theme.ogg", "-i", "knolls.ogg"],  # a step: long.opus is encoded from it
        ["-filter_complex", "[0:a][1:a]concat=n=2:v=0:a=1", "-t", "750", "-c:a", "pcm_s16le"],
    ),
    # From the wav: libsndfile reads libopus's output of the concat filter as malformed.
    ("long.opus", ["-i", "long.wav"], ["-c:a", "libopus", "-b:a", "128k"]),
    ("frantic.flac", ["-i", "frantic.ogg"], ["-c:a", "flac"]),
    ("elvish-theme.wav", ["-i", "elvish-theme.ogg"], ["-c:a", "pcm_s16le"]),
]

BASELINE = {  # issue 13's table, measured on main before this work
    "a": "1.52-1.65x (notebook 22.2-23.6 s, scan 14.3-14.6 s)",
    "b": "1.14-1.20x (12.2-12.6 s)",
    "c": "0.43x (notebook 6.4 s, scan 14.9 s, 27 files/s)",
    "d": "scan 1.5-1.85 s",
}
BASELINE["e"] = "2.1x (notebook 117 s, audiodb 56 s CPU; 24 other tracks, 2.2 h)"
BASELINE["f"] = "0.64x (bliss 35 s CPU)"
GOAL = {"a": ">= 3.0x", "b": ">= 1.6x", "c": ">= 4.0x", "d": "<= 2x the import (about 0.6 s)"}
GOAL["e"] = ">= 3.0x"
GOAL["f"] = ">= 1.0x"
MIXED_FORMATS = [  # (extension, ffmpeg output args or None to copy), round robin over the tracks
    ("mp3", ["-c:a", "libmp3lame", "-b:a", "192k"]),
    ("ogg", None),
    ("opus", ["-c:a", "libopus", "-b:a", "128k"]),
    ("flac", ["-c:a", "flac"]),
    ("m4a", ["-c:a", "aac", "-b:a", "192k"]),
    ("wav", ["-c:a", "pcm_s16le"]),
]
BLISS_LOOP = """
import sys, time, bliss_audio
paths = sys.argv[1:]
bliss_audio.Song(paths[0])  # warm-up
for p in paths:
    t = time.process_time()
    bliss_audio.Song(p)
    print(time.process_time() - t, p, flush=True)
"""

#: (e) audiodb's side: a warm process that times embed_file on each path it reads from stdin (CPU s).
EMBED_SERVER = """
import _common, sys, time
from audiodb.analysis.embed import embed_file
for line in sys.stdin:
    p = line.rstrip("\\n")
    t = time.process_time()
    _, meta = embed_file(p, extended=True)
    print(time.process_time() - t, meta["duration_sec"], flush=True)
"""


def embed_cpu(
    paths: list[str], checkouts: list[str | None], rounds: int = 2
) -> tuple[list[dict[str, float]], dict[str, float]]:
    """CPU seconds of ``embed_file(path, extended=True)`` per path for each checkout (None: this one), and
    each path's duration. Each checkout in a warm process of its own; file by file, the checkouts in
    turn, ``rounds`` times, best kept: an A/B that sees the same load on a shared machine."""
    here = os.path.dirname(os.path.abspath(__file__))
    procs = []
    for c in checkouts:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([c, here] if c else [here])}
        cmd = [sys.executable, "-c", EMBED_SERVER]
        pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE}
        procs.append(subprocess.Popen(cmd, **pipes, text=True, env=env, cwd=tempfile.gettempdir()))
    best: list[dict[str, float]] = [{} for _ in checkouts]
    durations: dict[str, float] = {}
    try:
        for r in range(rounds + 1):  # round 0 warms each process up on the first file
            for p in paths[:1] if r == 0 else paths:
                for proc, out in zip(procs, best, strict=True):
                    assert proc.stdin is not None and proc.stdout is not None
                    proc.stdin.write(p + "\n")
                    proc.stdin.flush()
                    line = proc.stdout.readline()
                    if not line:
                        raise SystemExit(f"embed_file failed on {p}")
                    cpu, seconds = map(float, line.split())
                    if r:
                        out[p] = min(out.get(p, float("inf")), cpu)
                        durations[p] = seconds
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    return best, durations


def ffmpeg(args: list[str]) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def build_tracks(music: str, dest: str) -> list[str]:
    os.makedirs(dest, exist_ok=True)
    steps = os.path.join(os.path.dirname(dest), "steps")
    os.makedirs(steps, exist_ok=True)
    out = []
    for name, inputs, outputs in TRACKS:
        step = name == "long.wav"
        path = os.path.join(steps if step else dest, name)
        if not os.path.exists(path):
            if inputs is None:
                shutil.copyfile(os.path.join(music, name), path)
            else:
                ins = [a if a == "-i" else os.path.join(steps if a == "long.wav" else music, a) for a in inputs]
                part = os.path.join(os.path.dirname(path), "part." + name)
                ffmpeg([*ins, *outputs, part])
                os.replace(part, path)
        if not step:
            out.append(path)
    return out


def build_clips(music: str, dest: str, n: int) -> list[str]:
    """``n`` 1-s 44.1 kHz stereo 16-bit wav excerpts, round robin over the wesnoth tracks."""
    import numpy as np
    import soundfile as sf

    os.makedirs(dest, exist_ok=True)
    out = [os.path.join(dest, f"clip{i:04d}.wav") for i in range(n)]
    if all(os.path.exists(p) for p in out):
        return out
    sources = sorted(os.path.join(music, f) for f in os.listdir(music) if f.endswith(".ogg"))
    sources = [p for p in sources if sf.info(p).duration > 30]
    for k, src in enumerate(sources):  # each source decoded once
        y, sr = sf.read(src, dtype="float32", always_2d=True)
        assert sr == 44100, (src, sr)
        for i in range(k, n, len(sources)):
            start = (i // len(sources) * 7919 * 441) % (len(y) - 44100)
            clip = y[start : start + 44100, :2]
            if clip.shape[1] == 1:
                clip = np.repeat(clip, 2, axis=1)
            sf.write(out[i], clip, 44100, subtype="PCM_16")
    return out


def build_short(music: str, dest: str) -> str:
    os.makedirs(dest, exist_ok=True)
    path = os.path.join(dest, "five-seconds.ogg")
    if not os.path.exists(path):
        ffmpeg(["-ss", "20", "-t", "5", "-i", os.path.join(music, "main_menu.ogg"), "-c:a", "libvorbis", path])
    return path


def build_mixed(music: str, dest: str) -> list[str]:
    """Every wesnoth track in one of six formats (round robin in name order)."""
    os.makedirs(dest, exist_ok=True)
    out = []
    for i, name in enumerate(sorted(f for f in os.listdir(music) if f.endswith(".ogg"))):
        ext, args = MIXED_FORMATS[i % len(MIXED_FORMATS)]
        path = os.path.join(dest, f"{os.path.splitext(name)[0]}.{ext}")
        if not os.path.exists(path):
            if args is None:
                shutil.copyfile(os.path.join(music, name), path)
            else:
                part = os.path.join(dest, "part." + os.path.basename(path))
                ffmpeg(["-i", os.path.join(music, name), "-vn", *args, part])
                os.replace(part, path)
        out.append(path)
    return out


def cpu_per_file(paths: list[str], fn, results: dict | None = None) -> dict[str, float]:
    """CPU seconds (this process) of ``fn(path)`` per path, after one warm-up call; what each call
    returned goes to ``results``."""
    fn(paths[0])
    out = {}
    for p in paths:
        t = time.process_time()
        got = fn(p)
        out[p] = time.process_time() - t
        if results is not None:
            results[p] = got
    return out


def bliss_cpu(python: str, paths: list[str]) -> dict[str, float]:
    done = subprocess.run([python, "-c", BLISS_LOOP, *paths], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"bliss failed: {done.stderr[-2000:]}")
    out = {}
    for line in done.stdout.splitlines():
        cpu, path = line.split(" ", 1)
        out[path] = float(cpu)
    return out


def audiodb_exe() -> list[str]:
    exe = os.path.join(os.path.dirname(sys.executable), "audiodb")
    return [exe] if os.path.exists(exe) else [sys.executable, "-m", "cli"]


def run_timed(cmd: list[str], **kw) -> tuple[float, float, subprocess.CompletedProcess]:
    """Run ``cmd``; its wall time, its CPU time (user + sys of it and every process it waited
    for: a scan's workers), and the finished process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, **kw)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), done


def time_scan_cpu(folder: str, workers: int | None, repeat: int, base: str | None = None) -> tuple[float, float]:
    """Best wall and best CPU seconds of ``repeat`` scans of ``folder`` into a fresh library."""
    best, best_cpu = float("inf"), float("inf")
    env = user_env(PYTHONPATH=base) if base else user_env()  # as in a shell: no BLAS pins
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="bench-tp-db-") as tmp:
            exe = [sys.executable, "-m", "cli"] if base else audiodb_exe()
            cmd = [*exe, "scan", folder, "--db", os.path.join(tmp, "lib.duckdb"), "--format", "json"]
            if workers:
                cmd += ["--workers", str(workers)]
            wall, cpu, done = run_timed(cmd, env=env, cwd=tmp)
            if done.returncode != 0:
                print(done.stdout[-2000:], done.stderr[-2000:], file=sys.stderr)
                raise SystemExit(f"scan failed: {cmd}")
            report = json.loads(done.stdout)
            if report["failed"]:
                print(f"warning: {report['failed']} files failed in {folder}", file=sys.stderr)
            best, best_cpu = min(best, wall), min(best_cpu, cpu)
    return best, best_cpu


def time_notebook(paths: list[str], repeat: int) -> float:
    from audiodb.analysis.reference import extract_acoustic_embedding

    extract_acoustic_embedding(paths[0])  # warm-up: imports, numba compilation
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for p in paths:
            extract_acoustic_embedding(p)
        best = min(best, time.perf_counter() - t)
    return best


def compile_sources(base: str | None) -> None:
    """Byte-compile audiodb's sources here and in ``base``, as installing a wheel does: a checkout
    run with PYTHONDONTWRITEBYTECODE (as on this project's machine) compiles every module of
    audiodb from source in every process, about 0.1 s of CPU per scan, while numpy and duckdb
    load compiled."""
    import audiodb

    here = os.path.dirname(os.path.dirname(os.path.abspath(audiodb.__file__)))
    folders = [os.path.join(root, part) for root in filter(None, [here, base]) for part in ("audiodb", "cli")]
    folders = [f for f in folders if os.path.isdir(f)]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *folders], check=True, stdout=subprocess.DEVNULL)
    print("byte-compiled (--no-compile to keep the sources as they are): " + ", ".join(folders))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", nargs="?", default="/work/bench-audio")
    ap.add_argument("--work", default="/tmp/bench-throughput")
    ap.add_argument("--clips", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--only", default="a,b,c,d,e")
    ap.add_argument("--repeat-e", type=int, default=2, help="rounds of (e), best per file")
    ap.add_argument(
        "--bliss-python",
        default=os.environ.get("BLISS_PYTHON") or "/work/venvs/bliss/bin/python",
        help="a python with bliss-audio 0.1.11 installed, for row (e)'s bliss figure",
    )
    ap.add_argument("--base", default=None, help="a checkout whose scans are timed beside this one's")
    ap.add_argument(
        "--no-compile",
        action="store_true",
        help="leave the checkouts' sources as they are (by default they are byte-compiled first)",
    )
    args = ap.parse_args()
    if not args.no_compile:
        compile_sources(args.base)
    music = os.path.join(args.root, MUSIC)
    if not os.path.isdir(music):
        raise SystemExit(f"No wesnoth music under {args.root}: run benchmarks/fetch_audio.sh {args.root}")
    only = set(args.only.split(","))
    print(machine())
    print(f"load average before: {os.getloadavg()[0]:.2f}; audiodb: {' '.join(audiodb_exe())}")
    tracks_dir = os.path.join(args.work, "tracks")
    clips_dir = os.path.join(args.work, f"clips{args.clips}")
    short_dir = os.path.join(args.work, "short")
    tracks = build_tracks(music, tracks_dir)
    rows = []
    base = os.path.abspath(args.base) if args.base else None

    cpu: dict[str, tuple[float, float | None]] = {}  # folder: best CPU seconds of this code's scans, the base's

    def scans(folder: str, workers: int | None, repeat: int) -> tuple[float, float | None]:
        """This code's best time, and the base checkout's (runs interleaved); their CPU in ``cpu``."""
        mine, theirs = float("inf"), float("inf") if base else None
        mine_cpu, theirs_cpu = float("inf"), float("inf") if base else None
        for _ in range(repeat):
            if base:
                wall, used = time_scan_cpu(folder, workers, 1, base)
                theirs, theirs_cpu = min(theirs, wall), min(theirs_cpu, used)
            wall, used = time_scan_cpu(folder, workers, 1)
            mine, mine_cpu = min(mine, wall), min(mine_cpu, used)
        cpu[folder] = (mine_cpu, theirs_cpu)
        return mine, theirs

    def on_base(label: str, ref: float, t: float | None, ratio) -> None:
        if t is not None:
            rows.append(["    the same on --base", f"{ref:.2f}", f"{t:.2f}", ratio(ref, t), "", ""])

    if only & {"a", "b"}:
        import soundfile as sf

        warm_page_cache(tracks)
        total = sum(sf.info(p).duration for p in tracks)
        print(
            f"6 tracks, {total / 60:.1f} min: "
            + ", ".join(f"{os.path.basename(p)} {sf.info(p).duration:.0f} s" for p in tracks)
        )
        w1, w1b = scans(tracks_dir, 1, args.repeat)
        if "a" in only:
            nb = time_notebook(tracks, args.repeat)
            rows.append(
                [
                    "(a) 6 tracks, scan --workers 1 vs notebook",
                    f"{nb:.2f}",
                    f"{w1:.2f}",
                    f"{nb / w1:.2f}x",
                    BASELINE["a"],
                    GOAL["a"],
                ]
            )
            on_base("a", nb, w1b, lambda r, t: f"{r / t:.2f}x")
        if "b" in only:
            w2, w2b = scans(tracks_dir, 2, args.repeat)
            rows.append(
                [
                    "(b) 6 tracks, scan --workers 2 vs --workers 1",
                    f"{w1:.2f}",
                    f"{w2:.2f}",
                    f"{w1 / w2:.2f}x",
                    BASELINE["b"],
                    GOAL["b"],
                ]
            )
            if base:
                on_base("b", w1b, w2b, lambda r, t: f"{r / t:.2f}x")
    if "c" in only:
        clips = build_clips(music, clips_dir, args.clips)
        warm_page_cache(clips)
        sc, scb = scans(clips_dir, 2, args.repeat)
        nb = time_notebook(clips, args.repeat)
        rows.append(
            [
                f"(c) {len(clips)} 1-s clips, scan --workers 2 vs notebook",
                f"{nb:.2f}",
                f"{sc:.2f} ({len(clips) / sc:.0f} files/s)",
                f"{nb / sc:.2f}x",
                BASELINE["c"],
                GOAL["c"],
            ]
        )
        on_base("c", nb, scb, lambda r, t: f"{r / t:.2f}x")
        sc_cpu, scb_cpu = cpu[clips_dir]
        rows.append(["    CPU s (workers too)", f"{nb:.2f}", f"{sc_cpu:.2f}", f"{nb / sc_cpu:.2f}x", "", ""])
        on_base("c", nb, scb_cpu, lambda r, t: f"{r / t:.2f}x")
        # The most this CPU time allows: the wall time if both cores were busy from start to end.
        rows.append(
            [
                "    that CPU on 2 busy cores (a ceiling)",
                f"{nb:.2f}",
                f"{sc_cpu / 2:.2f}",
                f"{2 * nb / sc_cpu:.2f}x",
                "",
                "",
            ]
        )
    if "d" in only:
        build_short(music, short_dir)
        # Interleaved, round by round: the import, the base checkout's scan, this one's (best of 5 each).
        imp, imp_cpu, sc, sc_cpu = (float("inf"),) * 4
        scb, scb_cpu = (float("inf"), float("inf")) if base else (None, None)
        for _ in range(5):
            wall, cpu, _done = run_timed([sys.executable, "-c", "import duckdb, numpy"], env=user_env())
            imp, imp_cpu = min(imp, wall), min(imp_cpu, cpu)
            if base:
                wall, cpu = time_scan_cpu(short_dir, None, 1, base)
                scb, scb_cpu = min(scb, wall), min(scb_cpu, cpu)
            wall, cpu = time_scan_cpu(short_dir, None, 1)
            sc, sc_cpu = min(sc, wall), min(sc_cpu, cpu)
        rows.append(
            [
                "(d) one 5-s sound, scan vs import duckdb, numpy",
                f"{imp:.2f}",
                f"{sc:.2f}",
                f"{sc / imp:.2f}x the import",
                BASELINE["d"],
                GOAL["d"],
            ]
        )
        on_base("d", imp, scb, lambda r, t: f"{t / r:.2f}x the import")
        cpu_row = ["    the same in CPU s (workers too)", f"{imp_cpu:.2f}", f"{sc_cpu:.2f}", f"{sc_cpu / imp_cpu:.2f}x"]
        rows.append([*cpu_row, "", ""])
        on_base("d", imp_cpu, scb_cpu, lambda r, t: f"{t / r:.2f}x")

    formats = []
    if "e" in only:
        from audiodb.analysis.reference import extract_acoustic_embedding

        mixed = build_mixed(music, os.path.join(args.work, "mixed"))
        warm_page_cache(mixed)
        (ad, *rest), seconds = embed_cpu(mixed, [None, base] if base else [None], args.repeat_e)
        ab = rest[0] if rest else None
        hours = sum(seconds.values()) / 3600
        print(f"(e) {len(mixed)} tracks, {hours:.2f} h, formats: {', '.join(ext for ext, _ in MIXED_FORMATS)}")
        with warnings.catch_warnings():  # librosa's audioread fallback (m4a) warns on every file
            warnings.simplefilter("ignore")
            nb = cpu_per_file(mixed, extract_acoustic_embedding)
        have_bliss = os.path.exists(args.bliss_python)
        bl = bliss_cpu(args.bliss_python, mixed) if have_bliss else None
        total = sum(seconds.values())
        rows.append(
            [
                f"(e) {len(mixed)} tracks ({hours:.1f} h, 6 formats), in-process CPU per core",
                f"{sum(nb.values()):.1f} ({total / sum(nb.values()):.0f}x rt)",
                f"{sum(ad.values()):.1f} ({total / sum(ad.values()):.0f}x rt)",
                f"{sum(nb.values()) / sum(ad.values()):.2f}x",
                BASELINE["e"],
                GOAL["e"],
            ]
        )
        if ab is not None:
            rows.append(
                [
                    "    the same on --base",
                    f"{sum(nb.values()):.1f}",
                    f"{sum(ab.values()):.1f} ({total / sum(ab.values()):.0f}x rt)",
                    f"{sum(nb.values()) / sum(ab.values()):.2f}x",
                    "",
                    "",
                ]
            )
        if bl is None:
            print(f"(e) bliss row skipped: no {args.bliss_python} (set --bliss-python or BLISS_PYTHON)")
        else:
            rows.append(
                [
                    "(e') the same, audiodb vs bliss-rs (CPU of all its threads)",
                    f"{sum(bl.values()):.1f} ({total / sum(bl.values()):.0f}x rt)",
                    f"{sum(ad.values()):.1f}",
                    f"{sum(bl.values()) / sum(ad.values()):.2f}x",
                    BASELINE["f"],
                    GOAL["f"],
                ]
            )
        for ext, _ in MIXED_FORMATS:
            ps = [p for p in mixed if p.endswith("." + ext)]
            secs = sum(seconds[p] for p in ps)
            cells = [f".{ext} ({len(ps)} files, {secs / 60:.0f} min)"]
            for d in (nb, ad, ab, bl):
                cells.append(f"{secs / sum(d[p] for p in ps):.0f}x" if d is not None else "-")
            cells.append(f"{sum(nb[p] for p in ps) / sum(ad[p] for p in ps):.2f}x")
            cells.append(f"{sum(bl[p] for p in ps) / sum(ad[p] for p in ps):.2f}x" if bl is not None else "-")
            formats.append(cells)

    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(table(["work", "baseline s", "audiodb s", "ratio", "issue's figure (main before)", "goal"], rows, "lrrrll"))
    if formats:
        print()
        print("(e) per format, audio seconds per CPU second (realtime factor) and ratios:")
        heads = ["format", "notebook", "audiodb", "--base", "bliss", "notebook/audiodb", "bliss/audiodb"]
        print(table(heads, formats))


if __name__ == "__main__":
    main()
