"""Per-file, single-process extraction speed: the notebook vs audiodb, and parity.

    python benchmarks/bench_extract.py [AUDIO_DIR] [--limit N] [--notebook-limit M] [--seed S]

On the same files, in the same run and process, times per file:
  (a) notebook  audiodb.analysis.reference.extract_acoustic_embedding (librosa, verbatim)
  (b) audiodb   audiodb.analysis.embed.embed_file (streaming decode + soxr + one STFT)
  (b') audiodb+extended  embed_file(extended=True): the notebook's 180 and the second
               feature set's 42 from the same decode and STFT, as every scan computes them
  (c) decode+resample  audiodb.analysis.decode.load(path, sr=22050)
  (d) decode only      soundfile blocks(65536, float32), no resampling
  (e) features only    audiodb.analysis.notebook.embedding(y) on (c)'s waveform
  (f) librosa.load     the notebook's own decode+resample step, for reference
Goals: (a)/(b) >= 3x per core; (b)/(c) <= 1.5x. (b')/(b) is what the second set costs.
Parity: max relative difference per feature between (a) and (b) across files.

BLAS/OpenMP pools are pinned to one thread (set below, before numpy is
imported), so these are per-core figures. Each file is read once beforehand
so no timed call pays for the disk; the methods run in a seeded random order
per file so none is systematically first; one warm-up call of each (imports,
caches) is made before timing.
"""

import os

# Per-core measurement: one BLAS/OpenMP thread. Must precede any numpy import.
for _k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_k] = "1"

import argparse  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
from _common import DEFAULT_AUDIO_DIR, audio_files, machine, table, warm_page_cache  # noqa: E402


def decode_only(path: str) -> int:
    n = 0
    with sf.SoundFile(path) as f:
        for block in f.blocks(65536, dtype="float32"):
            n += len(block)
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("audio_dir", nargs="?", default=DEFAULT_AUDIO_DIR)
    ap.add_argument("--limit", type=int, default=None, help="use only N files (seeded sample; default all)")
    ap.add_argument(
        "--notebook-limit",
        type=int,
        default=None,
        help="time the notebook (and check parity) on only the first M of those files",
    )
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from audiodb.analysis import decode, notebook
    from audiodb.analysis import embed as extract
    from audiodb.analysis.params import FEATURE_NAMES
    from audiodb.analysis.reference import extract_acoustic_embedding, tolerance

    rng = random.Random(args.seed)
    files = audio_files(args.audio_dir)
    rng.shuffle(files)
    if args.limit:
        files = files[: args.limit]
    n_nb = len(files) if args.notebook_limit is None else min(args.notebook_limit, len(files))
    nbytes = warm_page_cache(files)
    durations = [sf.info(p).duration for p in files]
    print(
        f"# bench_extract: {len(files)} files, {sum(durations):.0f} s of audio, {nbytes / 1e6:.0f} MB, "
        f"from {args.audio_dir}"
    )
    print(f"# notebook timed on {n_nb} of them; seed {args.seed}")
    print(f"# {machine()}")

    state: dict = {}

    def run_features(path: str):
        return notebook.embedding(state["y"])

    def run_load(path: str):
        d = decode.load(path, sr=22050)
        state["y"] = d.y
        return d

    import librosa

    methods = {
        "notebook": lambda p: extract_acoustic_embedding(p)["embedding"],
        "librosa.load": lambda p: librosa.load(p, sr=22050, mono=True)[0],
        "audiodb": lambda p: extract.embed_file(p)[0],
        "audiodb+extended": lambda p: extract.embed_file(p, extended=True)[0],
        "decode+resample": run_load,
        "decode only": decode_only,
    }

    # Warm-up: first calls import librosa/numba/soxr and build caches.
    shortest = files[int(np.argmin(durations))]
    for fn in methods.values():
        fn(shortest)
    run_features(shortest)

    names = list(methods) + ["features only"]
    wall = {k: [] for k in names}
    cpu = {k: [] for k in names}
    secs = {k: [] for k in names}
    vec_nb, vec_db = [], []
    t_run = time.perf_counter()
    for i, (path, dur) in enumerate(zip(files, durations)):
        order = list(methods)
        if i >= n_nb:
            order.remove("notebook")
            order.remove("librosa.load")
        rng.shuffle(order)
        if "features only" not in order:
            # features only needs (c)'s waveform: run it right after decode+resample.
            order.insert(order.index("decode+resample") + 1, "features only")
        for name in order:
            fn = run_features if name == "features only" else methods[name]
            c0, w0 = time.process_time(), time.perf_counter()
            out = fn(path)
            w1, c1 = time.perf_counter(), time.process_time()
            wall[name].append(w1 - w0)
            cpu[name].append(c1 - c0)
            secs[name].append(dur)
            if name == "notebook":
                vec_nb.append(np.asarray(out, dtype=np.float64))
            elif name == "audiodb":
                vec_db.append(np.asarray(out, dtype=np.float64))
        state.clear()
        print(
            f"  [{i + 1}/{len(files)}] {os.path.basename(path)} ({dur:.0f} s) "
            + " ".join(f"{k}={wall[k][-1]:.2f}s" for k in names if len(wall[k]) == i + 1),
            file=sys.stderr,
            flush=True,
        )
    t_run = time.perf_counter() - t_run

    # --- speed table
    rows = []
    for k in names:
        w, c, s = sum(wall[k]), sum(cpu[k]), sum(secs[k])
        rows.append(
            [k, str(len(wall[k])), f"{s:.0f}", f"{w:.2f}", f"{c:.2f}", f"{s / w:.0f}", f"{1e3 * w / len(wall[k]):.0f}"]
        )
    print()
    print(table(["method", "files", "audio s", "wall s", "CPU s", "audio s/s", "ms/file"], rows))

    # --- ratios, on matching file sets
    def tot(k, which=wall, upto=None):
        return sum(which[k][:upto] if upto else which[k])

    print()
    ratio_rows = [
        [
            "notebook / audiodb (goal >= 3x)",
            f"{tot('notebook') / tot('audiodb', upto=n_nb):.2f}x",
            f"{tot('notebook', cpu) / tot('audiodb', cpu, n_nb):.2f}x",
        ],
        [
            "notebook / audiodb+extended (what a scan computes)",
            f"{tot('notebook') / tot('audiodb+extended', upto=n_nb):.2f}x",
            f"{tot('notebook', cpu) / tot('audiodb+extended', cpu, n_nb):.2f}x",
        ],
        [
            "audiodb+extended / audiodb: the second set's cost",
            f"{tot('audiodb+extended') / tot('audiodb'):.2f}x",
            f"{tot('audiodb+extended', cpu) / tot('audiodb', cpu):.2f}x",
        ],
        [
            "audiodb+extended / (decode+resample)",
            f"{tot('audiodb+extended') / tot('decode+resample'):.2f}x",
            f"{tot('audiodb+extended', cpu) / tot('decode+resample', cpu):.2f}x",
        ],
        [
            "audiodb / (decode+resample) (goal <= 1.5x)",
            f"{tot('audiodb') / tot('decode+resample'):.2f}x",
            f"{tot('audiodb', cpu) / tot('decode+resample', cpu):.2f}x",
        ],
        [
            "notebook / (decode+resample): the ceiling while decoding costs the same",
            f"{tot('notebook') / tot('decode+resample', upto=n_nb):.2f}x",
            f"{tot('notebook', cpu) / tot('decode+resample', cpu, n_nb):.2f}x",
        ],
        [
            "librosa.load / (decode+resample)",
            f"{tot('librosa.load') / tot('decode+resample', upto=n_nb):.2f}x",
            f"{tot('librosa.load', cpu) / tot('decode+resample', cpu, n_nb):.2f}x",
        ],
        [
            "(decode+resample) / decode only",
            f"{tot('decode+resample') / tot('decode only'):.2f}x",
            f"{tot('decode+resample', cpu) / tot('decode only', cpu):.2f}x",
        ],
        [
            "features only / (decode+resample)",
            f"{tot('features only') / tot('decode+resample'):.2f}x",
            f"{tot('features only', cpu) / tot('decode+resample', cpu):.2f}x",
        ],
    ]
    if n_nb < len(files):
        ratio_rows[0][0] += f" [on the {n_nb} notebook files]"
    print(table(["ratio", "wall", "CPU"], ratio_rows))
    per_file = np.array(wall["notebook"]) / np.array(wall["audiodb"][:n_nb])
    print(
        f"notebook/audiodb per file (wall): min {per_file.min():.2f}x, median {np.median(per_file):.2f}x, "
        f"max {per_file.max():.2f}x"
    )

    # --- parity
    a, b = np.stack(vec_nb), np.stack(vec_db[:n_nb])
    diff = np.abs(a - b)
    rel = diff / np.maximum(np.abs(a), 1e-12)
    per_feature = rel.max(axis=0)
    worst = int(np.argmax(per_feature))
    wf = int(np.argmax(rel[:, worst]))
    rtol, atol = tolerance(FEATURE_NAMES)
    excess = diff / (rtol * np.abs(a) + atol)  # > 1: outside the parity contract
    over = (excess > 1).any(axis=0)
    print()
    print(f"parity over {n_nb} files x 180 features:")
    print(
        f"  max relative difference: {per_feature.max():.2e} at {FEATURE_NAMES[worst]} "
        f"(notebook {a[wf, worst]:.6g}, audiodb {b[wf, worst]:.6g}, file {os.path.basename(files[wf])})"
    )
    top = np.argsort(per_feature)[::-1][:5]
    print("  worst 5 features (max rel diff): " + ", ".join(f"{FEATURE_NAMES[j]} {per_feature[j]:.1e}" for j in top))
    print(f"  median over features of the max rel diff: {np.median(per_feature):.1e}")
    print(
        f"  features outside the contract (1e-4 rel + abs floor, reference.tolerance): {int(over.sum())}"
        + (f" -> {', '.join(FEATURE_NAMES[j] for j in np.flatnonzero(over)[:10])}" if over.any() else "")
    )
    print(f"\n# total run {t_run:.0f} s")


if __name__ == "__main__":
    main()
