"""What the short clips' stored envelopes cost and save (issue 15, item 7).

    python benchmarks/bench_clip_envelopes.py [--work DIR] [--rounds K] [--clips N] [--music DIR]

Part 1, ``duplicates`` on the corpus of bench_short_duplicates.py (run it first: WORK/lib,
WORK/lib.duckdb; this script rescans it, which stores the envelopes it lacks). In one process,
interleaved K times, CPU seconds (process_time) and wall seconds of: the mel-band threshold
alone; the audio check reading the stored envelopes; the audio check decoding every clip (as
before: the stored envelopes hidden). Each split into decoding, envelopes (computing or reading
them, and turning them into what is compared) and the rest (pairs, correlations). The groups
of the two audio checks must be the same.

Part 2, the scan's extra cost per 1-s clip: N excerpts of 1 s (every other one as Vorbis q4;
kept in WORK/clips1s-N) cut from the music; per clip, interleaved, CPU of ``embed_file``
without and with the envelope, and of the envelope alone (glibc's malloc thresholds set as the
scan's workers set them); then the bytes stored per clip: the ``clip_envelopes`` table of a
scan of them copied into a fresh DuckDB file (less the empty file), and the raw envelope bytes.
"""

from _common import DEFAULT_AUDIO_DIR  # noqa: I001  (pins BLAS threads)

import argparse  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402

import numpy as np  # noqa: E402


class Split:
    """CPU seconds spent inside some functions of audiodb.query.duplicates, by label."""

    def __init__(self):
        self.cpu: dict[str, float] = defaultdict(float)
        self.depth = 0

    def wrap(self, module, name: str, label: str) -> None:
        inner = getattr(module, name)

        def timed(*a, **k):
            if self.depth:  # nested: counted by the outer call
                return inner(*a, **k)
            self.depth += 1
            t = time.process_time()
            try:
                return inner(*a, **k)
            finally:
                self.cpu[label] += time.process_time() - t
                self.depth -= 1

        setattr(module, name, timed)


def part1(work: str, rounds: int) -> None:
    import audiodb.analysis.decode as decode_mod
    import audiodb.query.duplicates as dup
    from audiodb import Library

    lib_dir, db = os.path.join(work, "lib"), os.path.join(work, "lib.duckdb")
    if not os.path.exists(db):
        raise SystemExit(f"{db} is missing: run benchmarks/bench_short_duplicates.py --work {work} first")
    lib = Library(db)
    t = time.monotonic()
    report = lib.scan([lib_dir], workers=2)
    print(
        f"rescan: {time.monotonic() - t:.1f} s wall, {report.updated} re-analysed for their envelope, "
        f"{report.unchanged} unchanged"
    )
    n_env = lib.sql("SELECT count(*) FROM clip_envelopes").rows[0][0]
    n_tracks = lib.sql("SELECT count(*) FROM tracks").rows[0][0]
    print(f"{n_tracks} tracks, {n_env} stored envelopes")

    real_load_envelopes = dup.load_envelopes
    split = Split()
    split.wrap(decode_mod, "load", "decode")
    split.wrap(dup, "clip_envelope_of", "envelope")
    split.wrap(dup, "decode_envelope", "envelope")

    def decoding(con, ids):
        return {}

    runs = {
        "threshold alone": dict(audio_check=False),
        "audio check, stored envelopes": dict(audio_check=True),
        "audio check, decoding every clip": dict(audio_check=True, decode=True),
    }
    cpu: dict[str, list[float]] = defaultdict(list)
    wall: dict[str, list[float]] = defaultdict(list)
    parts: dict[str, list[dict]] = defaultdict(list)
    groups: dict[str, list] = {}
    for _ in range(rounds):
        for label, how in runs.items():
            dup.load_envelopes = decoding if how.get("decode") else split_load(split, real_load_envelopes)
            split.cpu.clear()
            t, c = time.monotonic(), time.process_time()
            found = lib.duplicates(audio_check=how["audio_check"])
            cpu[label].append(time.process_time() - c)
            wall[label].append(time.monotonic() - t)
            parts[label].append(dict(split.cpu))
            groups[label] = sorted(sorted(m["path"] for m in g) for g in found)
    dup.load_envelopes = real_load_envelopes
    print(f"\nduplicates, {rounds} interleaved rounds, load average {os.getloadavg()[0]:.1f}")
    print(f"{'':34} {'CPU s':>7} {'wall s':>7} {'decode':>7} {'envelope':>8} {'rest':>7}  groups")
    for label in runs:
        c = statistics.median(cpu[label])
        dec = statistics.median(p.get("decode", 0.0) for p in parts[label])
        env = statistics.median(p.get("envelope", 0.0) for p in parts[label])
        print(
            f"{label:34} {c:7.2f} {statistics.median(wall[label]):7.2f} {dec:7.2f} {env:8.2f} "
            f"{c - dec - env:7.2f}  {len(groups[label])}"
        )
    same = groups["audio check, stored envelopes"] == groups["audio check, decoding every clip"]
    print(f"groups of the two audio checks identical: {same}")
    ratio = statistics.median(cpu["audio check, decoding every clip"]) / statistics.median(
        cpu["audio check, stored envelopes"]
    )
    print(f"decoding / stored (CPU): {ratio:.1f}x")


def split_load(split: Split, real):
    def load(con, ids):
        t = time.process_time()
        try:
            return real(con, ids)
        finally:
            split.cpu["envelope"] += time.process_time() - t

    return load


def part2(work: str, music: str, n: int, rounds: int) -> None:
    import duckdb

    from audiodb import Library
    from audiodb.analysis.decode import load
    from audiodb.analysis.embed import embed_file
    from audiodb.analysis.envelope import clip_envelope_of

    clips = os.path.join(work, f"clips1s-{n}")  # kept for A/B scans with another checkout
    if not os.path.exists(os.path.join(clips, ".complete")):
        os.makedirs(clips, exist_ok=True)
        pieces = sorted(f for f in os.listdir(music) if f.endswith(".ogg"))
        for k in range(n):
            src = os.path.join(music, pieces[k % len(pieces)])
            out = os.path.join(clips, f"c{k:04d}.wav")
            start = str(20 + 7 * (k // len(pieces)))
            subprocess.run(
                ["ffmpeg", "-nostdin", "-v", "error", "-y", "-ss", start, "-t", "1", "-i", src, out], check=True
            )
            if os.path.getsize(out) < 170000:  # less than 1 s of 44.1 kHz stereo: past a piece's end
                os.remove(out)
            elif k % 2:
                ogg = out[:-4] + ".ogg"
                subprocess.run(
                    ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", out, "-c:a", "libvorbis", ogg], check=True
                )
                os.remove(out)
        open(os.path.join(clips, ".complete"), "w").close()
    files = sorted(os.path.join(clips, f) for f in os.listdir(clips) if f.endswith((".wav", ".ogg")))
    from audiodb.analysis.heap import retain_freed_memory

    retain_freed_memory()  # as in the scan's workers: no page faults per file
    with tempfile.TemporaryDirectory() as tmp:
        for p in files[:3]:  # warm-up: imports, filters
            embed_file(p, extended=True, clip_envelope=True)
        without, with_, alone = [], [], []
        for _ in range(rounds):
            for p in files:
                t = time.process_time()
                embed_file(p, extended=True)
                without.append(time.process_time() - t)
                t = time.process_time()
                embed_file(p, extended=True, clip_envelope=True)
                with_.append(time.process_time() - t)
                y = load(p).y
                t = time.process_time()
                clip_envelope_of(y)
                alone.append(time.process_time() - t)
        a, b, e = (1000 * statistics.median(x) for x in (without, with_, alone))
        print(f"\nscan cost per 1-s clip ({len(files)} clips: wav and Vorbis, {rounds} rounds, CPU ms, median):")
        print(f"  embed_file without envelope {a:.2f} ms, with {b:.2f} ms: +{b - a:.2f} ms ({(b - a) / a:+.1%})")
        print(f"  the envelope alone {e:.2f} ms ({e / a:.1%} of the analysis)")

        db = os.path.join(tmp, "lib.duckdb")
        t = time.monotonic()
        Library(db).scan([clips], workers=2)
        print(f"  scan of them: {time.monotonic() - t:.1f} s wall")
        con = duckdb.connect(db, read_only=True)
        rows, raw = con.execute("SELECT count(*), sum(octet_length(envelope)) FROM clip_envelopes").fetchone()
        con.close()
        sizes = []
        for with_rows in (False, True):
            path = os.path.join(tmp, f"copy{int(with_rows)}.duckdb")
            out = duckdb.connect(path)
            out.execute(f"ATTACH '{db}' AS src (READ_ONLY)")
            out.execute(
                "CREATE TABLE clip_envelopes (track_id BIGINT PRIMARY KEY, version VARCHAR NOT NULL, "
                "frames INTEGER NOT NULL, bands SMALLINT NOT NULL, envelope BLOB NOT NULL)"
            )
            if with_rows:
                out.execute("INSERT INTO clip_envelopes SELECT * FROM src.clip_envelopes")
            out.execute("DETACH src")
            out.execute("CHECKPOINT")
            out.close()
            sizes.append(os.path.getsize(path))
        print(
            f"  stored: {rows} envelopes, raw {raw / rows:.0f} B each; the table alone in a fresh file "
            f"{(sizes[1] - sizes[0]) / rows:.0f} B a clip (DuckDB blocks of 256 KB: read at hundreds of clips)"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="/tmp/bench-short-duplicates")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clips", type=int, default=400)
    ap.add_argument("--music", default=DEFAULT_AUDIO_DIR)
    ap.add_argument("--only", default="1,2")
    a = ap.parse_args()
    if "1" in a.only:
        part1(a.work, a.rounds)
    if "2" in a.only:
        part2(a.work, a.music, a.clips, max(1, a.rounds - 1))
    _ = np


if __name__ == "__main__":
    main()
