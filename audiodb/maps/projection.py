"""Two dimensions from the z-scored features, as the notebook draws them, and each track's neighbours.

scikit-learn and umap are imported inside the functions that use them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import UsageError
from ..query.compiled import import_umap

__all__ = [
    "N_NEIGHBOURS",
    "PCA_SETTINGS",
    "PROJECTIONS",
    "UMAP_SETTINGS",
    "nearest_neighbours",
    "project",
]

PROJECTIONS = ("pca", "umap")

#: The notebook's UMAP, as it is called there.
UMAP_SETTINGS: dict[str, Any] = {"n_neighbors": 10, "min_dist": 0.1, "metric": "euclidean", "random_state": 42}
#: The notebook's PCA.
PCA_SETTINGS = {"n_components": 2, "random_state": 42}

#: Nearest neighbours listed for a clicked track (stored for every track in the page).
N_NEIGHBOURS = 5


def project(X_scaled: np.ndarray, projection: str) -> tuple[np.ndarray, dict]:
    """Project z-scored features to two dimensions as the notebook does.

    Parameters
    ----------
    X_scaled : ndarray, shape (n_tracks, n_features)
        Output of :func:`audiodb.query.space.standardize`.
    projection : {'pca', 'umap'}
        ``pca``: ``PCA(n_components=2, random_state=42)``. ``umap``:
        :data:`UMAP_SETTINGS`; on a library of 10 tracks or fewer
        ``n_neighbors`` is lowered to ``n - 1`` and the start is random
        instead of spectral (both said in ``info['notes']``).

    Returns
    -------
    Y : ndarray, float64, shape (n_tracks, 2)
    info : dict
        ``axes`` (two axis titles), ``notes`` (lines for the reader); for PCA
        also ``explained_variance`` (the two ratios).
    """
    n = len(X_scaled)
    if projection == "pca":
        if n < 3:
            raise UsageError(f"A PCA map needs at least 3 tracks with features (the library has {n}).")
        from sklearn.decomposition import PCA

        pca = PCA(**PCA_SETTINGS)
        Y = pca.fit_transform(X_scaled)
        r1, r2 = (float(r) for r in pca.explained_variance_ratio_[:2])
        return Y, {
            "explained_variance": [r1, r2],
            "axes": [f"PC1 ({r1:.1%} of variance)", f"PC2 ({r2:.1%} of variance)"],
            "notes": [
                (
                    f"Explained variance by PC1 and PC2: {r1:.4f} {r2:.4f} "
                    f"(together {r1 + r2:.1%}); PCA(n_components=2, random_state=42) on the "
                    f"z-scored {X_scaled.shape[1]} features."
                )
            ],
        }
    if projection != "umap":
        raise UsageError(f"Unknown projection {projection!r}: choose pca or umap.")
    if n < 4:
        raise UsageError(
            f"A UMAP map needs at least 4 tracks with features (the library has {n}); use --projection pca."
        )
    settings = dict(UMAP_SETTINGS)
    note = (
        "UMAP with the notebook's settings: n_neighbors=10, min_dist=0.1, metric=euclidean, "
        f"random_state=42, on the z-scored {X_scaled.shape[1]} features."
    )
    extra = {}
    if n <= settings["n_neighbors"]:
        settings["n_neighbors"] = n - 1
        extra["init"] = "random"
        note += (
            f" The library has {n} tracks, so n_neighbors is {n - 1} here and the start "
            "layout random (spectral needs more tracks)."
        )
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # umap's notices about seeds overriding n_jobs
        umap = import_umap()  # its numba code kept on disk between runs

        Y = umap.UMAP(n_components=2, **settings, **extra).fit_transform(X_scaled)
    return np.asarray(Y, dtype=np.float64), {"axes": ["UMAP-1", "UMAP-2"], "notes": [note], "settings": settings}


def nearest_neighbours(X: np.ndarray, k: int = N_NEIGHBOURS) -> np.ndarray:
    """The ``k`` nearest other tracks of every track, nearest first (exact, euclidean).

    Candidates come from scikit-learn's brute-force search (blocked matrix
    products, a heap per row, all cores); the best ``k + 8`` of each track are
    then ranked again with directly computed float64 distances, so rounding in
    the matrix-product form cannot reorder near ties.

    Parameters
    ----------
    X : ndarray, shape (n_tracks, n_features)
        Usually z-scored features.
    k : int
        Neighbours per track; capped at ``n_tracks - 1``.

    Returns
    -------
    ndarray, int32, shape (n_tracks, min(k, n_tracks - 1))
        Row indexes into ``X``; a track is never its own neighbour (ties: lower index first).
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    n = len(X)
    k = max(0, min(int(k), n - 1))
    if k == 0:
        return np.empty((n, 0), dtype=np.int32)
    from sklearn.neighbors import NearestNeighbors

    c = min(n - 1, k + 8)
    cand = NearestNeighbors(n_neighbors=c + 1, algorithm="brute").fit(X).kneighbors(X, return_distance=False)
    rows = np.arange(n)[:, None]
    exact = np.empty(cand.shape)
    for start in range(0, n, 4096):  # in blocks: (rows, c + 1, features) float64 stays small
        block = slice(start, start + 4096)
        exact[block] = ((X[cand[block]] - X[block, None, :]) ** 2).sum(axis=2)
    exact[cand == rows] = np.inf  # never itself (with duplicates it need not come first)
    order = np.lexsort((cand, exact), axis=1)[:, :k]
    return np.take_along_axis(cand, order, axis=1).astype(np.int32)
