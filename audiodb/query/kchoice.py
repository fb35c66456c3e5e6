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
    "silhouette_values",
    "tie_note",
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


def silhouette_values(Y: np.ndarray, labels: np.ndarray) -> np.ndarray | None:
    """Each track's silhouette (no noise here), whose mean is :func:`silhouette`; None when it is undefined.

    Above 5,000 tracks, those of the seeded sample :func:`silhouette` uses (the
    same tracks for every labelling of ``Y``, so two labellings compare track by track).
    """
    k = len(set(labels.tolist()))
    if k < 2 or k >= len(labels):
        return None
    from sklearn.metrics import silhouette_samples

    if len(labels) > SILHOUETTE_SAMPLE:  # the sample silhouette_score(..., random_state=SEED) draws
        pick = np.random.RandomState(SEED).permutation(len(labels))[:SILHOUETTE_SAMPLE]
        Y, labels = Y[pick], labels[pick]
    return silhouette_samples(Y, labels)


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


def choose_k(Y: np.ndarray, ks: range) -> tuple[int, dict[int, float], list[int]]:
    """The k in ``ks`` with the best silhouette, every k's score, and the k that tie with it.

    A k ties with the best when its silhouette is below the best's by at most one
    standard error of the difference, paired over the tracks (each track's
    silhouette under both): on these tracks the two cannot be told apart.
    Above 20,000 tracks the candidates are fitted on a seeded sample of 20,000,
    and scored on 5,000 of those.
    """
    from sklearn.cluster import KMeans

    if len(Y) > SAMPLE:
        Y = Y[np.random.default_rng(SEED).choice(len(Y), SAMPLE, replace=False)]
    scores, values = {}, {}
    for k in ks:
        labels = KMeans(n_clusters=k, random_state=SEED, n_init=10).fit_predict(Y)
        each = silhouette_values(Y, labels)
        scores[k] = -1.0 if each is None else float(np.mean(each))
        if each is not None:
            values[k] = each
    best = max(scores, key=lambda k: (scores[k], -k))
    ties = []
    if best in values:
        for k, each in values.items():
            diff = values[best] - each
            if k != best and diff.mean() <= diff.std(ddof=1) / np.sqrt(len(diff)):
                ties.append(k)
    return best, scores, ties


def tie_note(k: int, ties: list[int]) -> str | None:
    """A line for the run's advice when other k score as well as the chosen one, within the noise."""
    if not ties:
        return None
    others = ", ".join(map(str, ties[:-1])) + (" and " if len(ties) > 1 else "") + str(ties[-1])
    return (
        f"--k auto chose k={k}, but k={others} score within one standard error of it (silhouettes "
        f"paired over the tracks): these tracks do not single out one k. Compare with --k {ties[0]}."
    )


def one_thread(n: int):
    """One thread for k-means and silhouettes on a small library (see :data:`ONE_THREAD`)."""
    if n > ONE_THREAD:
        return contextlib.nullcontext()
    # threadpoolctl limits the thread pools loaded when it is called: import sklearn's k-means and
    # silhouette first, or their OpenMP (and scipy's BLAS) keep every core (measured on the demo:
    # 0.93 s of CPU for the 13 candidate fits instead of 0.08 s).
    import sklearn.cluster  # noqa: F401
    import sklearn.metrics  # noqa: F401
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
