"""Which metric ranks best on real labelled music: `audiodb eval` on wesnoth excerpts.

    python benchmarks/bench_eval.py [AUDIO_DIR] [--work DIR] [--excerpt S] [--min-length S] [--no-demo]

Builds (once; reused while complete) a labelled corpus: every track of AUDIO_DIR
(default: the wesnoth music, see fetch_audio.sh) at least --min-length seconds
long (40) is cut into consecutive --excerpt-second windows (20) from its start,
each written as a 16-bit wav at the track's own rate and channels into
WORK/corpus/<piece>/<piece>_<k>.wav: 363 excerpts of 35 pieces. It indexes them
with `audiodb scan` (a subprocess; timed), then runs
`audiodb eval --label-from folder --metric all --summary --format json` and prints
precision@5 and 1-NN accuracy per metric, with chance precision (the share of
other tracks that have the query's label, averaged over queries). Unless
--no-demo, it does the same for `audiodb demo -n 8` (56 synthesized sounds, 7 kinds).

It then repeats the evaluation of the `extended` metric leaving out one part of
the second feature set at a time (chroma, contrast, onset and tempo), to show
what each contributes; and clusters the excerpts with `audiodb cluster`
(k-means with k = the number of pieces, and HDBSCAN with its defaults) on the
notebook's features and on `--features extended`, scoring each partition
against the pieces (adjusted Rand index; HDBSCAN's noise counts as one more
cluster). Figures, not assertions; README "Similarity" and "Clustering" quote them.
"""

from _common import DEFAULT_AUDIO_DIR, audio_files, machine, table  # noqa: I001  (pins BLAS threads)

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402


def build_corpus(audio_dir: str, dest: str, excerpt: float, min_length: float) -> tuple[int, int]:
    """Write the excerpts; returns (pieces, excerpts). Skips work already done."""
    pieces = excerpts = 0
    for src in audio_files(audio_dir):
        info = sf.info(src)
        if info.duration < min_length:
            continue
        name = os.path.splitext(os.path.basename(src))[0]
        folder = os.path.join(dest, name)
        n = int(info.frames // int(excerpt * info.samplerate))
        pieces += 1
        excerpts += n
        paths = [os.path.join(folder, f"{name}_{k}.wav") for k in range(n)]
        if all(os.path.exists(p) for p in paths):
            continue
        os.makedirs(folder, exist_ok=True)
        y, sr = sf.read(src, dtype="float32", always_2d=True)
        step = int(excerpt * sr)
        for k, path in enumerate(paths):
            tmp = path + ".part.wav"
            sf.write(tmp, y[k * step : (k + 1) * step], sr, subtype="PCM_16")
            os.replace(tmp, path)
    return pieces, excerpts


def audiodb(*args: str) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "audiodb.cli", *args], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"audiodb {' '.join(args)} failed:\n{out.stderr}")
    return out


def evaluate(db: str, root: str, label: str) -> list[list[str]]:
    t = time.perf_counter()
    audiodb("--db", db, "scan", root)
    scan_s = time.perf_counter() - t
    rows = json.loads(
        audiodb("--db", db, "eval", "--label-from", "folder", "--metric", "all", "--summary", "--format", "json").stdout
    )
    labels = [os.path.basename(os.path.dirname(p)) for p in audio_files(root)]
    _, counts = np.unique(labels, return_counts=True)
    n = counts.sum()
    chance = float((counts * (counts - 1)).sum() / (n * (n - 1)))
    print(
        f"\n{label}: {n} files, {len(counts)} labels, indexed in {scan_s:.1f} s "
        f"(nothing to do if already indexed); chance precision {chance:.3f}"
    )
    out = [[r["metric"], f"{r['precision_at_k']:.3f}", f"{r['accuracy_1nn']:.3f}"] for r in rows]
    print(table(["metric", f"precision@{rows[0]['k']}", "1-NN accuracy"], out))
    return out


def ablation(db: str) -> None:
    """The extended metric without one part of the second feature set at a time."""
    from audiodb import Library
    from audiodb.query.evaluate import evaluate_vectors, labels_from_folders
    from audiodb.store.vectors import VectorSet, load_tracks

    lib = Library(db)
    with lib.connect() as con:
        tracks = load_tracks(con, lib.params, lib.extended)
        labels = labels_from_folders(con.execute("SELECT track_id, path FROM track_files").fetchall())
    names = tracks.feature_names
    parts = {
        "all 42": (),
        "without chroma": ("chroma_",),
        "without contrast": ("contrast_",),
        "without onset and tempo": ("onset_", "tempo_bpm", "pulse_clarity"),
    }
    rows = []
    for label, drop in parts.items():
        keep = [i for i, n in enumerate(names) if not n.startswith(drop or ("\0",))]
        sub = VectorSet(
            tracks.track_ids,
            np.ascontiguousarray(tracks.vectors[:, keep]),
            tracks.duration_sec,
            [names[i] for i in keep],
            tracks.notebook_dims,
        )
        r = evaluate_vectors(sub, labels, ["extended"], 5).rows[0]
        rows.append([label, f"{r['precision_at_k']:.3f}", f"{r['accuracy_1nn']:.3f}"])
    print("\nextended metric, leaving out one part of the second feature set:")
    print(table(["second feature set", "precision@5", "1-NN accuracy"], rows))


def cluster_scores(db: str) -> None:
    """ARI of `audiodb cluster` partitions against the pieces, notebook vs extended features."""
    from sklearn.metrics import adjusted_rand_score

    from audiodb import Library

    lib = Library(db)
    pieces = {tid: os.path.basename(os.path.dirname(p)) for tid, p in lib.sql("SELECT track_id, path FROM tracks").rows}
    k = len(set(pieces.values()))
    rows = []
    for features in ("notebook", "extended"):
        for method, extra in (("kmeans", ["--k", str(k)]), ("hdbscan", [])):
            t = time.perf_counter()
            audiodb("--db", db, "cluster", "--method", method, "--features", features, *extra)
            seconds = time.perf_counter() - t
            got = lib.sql("SELECT track_id, cluster FROM clusters WHERE method = ?", [method]).rows
            truth = [pieces[tid] for tid, _ in got]
            labels = [c for _, c in got]
            noise = sum(c == -1 for c in labels) / len(labels)
            rows.append(
                [
                    features,
                    method + (f" k={k}" if method == "kmeans" else " (umap 5)"),
                    f"{adjusted_rand_score(truth, labels):.3f}",
                    f"{len(set(labels) - {-1})}",
                    f"{noise:.0%}",
                    f"{seconds:.1f}",
                ]
            )
    print("\naudiodb cluster on the excerpts, scored against the pieces:")
    print(table(["features", "method", "ARI", "clusters", "noise", "seconds"], rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("audio_dir", nargs="?", default=DEFAULT_AUDIO_DIR)
    ap.add_argument("--work", default="/tmp/audiodb-eval", help="corpus and libraries go here")
    ap.add_argument("--excerpt", type=float, default=20.0, help="seconds per excerpt")
    ap.add_argument("--min-length", type=float, default=40.0, help="shorter tracks are left out")
    ap.add_argument("--no-demo", action="store_true")
    args = ap.parse_args()
    print(f"# bench_eval; {machine()}")
    corpus = os.path.join(args.work, "corpus")
    t = time.perf_counter()
    pieces, excerpts = build_corpus(args.audio_dir, corpus, args.excerpt, args.min_length)
    print(
        f"# corpus: {excerpts} excerpts of {args.excerpt:g} s from {pieces} pieces of at least "
        f"{args.min_length:g} s, in {corpus} ({time.perf_counter() - t:.1f} s)"
    )
    db = os.path.join(args.work, "wesnoth.duckdb")
    evaluate(db, corpus, "wesnoth excerpts, labelled by piece")
    ablation(db)
    cluster_scores(db)
    if not args.no_demo:
        demo = os.path.join(args.work, "demo")
        if not os.path.isdir(demo):
            audiodb("demo", "-n", "8", demo)
        evaluate(os.path.join(args.work, "demo.duckdb"), demo, "audiodb demo -n 8, labelled by kind")


if __name__ == "__main__":
    main()
