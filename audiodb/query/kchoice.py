"""``--k auto``: which k k-means tries, which it keeps, and what to say about the choice.

The candidates are fitted as the notebook fits k-means (``random_state=42``,
``n_init=10``) and scored by silhouette; sklearn is imported inside the functions.
"""

from __future__ import annotations

import contextlib

import numpy as np

__all__ = [
    "K_AUTO_MAX",
    "K_AUTO_RANGE",
    "ONE_THREAD",
    "choose_k",
    "edge_note",
    "k_auto_range",
    "one_thread",
    "silhouette",
]

SEED = 42  # the notebook's random_state
#: ``--k auto`` tries k from 2 up to the largest of 10 and :func:`k_auto_range`'s library-scaled top.
K_AUTO_RANGE = (2, 10)
#: ... and never more than this many clusters: each candidate is a 10-start k-means and a silhouette.
K_AUTO_MAX = 30
#: Up to this many tracks k-means runs on one thread: sklearn's Lloyd works in chunks of 256
#: samples, so below that more threads cannot help, and on a busy machine their spinning cost
#: 1.5 s of a 0.2 s ``--k auto`` on the demo (measured; the labels are the same).
ONE_THREAD = 256
#: Above this many tracks, ``--k auto`` fits its candidates on a seeded sample of this size...
SAMPLE = 20_000
#: ... and silhouettes are estimated on a seeded sample of this size.
SILHOUETTE_SAMPLE = 5_000


def silhouette(Y: np.ndarray, labels: np.ndarray) -> float | None:
    """Silhouette of the clustered tracks (noise, ``-1``, left out); None when it is undefined.

    Above 5,000 clustered tracks it is estimated on a seeded sample of 5,000.
    """
    mask = labels != -1
    k = len(set(labels[mask].tolist()))
    if k < 2 or k >= mask.sum():
        return None
    from sklearn.metrics import silhouette_score

    n = int(mask.sum())
    sample = SILHOUETTE_SAMPLE if n > SILHOUETTE_SAMPLE else None
    return float(silhouette_score(Y[mask], labels[mask], sample_size=sample, random_state=SEED))


def k_auto_range(n: int) -> range:
    """The k ``--k auto`` tries on ``n`` tracks: 2 up to ``max(10, min(2·√n, n // 3, 30))``, at most ``n - 1``.

    10 (today's top) stays for small libraries, so their runs do not change. Above
    it the top grows with the library: ``2·√n`` is generous against the usual
    ``√(n/2)`` rule of thumb, ``n // 3`` keeps three tracks a cluster on average
    (fewer is not a group), and 30 bounds the cost (each k is a 10-start k-means
    and a silhouette). The demo's 56 tracks of 7 kinds try 2..14 (they tried 2..10
    and chose 10, the top); 28 tracks keep 2..10; 1,000 tracks try 2..30.
    """
    lo, hi = K_AUTO_RANGE
    top = max(hi, min(int(2 * np.sqrt(n)), n // 3, K_AUTO_MAX))
    return range(lo, max(lo, min(top, n - 1)) + 1)


def choose_k(Y: np.ndarray, ks: range) -> tuple[int, dict[int, float]]:
    """The k in ``ks`` with the best silhouette, and every k's score.

    Above 20,000 tracks the candidates are fitted on a seeded sample of 20,000,
    and scored on 5,000 of those.
    """
    from sklearn.cluster import KMeans

    if len(Y) > SAMPLE:
        Y = Y[np.random.default_rng(SEED).choice(len(Y), SAMPLE, replace=False)]
    scores = {}
    for k in ks:
        labels = KMeans(n_clusters=k, random_state=SEED, n_init=10).fit_predict(Y)
        score = silhouette(Y, labels)
        scores[k] = -1.0 if score is None else score
    best = max(scores, key=lambda k: (scores[k], -k))
    return best, scores


def one_thread(n: int):
    """One thread for k-means and silhouettes on a small library (see :data:`ONE_THREAD`)."""
    if n > ONE_THREAD:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def edge_note(k: int, ks: range, n: int) -> str | None:
    """A line for the run's advice when ``--k auto`` chose the smallest or largest k it tried."""
    lo, hi = ks.start, ks.stop - 1
    if lo == hi:
        return None
    if k == hi and hi < n - 1:
        return (
            f"--k auto chose k={k}, the largest it tried ({lo}..{hi}): the library may hold more groups. "
            f"Compare with --k {k + 2} or more (the silhouettes of each run are in cluster_runs)."
        )
    if k == lo:
        return (
            f"--k auto chose k={k}, the smallest it tried ({lo}..{hi}): the tracks may form no clear groups. "
            "Try --method hdbscan, or a larger --k to split them anyway."
        )
    return None
