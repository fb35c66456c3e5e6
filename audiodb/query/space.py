"""Metric spaces over stored vectors: which features weigh what, and one z-score rule.

Every metric starts from the notebook's space: each of the 180 features
z-scored with the mean and standard deviation of the library's own tracks.

========== ===========================================================================
metric     distance
========== ===========================================================================
notebook   euclidean on the z-scores: the notebook's ``StandardScaler`` space as is
cosine     1 - cosine similarity of the z-scored vectors
blocks     euclidean on the z-scores, each feature group (mel means, mel stds, MFCC
           means, MFCC stds, the 12 spectral statistics) weighted by 1/sqrt(its size),
           so the 128 mel numbers no longer outvote the 40 MFCC and 12 spectral ones
extended   as blocks, over the notebook's 180 numbers and the second feature set's 42
           (:mod:`audiodb.analysis.extended`: contrast means, contrast stds, chroma means,
           chroma stds, onset and tempo): ten groups that count alike
========== ===========================================================================

All four are one computation: a centre ``mean``, per-feature weights ``w``
and ``<x, q> = sum_i w_i (x_i - mean_i) (q_i - mean_i)``. Per row the squared
norm is computed once; a query then costs one matrix-vector product over the
stored float32 vectors. Only numpy is imported here: asking for the neighbours
of an indexed track decodes no audio and imports no librosa.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..analysis.params import NOTEBOOK, FeatureParams
from ..errors import UsageError
from ..store.vectors import VectorSet, load_tracks

__all__ = [
    "DEFAULT_METRIC",
    "EXTENDED_METRICS",
    "METRICS",
    "Space",
    "check_metric",
    "group_scale",
    "group_weights",
    "load_space",
    "mean_std",
    "space_for",
    "standardize",
    "unscaled_columns",
    "zscore_stats",
]

#: Metric names, in the order `audiodb eval --metric all` reports them.
METRICS: tuple[str, ...] = ("notebook", "cosine", "blocks", "extended")

#: Metrics that need the second feature set's vectors.
EXTENDED_METRICS = ("extended",)

#: The group of each feature name prefix; features not listed are "spectral".
_GROUP_PREFIXES = (
    "mel_mean",
    "mel_std",
    "mfcc_mean",
    "mfcc_std",
    "contrast_mean",
    "contrast_std",
    "chroma_mean",
    "chroma_std",
)
_RHYTHM = ("onset_mean", "onset_std", "tempo_bpm", "pulse_clarity")

#: The metric ``similar``, ``playlist`` and ``eval`` use unless told otherwise: the
#: best precision@5 with ``audiodb eval`` on the labelled audio in the README
#: (0.520 against 0.369 for blocks and 0.340 for the notebook's space).
DEFAULT_METRIC = "extended"

CHUNK = 8192  # rows per block: a block of float32 vectors stays in cache


def _groups(feature_names: Sequence[str]) -> list[str]:
    """The group of each feature: ``mel_mean``, ``mel_std``, ``mfcc_mean``, ``mfcc_std``,
    ``spectral`` (the notebook's 12 statistics), ``contrast_mean``, ``contrast_std``,
    ``chroma_mean``, ``chroma_std`` or ``rhythm`` (onset and tempo)."""
    out = []
    for name in feature_names:
        head, _, tail = name.rpartition("_")
        if tail.isdigit() and head in _GROUP_PREFIXES:
            out.append(head)
        else:
            out.append("rhythm" if name in _RHYTHM else "spectral")
    return out


def group_weights(feature_names: Sequence[str]) -> np.ndarray:
    """1 / (size of its group) for each feature: each group's squared distance counts alike."""
    groups = _groups(feature_names)
    sizes = {g: groups.count(g) for g in set(groups)}
    return 1.0 / np.array([sizes[g] for g in groups], dtype=float)


def group_scale(feature_names: Sequence[str]) -> np.ndarray:
    """The factor for each z-scored column that gives the groups their weight: ``sqrt(group_weights)``.

    Coordinates scaled by it have the squared distances :class:`Space` computes with
    ``group_weights`` (the weights of squared differences): cluster and the maps scale with this,
    Space weighs with that, and both come from :func:`group_weights` alone.
    """
    return np.sqrt(group_weights(feature_names))


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise UsageError(f"Unknown metric {metric!r}; choose one of {', '.join(METRICS)}.")
    return metric


class Space:
    """The library's vectors in one metric's space, ready for nearest-neighbour queries.

    Parameters
    ----------
    track_ids : np.ndarray, shape (n,), int64
    vectors : np.ndarray, shape (n, d), float32
        Raw embeddings, as stored. Kept, not copied.
    metric : str
        One of :data:`METRICS`.
    feature_names : sequence of str, length d
    stats : dict, optional
        ``mean``, ``std`` and ``sqnorms`` as :meth:`stats` gave them for these very vectors
        and metric (a cache: :mod:`audiodb.store.segment_cache`); not checked beyond shape.
    """

    def __init__(
        self,
        track_ids: np.ndarray,
        vectors: np.ndarray,
        metric: str = DEFAULT_METRIC,
        feature_names: Sequence[str] = NOTEBOOK.feature_names(),
        *,
        stats: dict[str, np.ndarray] | None = None,
    ):
        self.metric = check_metric(metric)
        self.track_ids = np.asarray(track_ids, dtype=np.int64)
        self.vectors = vectors
        n, d = vectors.shape
        if len(feature_names) != d:
            raise ValueError(f"{len(feature_names)} feature names for {d}-dimensional vectors")
        if stats is not None and stats["sqnorms"].shape != (n,):
            raise ValueError("statistics of other vectors")
        self.mean, self.std = (stats["mean"], stats["std"]) if stats is not None else zscore_stats(vectors)
        std = self.std
        weights = 1.0 / std**2
        if metric in ("blocks", "extended"):
            weights *= group_weights(feature_names)
        self.weights = weights
        self._row: dict[int, int] | None = None
        if stats is not None:
            self.sqnorms = stats["sqnorms"]
            return
        # |x - mean|_w^2 of every row, and <x, w * mean> to centre the products.
        self.sqnorms = np.empty(n, dtype=np.float64)
        sw = np.sqrt(weights).astype(np.float32)
        mean32 = self.mean.astype(np.float32)
        for a in range(0, n, CHUNK):
            block = vectors[a : a + CHUNK] - mean32
            block *= sw
            self.sqnorms[a : a + CHUNK] = np.einsum("ij,ij->i", block, block)  # float32: rel. error ~1e-7

    def stats(self) -> dict[str, np.ndarray]:
        """What ``Space(..., stats=)`` takes to skip the passes over the vectors (for a cache)."""
        return {"mean": self.mean, "std": self.std, "sqnorms": self.sqnorms}

    def __len__(self) -> int:
        return len(self.track_ids)

    def row(self, track_id: int) -> int | None:
        """Row of ``track_id``, or None."""
        if self._row is None:
            self._row = {int(t): i for i, t in enumerate(self.track_ids)} if len(self) < 50_000 else {}
        if self._row:
            return self._row.get(int(track_id))
        hit = np.flatnonzero(self.track_ids == track_id)
        return int(hit[0]) if hit.size else None

    def transform(self, raw: np.ndarray) -> np.ndarray:
        """Raw vectors (..., d) into the metric's coordinates (euclidean there; unit rows for cosine)."""
        out = (np.asarray(raw, dtype=np.float64) - self.mean) * np.sqrt(self.weights)
        if self.metric == "cosine":
            norm = np.linalg.norm(out, axis=-1, keepdims=True)
            out = out / np.where(norm > 0, norm, 1.0)
        return out

    def distances(self, raw_query: np.ndarray) -> np.ndarray:
        """Distance from one raw vector to every row, shape (n,), float64.

        One float32 matrix-vector product over the stored vectors, plus O(n).
        """
        q = np.asarray(raw_query, dtype=np.float64) - self.mean
        wq = self.weights * q
        dots = self.vectors @ wq.astype(np.float32)  # <x, w q>
        dots = dots.astype(np.float64)
        dots -= float(self.mean @ wq)  # <x - mean, w q>
        qq = float(q @ wq)
        if self.metric == "cosine":
            denom = np.sqrt(self.sqnorms * qq)
            with np.errstate(invalid="ignore", divide="ignore"):
                sim = np.where(denom > 0, dots / denom, 0.0)
            return 1.0 - sim
        d2 = self.sqnorms + qq - 2.0 * dots
        np.maximum(d2, 0.0, out=d2)
        return np.sqrt(d2, out=d2)

    def min_distances(self, raw_queries: np.ndarray) -> np.ndarray:
        """Each row's distance to the nearest of several raw vectors (q, d), shape (n,), float64:
        :meth:`distances` of each, with one pass over the stored vectors (a matrix product by
        blocks) instead of one per query."""
        Q = np.atleast_2d(np.asarray(raw_queries, dtype=np.float64))
        if len(Q) == 1:
            return self.distances(Q[0])
        C = Q - self.mean
        WQ = C * self.weights  # (q, d)
        shift = WQ @ self.mean  # <mean, w q>
        qq = np.einsum("ij,ij->i", C, WQ)
        W32 = np.ascontiguousarray(WQ.T, dtype=np.float32)
        best = np.empty(len(self.vectors))
        for a in range(0, len(best), 16 * CHUNK):
            dots = (self.vectors[a : a + 16 * CHUNK] @ W32).astype(np.float64)
            dots -= shift
            sq = self.sqnorms[a : a + 16 * CHUNK, None]
            if self.metric == "cosine":
                denom = np.sqrt(sq * qq)
                with np.errstate(invalid="ignore", divide="ignore"):
                    d = 1.0 - np.where(denom > 0, dots / denom, 0.0)
            else:
                d = np.sqrt(np.maximum(sq + qq - 2.0 * dots, 0.0))
            best[a : a + len(d)] = d.min(axis=1)
        return best

    def exact(self, raw_query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Distances from one raw vector to ``rows``, computed directly in float64."""
        q = self.transform(raw_query)
        x = self.transform(self.vectors[rows])
        if self.metric == "cosine":
            return 1.0 - x @ q
        return np.linalg.norm(x - q, axis=-1)

    def nearest(self, raw_query: np.ndarray, k: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Rows and distances of the ``k`` nearest rows allowed by ``mask``, nearest first.

        Ties are broken by track id, so results are deterministic.
        """
        d = self.distances(raw_query)
        if mask is not None:
            d[~mask] = np.inf
        allowed = int(np.count_nonzero(np.isfinite(d)))
        k = min(k, allowed)
        if k <= 0:
            return np.empty(0, dtype=np.int64), np.empty(0)
        # A little slack so near-ties at the cut are ordered by the exact distance.
        m = min(len(d), k + 8)
        rows = np.argpartition(d, m - 1)[:m] if m < len(d) else np.arange(len(d))
        rows = rows[np.isfinite(d[rows])]
        exact = self.exact(raw_query, rows)
        order = np.lexsort((self.track_ids[rows], exact))[:k]
        return rows[order], exact[order]


def unscaled_columns(mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """The one z-score rule: which columns are constant to float32 precision (std at most 1e-6
    of their size) and so are centred but left unscaled (std taken as 1). Stored vectors are
    float32; below that their spread is rounding, not a feature. Used by :class:`Space`
    (similar, duplicates, playlist, eval) and :func:`standardize` (cluster, the maps)."""
    return std <= 1e-6 * (np.abs(mean) + 1e-3)


def zscore_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column mean and population std (as ``StandardScaler``) in float64, by blocks, with the
    :func:`unscaled_columns` given std 1."""
    mean, std = mean_std(x)
    std[unscaled_columns(mean, std)] = 1.0
    return mean, std


def standardize(X: np.ndarray) -> np.ndarray:
    """z-score each column as ``StandardScaler`` does, by the rule of :func:`unscaled_columns`.

    Parameters
    ----------
    X : ndarray, shape (n_tracks, n_features)

    Returns
    -------
    ndarray, float64, same shape. (numpy's two-pass mean and std, in memory: the clusters
    and maps of a library stay bit for bit what they were.)
    """
    X = np.asarray(X, dtype=np.float64)
    mean = X.mean(axis=0)
    std = X.std(axis=0)
    std[unscaled_columns(mean, std)] = 1.0
    return (X - mean) / std


def mean_std(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column mean and population standard deviation (as StandardScaler), in float64.

    One pass by blocks, shifted by the first row: a constant column gets exactly 0,
    and cancellation stays small since the shift is a typical value.
    """
    n = len(x)
    if n == 0:
        return np.zeros(x.shape[1]), np.ones(x.shape[1])
    shift = x[0].astype(np.float64)
    total = np.zeros(x.shape[1])
    squares = np.zeros(x.shape[1])
    for a in range(0, n, CHUNK):
        block = x[a : a + CHUNK].astype(np.float64)
        block -= shift
        total += block.sum(axis=0)
        squares += np.einsum("ij,ij->j", block, block)
    mean = total / n
    return shift + mean, np.sqrt(np.maximum(squares / n - mean * mean, 0.0))


def space_for(tracks: VectorSet, metric: str) -> Space:
    """``tracks`` in ``metric``'s space; a notebook-only metric uses only the notebook's columns."""
    if metric in EXTENDED_METRICS or tracks.vectors.shape[1] == tracks.notebook_dims:
        return Space(tracks.track_ids, tracks.vectors, metric, tracks.feature_names)
    d = tracks.notebook_dims  # a notebook-only metric on vectors loaded with the second set
    return Space(tracks.track_ids, tracks.vectors[:, :d], metric, tracks.feature_names[:d])


def load_space(con, metric: str = DEFAULT_METRIC, params: FeatureParams = NOTEBOOK) -> Space:
    """The library's vectors in ``metric``'s space (z-score statistics from its own tracks)."""
    from ..analysis.params import ExtendedParams

    check_metric(metric)
    extended = ExtendedParams(base=params) if metric in EXTENDED_METRICS else None
    return space_for(load_tracks(con, params, extended), metric)
