"""The per-call tax: ms per call of the notebook's function vs audiodb, on 1-s clips and one 3-min track.

    python benchmarks/bench_tax.py [AUDIO_DIR] [--clips N] [--rounds R] [--track PATH] [--track-repeat K]

In one process, on the same files:
  (a) notebook  audiodb.analysis.reference.extract_acoustic_embedding (librosa, verbatim)
  (b) audiodb   audiodb.analysis.embed.embed_file(path, extended=True): the 180 numbers and the
                second set's 42, as every scan computes them
  (c) decode    audiodb.analysis.decode.load(path, sr=22050): decode and resample only
  (d) features  audiodb.analysis.extended.embeddings(y) on (c)'s waveform
The clips are N 1-s excerpts (44.1 kHz stereo 16-bit wav, seeded offsets) cut from
the tracks in AUDIO_DIR into a temporary folder; the track is the one closest to
3 minutes (or --track). Each method is called once first (imports, librosa's numba
compilation, audiodb's per-process caches), then timed in R rounds over every
clip (methods interleaved clip by clip, in a seeded order) and K calls on the track.
Wall and CPU (process_time) per call are the best round's mean; BLAS/OpenMP pools
are pinned to one thread, so CPU is the per-core figure and the robust one on a
shared machine. Ratios are notebook / audiodb (higher is better for audiodb).
"""

import argparse  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import _common  # noqa: F401  (first: pins BLAS/OpenMP to one thread before numpy loads)
import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
from _common import DEFAULT_AUDIO_DIR, audio_files, machine, table, warm_page_cache  # noqa: E402


def make_clips(tracks: list[str], n: int, dest: str, rng: random.Random) -> list[str]:
    """``n`` 1-s 44.1 kHz stereo wav excerpts of ``tracks`` (round robin, seeded offsets)."""
    import soxr

    out = []
    for i in range(n):
        path = tracks[i % len(tracks)]
        with sf.SoundFile(path) as f:
            sr, frames = f.samplerate, f.frames
            start = rng.randrange(0, max(1, frames - 2 * sr))
            f.seek(start)
            y = f.read(sr + 64, dtype="float32", always_2d=True)
        if sr != 44100:
            y = soxr.resample(y, sr, 44100)
        if y.shape[1] == 1:
            y = np.repeat(y, 2, axis=1)
        clip = os.path.join(dest, f"clip{i:03d}.wav")
        sf.write(clip, y[:44100, :2], 44100, subtype="PCM_16")
        out.append(clip)
    return out


def closest_to(paths: list[str], seconds: float) -> str:
    return min(paths, key=lambda p: abs(sf.info(p).duration - seconds))


def time_methods(methods: dict, paths: list[str], rounds: int, rng: random.Random) -> dict:
    """Best round's mean (wall ms, CPU ms) per call of each method over ``paths``."""
    best = {name: (float("inf"), float("inf")) for name in methods}
    for _ in range(rounds):
        wall = dict.fromkeys(methods, 0.0)
        cpu = dict.fromkeys(methods, 0.0)
        for p in paths:
            order = list(methods)
            rng.shuffle(order)
            for name in order:
                w0, c0 = time.perf_counter(), time.process_time()
                methods[name](p)
                wall[name] += time.perf_counter() - w0
                cpu[name] += time.process_time() - c0
        for name in methods:
            w, c = wall[name] / len(paths) * 1e3, cpu[name] / len(paths) * 1e3
            if c < best[name][1]:
                best[name] = (w, c)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("audio_dir", nargs="?", default=DEFAULT_AUDIO_DIR)
    ap.add_argument("--clips", type=int, default=40, help="1-s clips to cut (default 40)")
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds over the clips (default 5)")
    ap.add_argument("--track", default=None, help="the long file (default: the one in AUDIO_DIR closest to 3 min)")
    ap.add_argument("--track-repeat", type=int, default=3, help="timed calls on the track (default 3)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from audiodb.analysis.decode import load
    from audiodb.analysis.embed import embed_file
    from audiodb.analysis.extended import embeddings
    from audiodb.analysis.reference import extract_acoustic_embedding

    rng = random.Random(args.seed)
    tracks = audio_files(args.audio_dir)
    track = args.track or closest_to(tracks, 180.0)
    decoded: dict[str, np.ndarray] = {}

    def features(p: str) -> None:
        if p not in decoded:
            decoded[p] = load(p, sr=22050).y
        embeddings(decoded[p])

    methods = {
        "notebook": extract_acoustic_embedding,
        "audiodb": lambda p: embed_file(p, extended=True),
        "decode": lambda p: load(p, sr=22050),
        "features": features,
    }
    print(machine())
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="bench-tax-") as tmp:
        clips = make_clips(tracks, args.clips, tmp, rng)
        warm_page_cache(clips + [track])
        for p in (clips[0], track):
            for name, f in methods.items():
                f(p)  # warm-up: imports, numba, caches
        on_clips = time_methods(methods, clips, args.rounds, rng)
        on_track = time_methods(methods, [track], args.track_repeat, rng)

    dur = sf.info(track).duration
    rows = []
    for label, res in (
        (f"{args.clips} clips of 1 s, 44.1 kHz", on_clips),
        (f"{os.path.basename(track)} ({dur:.0f} s)", on_track),
    ):
        for name in methods:
            w, c = res[name]
            ratio = res["notebook"][1] / c
            rows.append(
                [
                    label if name == "notebook" else "",
                    name,
                    f"{w:.2f}",
                    f"{c:.2f}",
                    "" if name == "notebook" else f"{ratio:.2f}x",
                ]
            )
    print(table(["files", "method", "wall ms/call", "CPU ms/call", "notebook/this (CPU)"], rows, "llrrr"))
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
