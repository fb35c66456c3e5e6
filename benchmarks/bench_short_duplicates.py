"""Duplicates of short clips: are transcodes of 0.5-10 s sounds found, and different sounds kept apart?

    python benchmarks/bench_short_duplicates.py [--work DIR] [--sounds DIR] [--music DIR]

Builds (once; reused while complete) a corpus in WORK/lib: the freedesktop sounds
(decoded to wav) and 1, 2, 3 and 5 s excerpts of 12 Wesnoth pieces at 30 s and at
31.5 s (neighbouring passages of one piece: the hardest "different recordings"),
each transcoded with the ``ffmpeg`` program to mp3 128k/64k, AAC 128k/64k, Vorbis
q4/q0 and Opus 64k/24k. Files of one original are one recording; so are originals
whose decoded samples are identical (freedesktop ships a few sounds twice). It
indexes the corpus with audiodb, runs ``duplicates`` with the audio check of short
clips and without it (the mel-band threshold alone, as before), and prints, per
duration of the shorter file, precision and recall of the pairs put in one group.
Figures, not assertions.
"""

from _common import SOUNDS_DIR  # noqa: I001  (pins BLAS threads)

import argparse  # noqa: E402
import hashlib  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

PIECES = (
    "battle elf-land love_theme knolls loyalists northerners revelation sad suspense wanderer underground transience"
)
CODECS = {
    "mp3_128.mp3": ["-c:a", "libmp3lame", "-b:a", "128k"],
    "mp3_64.mp3": ["-c:a", "libmp3lame", "-b:a", "64k"],
    "aac_128.m4a": ["-c:a", "aac", "-b:a", "128k"],
    "aac_64.m4a": ["-c:a", "aac", "-b:a", "64k"],
    "ogg_q4.ogg": ["-c:a", "libvorbis", "-q:a", "4"],
    "ogg_q0.ogg": ["-c:a", "libvorbis", "-q:a", "0"],
    "opus_64.opus": ["-c:a", "libopus", "-b:a", "64k"],
    "opus_24.opus": ["-c:a", "libopus", "-b:a", "24k"],
}
BUCKETS = [(0, 0.5), (0.5, 1), (1, 2), (2, 3), (3, 5.5), (5.5, 10)]


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def build(lib: str, sounds: str, music: str) -> None:
    orig, copies = os.path.join(lib, "orig"), os.path.join(lib, "copies")
    if os.path.exists(os.path.join(lib, ".complete")):
        return
    os.makedirs(orig, exist_ok=True)
    os.makedirs(copies, exist_ok=True)
    for name in sorted(os.listdir(sounds)):
        if name.endswith(".oga"):
            ffmpeg("-i", os.path.join(sounds, name), os.path.join(orig, f"fd_{name[:-4]}.wav"))
    for piece in PIECES.split():
        src = os.path.join(music, f"{piece}.ogg")
        for start in ("30", "31.5"):
            for seconds in (1, 2, 3, 5):
                ffmpeg(
                    "-ss",
                    start,
                    "-t",
                    str(seconds),
                    "-i",
                    src,
                    os.path.join(orig, f"mu_{piece}_{start}_{seconds}s.wav"),
                )
    for name in sorted(os.listdir(orig)):
        if os.path.getsize(os.path.join(orig, name)) < 100:  # an excerpt past a piece's end
            os.remove(os.path.join(orig, name))
            continue
        for suffix, args in CODECS.items():
            ffmpeg("-i", os.path.join(orig, name), *args, os.path.join(copies, f"{name[:-4]}__{suffix}"))
    open(os.path.join(lib, ".complete"), "w").close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="/tmp/bench-short-duplicates")
    ap.add_argument("--sounds", default=SOUNDS_DIR)
    ap.add_argument(
        "--music", default=os.path.join(os.path.dirname(SOUNDS_DIR), "..", "games/wesnoth/1.16/data/core/music")
    )
    a = ap.parse_args()
    lib_dir = os.path.join(a.work, "lib")
    build(lib_dir, a.sounds, os.path.normpath(a.music))

    from audiodb import Library
    from audiodb.analysis.decode import load

    lib = Library(os.path.join(a.work, "lib.duckdb"))
    t = time.monotonic()
    lib.scan([lib_dir], workers=2)
    print(f"scan: {time.monotonic() - t:.0f} s")
    rows = lib.sql("SELECT path, duration_sec FROM tracks").rows
    paths = [r[0] for r in rows]
    duration = {r[0]: r[1] for r in rows}
    originals = {}
    for p in paths:
        if "/orig/" in p:
            originals[os.path.basename(p)[:-4]] = hashlib.sha1(load(p).y.tobytes()).hexdigest()
    recording = {p: originals[os.path.splitext(os.path.basename(p))[0].split("__")[0]] for p in paths}

    for label, check in (("before (mel-band threshold alone)", False), ("after (audio check of short clips)", True)):
        t = time.monotonic()
        groups = lib.duplicates(audio_check=check)
        took = time.monotonic() - t
        group_of = {m["path"]: k for k, g in enumerate(groups) for m in g}
        print(f"\n{label}: {len(groups)} groups in {took:.0f} s")
        print(f"{'shorter file':>14}  {'copies':>7}  {'found':>6}  {'wrong':>6}  {'precision':>9}  {'recall':>6}")
        n = len(paths)
        for lo, hi in BUCKETS:
            tp = fp = fn = 0
            for i in range(n):
                for j in range(i + 1, n):
                    pi, pj = paths[i], paths[j]
                    short = min(duration[pi], duration[pj])
                    if not lo <= short < hi:
                        continue
                    same = recording[pi] == recording[pj]
                    grouped = pi in group_of and group_of.get(pi) == group_of.get(pj)
                    tp += same and grouped
                    fp += grouped and not same
                    fn += same and not grouped
            if tp + fn:
                precision, recall = tp / max(1, tp + fp), tp / (tp + fn)
                print(f"{lo:>5}-{hi:<4} s   {tp + fn:7}  {tp:6}  {fp:6}  {precision:9.3f}  {recall:6.3f}")
    print("\n(pairs of files, counted when both are in one group; 'copies' = same-recording pairs)")
    _ = np  # numpy pinned by _common before any import


if __name__ == "__main__":
    main()
