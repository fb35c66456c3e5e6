"""Segments measured on real sounds (issue #14 item 8): moment retrieval and call-type clustering.

    python benchmarks/bench_segment_quality.py [SOUNDS_DIR] [--files 6] [--minutes 4] [--per-file 3]
                                               [--seed 0] [--hdbscan]

Builds ``--files`` long recordings of background noise (brown noise, pink noise and a wind-like
noise whose loudness drifts, in turn; about -40 dBFS) and places real short sounds of Debian's
sound-theme-freedesktop (:data:`TYPES`, decoded at 22.05 kHz mono) ``--per-file`` times each per
recording at random times (at least 2 s apart) and gains (the sound's RMS 0, 6, 12 or 18 dB above
the background's). Every recording is cut into the ``calls`` segmentation's windows (1.0/0.5 s)
with :func:`audiodb.analysis.segments.segment_signal`, as a scan computes them, once per dB
reference (``absolute``, the default, and ``file``).

Retrieval, as ``similar --segments PATH@START-END`` does it: each placed sound is a query (its
active windows that overlap it; best over them), every active window of every recording is scored
(the query's own moment left out), windows merged into moments
(:func:`audiodb.query.moments.merge_moments`); precision@5 counts returned moments that overlap a
placed sound of the same type, over the sounds that have an active window (the share that do is
"detected"; the others cannot be queried by a moment). Chance: the share of the searched windows
that overlap a sound of the query's type.

Clustering, as ``cluster --segments`` does it: the active windows z-scored (and group-weighted
for ``blocks`` / ``extended``), k-means with k = the number of labels among them (the types and
"background") and HDBSCAN (the notebook's 4 / 2, in its default reduced space), through
:func:`audiodb.query.cluster.cluster_vectors`; adjusted Rand index against each window's label
(the type of the sound that overlaps it most, else background). Chance ARI is 0.

Choices compared: feature subsets (the notebook's 180, 180 + spectral contrast, the full 220),
the space's metrics (:data:`audiodb.query.space.METRICS`) and the dB reference.
"""

from __future__ import annotations

import argparse
import time

import _common  # noqa: F401  (before numpy: one BLAS thread)
import numpy as np

SOUNDS = "/work/bench-audio/usr/share/sounds/freedesktop/stereo"
SR = 22050
TYPES = (
    "bell",
    "camera-shutter",
    "complete",
    "dialog-warning",
    "message",
    "phone-outgoing-calling",
    "trash-empty",
    "window-attention",
)
GAINS_DB = (0.0, 6.0, 12.0, 18.0)
LEVEL = 0.01  # background RMS, -40 dBFS


def background(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    white = rng.standard_normal(n)
    if kind == "brown":
        y = np.cumsum(white)
        y -= np.convolve(y, np.ones(2205) / 2205, mode="same")  # no drift below 10 Hz
    elif kind == "pink":
        spec = np.fft.rfft(white)
        f = np.fft.rfftfreq(n, 1 / SR)
        spec[1:] /= np.sqrt(f[1:])
        spec[0] = 0
        y = np.fft.irfft(spec, n)
    else:  # wind: low-passed, loudness drifting over seconds
        red = np.convolve(white, np.ones(8) / 8, mode="same") + 0.3 * white
        y = red * (1.0 + 0.4 * np.sin(2 * np.pi * np.arange(n) / SR / rng.uniform(4, 9)))
    return y / np.sqrt(np.mean(y**2)) * LEVEL


def load_sounds(folder: str) -> dict[str, np.ndarray]:
    from audiodb.analysis.decode import load

    out = {}
    for name in TYPES:
        y = load(f"{folder}/{name}.oga", sr=SR).y.astype(np.float64)
        nz = np.flatnonzero(np.abs(y) > 1e-4 * np.abs(y).max())
        out[name] = y[nz[0] : nz[-1] + 1]
    return out


def build(sounds, n_files: int, minutes: float, per_file: int, seed: int = 0):
    """``[(y, events)]``: events are (type, start_sec, end_sec, gain_db)."""
    rng = np.random.default_rng(seed)
    out = []
    kinds = ("brown", "pink", "wind")
    n = int(minutes * 60 * SR)
    for k in range(n_files):
        y = background(kinds[k % 3], n, rng)
        names = [t for t in TYPES for _ in range(per_file)]
        rng.shuffle(names)
        slot = (n / SR - 4.0) / len(names)  # one slot per sound, at least 2 s between sounds
        events = []
        for i, name in enumerate(names):
            s = sounds[name]
            at = 2.0 + i * slot + rng.uniform(0, max(0.0, slot - len(s) / SR - 2.0))
            gain = float(rng.choice(GAINS_DB))
            c = s / np.sqrt(np.mean(s**2)) * LEVEL * 10 ** (gain / 20)
            a = int(at * SR)
            y[a : a + len(c)] += c
            events.append((name, at, at + len(c) / SR, gain))
        out.append((np.clip(y, -1, 1).astype(np.float32), events))
    return out


def windows(recordings, db_reference: str):
    """Every window of every recording: file index, start/end ms, active, vector, label."""
    from audiodb.analysis.segments import SegmentParams, segment_signal

    seg = SegmentParams(window_ms=1000, hop_ms=500, db_reference=db_reference)
    cols = {k: [] for k in ("file", "start", "end", "active", "vectors", "label")}
    for f, (y, events) in enumerate(recordings):
        rows = segment_signal(y, [seg])[seg.id]
        cols["file"].append(np.full(len(rows), f))
        cols["start"].append(rows.start_ms)
        cols["end"].append(rows.end_ms)
        cols["active"].append(rows.active)
        cols["vectors"].append(rows.vectors)
        lab = []
        for a, b in zip(rows.start_ms / 1000, rows.end_ms / 1000):
            best = max(((min(b, e1) - max(a, e0), name) for name, e0, e1, _ in events), default=(0, None))
            lab.append(best[1] if best[0] > 0 else "background")
        cols["label"].append(np.array(lab, dtype=object))
    out = {k: np.concatenate(v) for k, v in cols.items()}
    return out, seg.feature_names()


SUBSETS = {"180": lambda names: 180, "180+contrast": lambda names: 194, "220": lambda names: len(names)}


def retrieval(W, names, recordings, metric: str, dims: int):
    from audiodb.query.moments import merge_moments
    from audiodb.query.space import Space

    act = np.flatnonzero(W["active"])
    X = np.ascontiguousarray(W["vectors"][act, :dims])
    file, start, end = W["file"][act], W["start"][act], W["end"][act]
    space = Space(np.arange(len(act)), X, metric, names[:dims])
    per_type: dict[str, list[float]] = {t: [] for t in TYPES}
    chance: dict[str, list[float]] = {t: [] for t in TYPES}
    found_queries = 0
    for f, (_y, events) in enumerate(recordings):
        for name, e0, e1, _gain in events:
            own = (file == f) & (start < e1 * 1000) & (end > e0 * 1000)
            if not own.any():  # no active window on this sound: not a query (see "detected")
                continue
            found_queries += 1
            best = space.min_distances(X[own])
            best[own] = np.inf
            moments = merge_moments(file, start, end, best, 5)

            def same(fi, a, b):
                return any(n2 == name and a < x1 * 1000 and b > x0 * 1000 for n2, x0, x1, _ in recordings[fi][1])

            hits = [same(m.track_id, m.start_ms, m.end_ms) for m in moments]
            per_type[name].append(float(np.mean(hits)) if hits else 0.0)
            rel = [same(fi, a, b) for fi, a, b in zip(file[~own], start[~own], end[~own])]
            chance[name].append(float(np.mean(rel)))
    return per_type, chance


def clustering(W, names, metric: str, dims: int, method: str) -> float:
    from sklearn.metrics import adjusted_rand_score

    from audiodb.query.cluster import cluster_vectors
    from audiodb.query.space import group_scale

    act = np.flatnonzero(W["active"])
    labels = W["label"][act]
    X = W["vectors"][act, :dims].astype(np.float64)
    weights = group_scale(names[:dims]) if metric in ("blocks", "extended") else None
    if metric == "cosine":
        from audiodb.query.space import standardize

        Z = standardize(X)
        X = Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)  # unit rows: k-means on the sphere
    k = len(set(labels))
    kw = {"k": k} if method == "kmeans" else {}
    run = cluster_vectors(X, method=method, weights=weights, **kw)
    return float(adjusted_rand_score(labels, run.labels))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sounds", nargs="?", default=SOUNDS)
    ap.add_argument("--files", type=int, default=6)
    ap.add_argument("--minutes", type=float, default=4.0)
    ap.add_argument("--per-file", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0, help="of the placements, gains and noise")
    ap.add_argument("--hdbscan", action="store_true", help="also HDBSCAN (slower: UMAP)")
    args = ap.parse_args()
    from audiodb.query.space import METRICS

    t0 = time.perf_counter()
    sounds = load_sounds(args.sounds)
    recordings = build(sounds, args.files, args.minutes, args.per_file, args.seed)
    n_events = sum(len(e) for _, e in recordings)
    print(
        f"{args.files} recordings x {args.minutes:g} min (brown / pink / wind noise at -40 dBFS), "
        f"{len(TYPES)} freedesktop sounds x {args.files * args.per_file} placements = {n_events} sounds at "
        f"+{'/'.join(f'{g:g}' for g in GAINS_DB)} dB; calls windows (1.0/0.5 s); {_common.machine()}",
        flush=True,
    )
    rows, type_rows = [], {}
    for ref in ("absolute", "file"):
        W, names = windows(recordings, ref)
        act = W["active"]
        on_sound = W["label"] != "background"
        detected = {t: [] for t in TYPES}
        for f, (_y, events) in enumerate(recordings):
            for name, e0, e1, _g in events:
                on = (W["file"] == f) & (W["start"] < e1 * 1000) & (W["end"] > e0 * 1000)
                detected[name].append(bool(W["active"][on].any()))
        print(
            f"db_reference={ref}: {len(act)} windows, {int(act.sum())} active; of the windows on a sound "
            f"{act[on_sound].mean():.2f} active, of the others {act[~on_sound].mean():.2f}; sounds detected "
            f"(an active window): {np.mean([v for vs in detected.values() for v in vs]):.2f} ("
            + ", ".join(f"{t} {np.mean(v):.2f}" for t, v in detected.items())
            + ")",
            flush=True,
        )
        for subset, dims_of in SUBSETS.items():
            dims = dims_of(names)
            for metric in METRICS:
                if metric == "extended" and dims == 180:
                    continue  # the same as blocks on the notebook's 180
                per_type, chance = retrieval(W, names, recordings, metric, dims)
                p = np.mean([v for vs in per_type.values() for v in vs])  # per query
                c = np.mean([v for vs in chance.values() for v in vs])
                ari_k = clustering(W, names, metric, dims, "kmeans")
                ari_h = clustering(W, names, metric, dims, "hdbscan") if args.hdbscan else float("nan")
                rows.append([ref, subset, metric, f"{p:.3f}", f"{c:.3f}", f"{ari_k:.3f}", f"{ari_h:.3f}"])
                type_rows[(ref, subset, metric)] = (
                    {t: np.mean(v) if v else float("nan") for t, v in per_type.items()},
                    {t: np.mean(v) if v else float("nan") for t, v in chance.items()},
                )
                print("  " + "  ".join(rows[-1]), flush=True)
    print()
    print(
        _common.table(
            ["dB reference", "features", "metric", "P@5", "chance", "ARI k-means", "ARI HDBSCAN"], rows, "lllrrrr"
        )
    )
    best = max(rows, key=lambda r: float(r[3]))
    print(f"\nbest P@5: {' / '.join(best[:3])} {best[3]}")
    for key in {("absolute", "220", "extended"), tuple(best[:3])}:
        p, c = type_rows[key]
        print(f"\nper type, {' / '.join(key)}:")
        print(_common.table(["type", "P@5", "chance"], [[t, f"{p[t]:.3f}", f"{c[t]:.3f}"] for t in TYPES]))
    print(f"\n{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
