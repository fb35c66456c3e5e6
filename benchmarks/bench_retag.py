"""A library-wide retag rescan against a no-change rescan (issue 15, item 2).

    python benchmarks/bench_retag.py [AUDIO_DIR] [--workers W] [--repeat K] [--no-transcode]

A copy of AUDIO_DIR's audio (default: the 41 Wesnoth tracks, 2.14 h of Ogg
Vorbis), plus MP3, FLAC, M4A and WAV transcodes of its first 4 tracks (so that
every tag writer is exercised; --no-transcode leaves them out), is indexed once
(timed: the full analysis). Then, K times each, interleaved:

- a no-change rescan (nothing touched);
- a retag: every file's title and artist rewritten with mutagen (timed apart:
  that is the tag editor's work, not audiodb's), then a rescan.

Each retag rescan must re-analyse nothing: the vectors' computed_at must be
unchanged and the report's ``retagged`` must equal the number of files. The
figures: seconds (median and best), the ratio of the retag rescan to the
no-change rescan, and to the first (full) scan.
"""

import _common  # noqa: F401, I001  (first: pins BLAS/OpenMP to one thread before numpy loads)

import argparse  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from _common import DEFAULT_AUDIO_DIR, audio_files, machine, table, warm_page_cache  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import duckdb  # noqa: E402

from audiodb import Library  # noqa: E402


def retag(path: str, n: int) -> None:
    import mutagen
    from mutagen import id3

    if path.endswith((".mp3", ".wav")):
        f = mutagen.File(path) if path.endswith(".wav") else None
        tags = id3.ID3(path) if f is None else (f.tags if f.tags is not None else (f.add_tags() or f.tags))
        tags.add(id3.TIT2(encoding=3, text=f"Retagged {n} " + os.path.basename(path)))
        tags.add(id3.TPE1(encoding=3, text=f"Artist {n}"))
        if f is None:
            tags.save(path)
        else:
            f.save()
        return
    f = mutagen.File(path)
    if f.tags is None:
        f.add_tags()
    if type(f.tags).__name__ == "MP4Tags":
        f.tags["©nam"], f.tags["©ART"] = [f"Retagged {n}"], [f"Artist {n}"]
    else:
        f.tags["title"], f.tags["artist"] = [f"Retagged {n}"], [f"Artist {n}"]
    f.save()


def computed_at(db: str) -> dict:
    con = duckdb.connect(db, read_only=True)
    try:
        return dict(con.execute("SELECT track_id, computed_at FROM embeddings").fetchall())
    finally:
        con.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("audio_dir", nargs="?", default=DEFAULT_AUDIO_DIR)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-transcode", action="store_true")
    args = ap.parse_args()
    sources = audio_files(args.audio_dir)
    work = tempfile.mkdtemp(prefix="bench-retag-")
    try:
        lib_dir = os.path.join(work, "music")
        os.makedirs(lib_dir)
        for p in sources:
            shutil.copy(p, lib_dir)
        if not args.no_transcode:
            for i, p in enumerate(sources[:4]):
                for ext, codec in ((".mp3", "libmp3lame"), (".flac", "flac"), (".m4a", "aac"), (".wav", "pcm_s16le")):
                    out = os.path.join(lib_dir, f"transcode{i}{ext}")
                    subprocess.run(
                        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", p, "-t", "60", "-c:a", codec, out],
                        check=True,
                    )
        files = sorted(os.path.join(lib_dir, f) for f in os.listdir(lib_dir))
        size = warm_page_cache(files)
        db = os.path.join(work, "lib.duckdb")
        lib = Library(db)
        t0 = time.perf_counter()
        first = lib.scan([lib_dir], workers=args.workers)
        full = time.perf_counter() - t0
        assert first.added == len(files) and first.failed == 0, first.changes
        stamps = computed_at(db)
        nochange, retag_scan, retag_edit = [], [], []
        for k in range(args.repeat):
            t0 = time.perf_counter()
            r = lib.scan([lib_dir], workers=args.workers)
            nochange.append(time.perf_counter() - t0)
            assert r.unchanged == len(files), r.counts()
            t0 = time.perf_counter()
            for p in files:
                retag(p, k)
            retag_edit.append(time.perf_counter() - t0)
            warm_page_cache(files)
            t0 = time.perf_counter()
            r = lib.scan([lib_dir], workers=args.workers)
            retag_scan.append(time.perf_counter() - t0)
            assert r.retagged == len(files) and r.updated == len(files), (r.counts(), r.retagged)
            assert computed_at(db) == stamps, "a retag re-analysed a track"
        med = statistics.median
        print(machine())
        exts = sorted({os.path.splitext(f)[1] for f in files})
        print(
            f"{len(files)} files ({', '.join(exts)}), {size / 1e6:.0f} MB, workers={args.workers}, repeat={args.repeat}"
        )
        print(
            table(
                ["run", "median s", "best s"],
                [
                    ["first scan (full analysis)", f"{full:.2f}", f"{full:.2f}"],
                    ["no-change rescan", f"{med(nochange):.3f}", f"{min(nochange):.3f}"],
                    ["retag of every file (mutagen, not audiodb)", f"{med(retag_edit):.2f}", f"{min(retag_edit):.2f}"],
                    ["rescan after the retag", f"{med(retag_scan):.2f}", f"{min(retag_scan):.2f}"],
                ],
            )
        )
        print(
            f"retag rescan / no-change rescan: {med(retag_scan) / med(nochange):.1f}x; "
            f"retag rescan / full scan: {med(retag_scan) / full:.3f}; "
            f"re-analysed: 0 of {len(files)} in each of {args.repeat} retags"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
