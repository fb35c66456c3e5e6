"""What the short clips' kept envelopes save (issue 15, item 7).

    python benchmarks/bench_clip_envelopes.py [--work DIR] [--rounds K]

On the corpus of bench_short_duplicates.py (run it first: WORK/lib, WORK/lib.duckdb), K rounds,
each on a fresh copy of the library with no envelope kept: ``audiodb duplicates --format json`` in
a fresh process three times: the first decodes every clip it compares and keeps their envelopes
(``clip_envelopes``), the second and third read them. Prints CPU seconds (the process and its
children, from getrusage) and wall seconds of each, with the ratio first / later; the groups must
be the same every time. Then the bytes kept per clip: the raw envelopes, and the table alone copied
into a fresh DuckDB file (less the empty file). A scan computes no envelope: it pays nothing.
"""

from _common import DEFAULT_AUDIO_DIR  # noqa: F401, I001  (pins BLAS threads)

import argparse  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402


def audiodb() -> list[str]:
    script = os.path.join(os.path.dirname(sys.executable), "audiodb")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "audiodb.cli"]


def timed_duplicates(db: str) -> tuple[float, float, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.monotonic()
    out = subprocess.run([*audiodb(), "--db", db, "duplicates", "--format", "json"], capture_output=True, text=True)
    wall = time.monotonic() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode:
        raise SystemExit(out.stderr)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall, out.stdout


def kept_bytes(db: str, tmp: str) -> None:
    import duckdb

    con = duckdb.connect(db, read_only=True)
    n, raw = con.execute("SELECT count(*), sum(octet_length(envelope)) FROM clip_envelopes").fetchone()
    frames = con.execute(
        "SELECT avg(frames) FROM clip_envelopes c JOIN track_files t USING (track_id) WHERE t.duration_sec < 1.5"
    ).fetchone()[0]
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
        f"kept: {n} envelopes, raw {raw / n:.0f} B each on average ({frames or 0:.0f} frames for a clip under 1.5 s); "
        f"the table alone in a fresh file {(sizes[1] - sizes[0]) / n:.0f} B a clip"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="/tmp/bench-short-duplicates")
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    src = os.path.join(a.work, "lib.duckdb")
    if not os.path.exists(src):
        raise SystemExit(f"{src} is missing: run benchmarks/bench_short_duplicates.py --work {a.work} first")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "lib.duckdb")
        for k in range(a.rounds):
            shutil.copy(src, db)
            import duckdb

            con = duckdb.connect(db)
            con.execute("DELETE FROM clip_envelopes")  # a library whose clips were never compared
            con.close()
            runs = [timed_duplicates(db) for _ in range(3)]
            same = len({out for _, _, out in runs}) == 1
            (c1, w1, _), *later = runs
            c2, w2 = min(c for c, _, _ in later), min(w for _, w, _ in later)
            print(
                f"round {k + 1}: first run (decodes, keeps) {c1:.2f} s CPU / {w1:.2f} s wall; later runs (read) "
                f"{c2:.2f} s CPU / {w2:.2f} s wall: {c1 / c2:.1f}x CPU; same groups every run: {same}"
            )
        kept_bytes(db, tmp)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
