"""Clustering the library, as the notebook does, and keeping every run.

The computation is pure (arrays in, labels out) and follows the notebook:
features z-scored (``StandardScaler``), k-means with ``random_state=42,
n_init=10``, HDBSCAN with ``min_cluster_size=4, min_samples=2``, euclidean,
``eom``. Two things are added:

- a *space* to cluster in: ``scaled`` (the notebook's 180 z-scored columns),
  ``pca`` or ``umap`` (reduce first, then cluster). HDBSCAN in 180 dimensions
  on a small library calls everything noise (the notebook's own result: 13 of
  13); in a reduced space it finds the groups. See README, "Clustering".
- *stable cluster ids*: a new run's clusters are matched to the previous run
  of the same method by overlap (Jaccard, Hungarian assignment), so cluster 2
  stays cluster 2 when little changed.

A run reads the vectors (read-only, then closes the library), computes with
the file closed, and writes the run in one short transaction, so it works
while a scan or a watcher is writing too. The ids are matched in
:mod:`audiodb.query.cluster_ids`; the SQL that saves and summarises runs is in
:mod:`audiodb.store.runs`.

sklearn, hdbscan and umap are imported inside the functions that need them.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import time
from collections.abc import Callable

import numpy as np

from ..analysis.params import NOTEBOOK
from ..errors import NothingIndexed, UsageError
from ..store.catalog import count_tracks
from ..store.connection import LibraryFile
from ..store.runs import save_run
from ..store.vectors import load_tracks
from .cluster_ids import match_ids
from .compiled import import_umap
from .kchoice import choose_k, edge_note, k_auto_range, one_thread, silhouette, tie_note
from .space import group_scale, standardize  # standardize: the one z-score rule, kept in __all__

__all__ = [
    "DEFAULT_SPACE",
    "METHODS",
    "SPACES",
    "ClusterRun",
    "cluster_library",
    "cluster_vectors",
    "k_auto_range",
    "reduce",
    "standardize",
    "store",
]

METHODS = ("kmeans", "hdbscan")
SPACES = ("scaled", "pca", "umap")
#: What to cluster: the notebook's 180 z-scored features (as the notebook), or those and
#: the second feature set's 42, each group weighted alike (the `extended` metric's space).
FEATURES = ("notebook", "extended")

#: The space each method clusters in unless told otherwise. k-means stays in the
#: notebook's space; HDBSCAN reduces first (measurements in README, "Clustering").
DEFAULT_SPACE = {"kmeans": "scaled", "hdbscan": "umap"}

#: Components kept by each reducing space, unless told otherwise.
DEFAULT_DIMS = {"pca": 10, "umap": 5}

SEED = 42  # the notebook's random_state, everywhere
#: Up to this many tracks, umap gets exact nearest neighbours (sklearn) instead of pynndescent's.
EXACT_KNN = 10_000
NOISY = 0.5  # an HDBSCAN run with at least this fraction of noise gets advice


@dataclasses.dataclass
class ClusterRun:
    """One clustering of the library: labels per track and what was asked for.

    ``labels`` are the stored cluster ids (``-1`` is HDBSCAN noise), aligned with
    ``track_ids``. ``probability`` (HDBSCAN membership strength, 0..1) and
    ``outlier_score`` (GLOSH) are ``None`` for k-means. ``quality`` is the
    silhouette score of the clustered tracks in the space clustered in.
    """

    method: str
    space: str
    parameters: dict
    track_ids: np.ndarray
    labels: np.ndarray
    probability: np.ndarray | None = None
    outlier_score: np.ndarray | None = None
    centre_distance: np.ndarray | None = None
    quality: float | None = None
    k_scores: dict[int, float] | None = None
    advice: list[str] = dataclasses.field(default_factory=list)
    feature_set: str = NOTEBOOK.id
    seconds: float = 0.0
    run_id: int | None = None
    created_at: datetime.datetime | None = None
    #: A run over segments (``audiodb cluster --segments``): the segmentation's id, and each
    #: clustered segment's index in its track (``track_ids`` then has one entry per segment).
    segmentation: str | None = None
    seg_index: np.ndarray | None = None

    @property
    def n_tracks(self) -> int:
        return len(self.labels)

    @property
    def n_noise(self) -> int:
        return int(np.sum(self.labels == -1))

    @property
    def n_clusters(self) -> int:
        return len(set(self.labels.tolist()) - {-1})

    def sizes(self) -> dict[int, int]:
        """Tracks per cluster id (noise as ``-1``), by id."""
        ids, counts = np.unique(self.labels, return_counts=True)
        return {int(i): int(c) for i, c in zip(ids, counts)}

    def as_row(self) -> dict:
        """The run as ``cluster_runs`` shows it (one flat dict)."""
        return {
            "run_id": self.run_id,
            "method": self.method,
            "space": self.space,
            "parameters": json.dumps(self.parameters, sort_keys=True),
            "n_tracks": self.n_tracks,
            "n_clusters": self.n_clusters,
            "n_noise": self.n_noise,
            "quality": self.quality,
            "seconds": round(self.seconds, 3),
        }


# --------------------------------------------------------------------------- computation


def reduce(X_scaled: np.ndarray, space: str, *, dims: int | None = None) -> tuple[np.ndarray, dict]:
    """Project z-scored features into the space to cluster in.

    Parameters
    ----------
    X_scaled : ndarray, shape (n_tracks, n_features)
        Output of :func:`audiodb.query.space.standardize`.
    space : {'scaled', 'pca', 'umap'}
        ``scaled`` returns ``X_scaled`` itself. ``pca`` keeps ``dims`` principal
        components (seeded). ``umap`` embeds in ``dims`` dimensions with
        ``n_neighbors`` from :func:`umap_neighbors`, ``min_dist=0``,
        ``random_state=42``: settings for clustering, not for a picture.
    dims : int, optional
        Components to keep; default 10 for pca, 5 for umap. Capped by the data.

    Returns
    -------
    Y : ndarray, shape (n_tracks, d)
    info : dict
        What was done, for the run's ``parameters``.
    """
    n, d = X_scaled.shape
    if space == "scaled":
        return X_scaled, {"dims": d}
    if space not in SPACES:
        raise UsageError(f"Unknown space {space!r}: choose one of {', '.join(SPACES)}.")
    want = dims or DEFAULT_DIMS[space]
    if want < 1:
        raise UsageError(f"--dims must be at least 1 (got {want}).")
    if space == "pca":
        from sklearn.decomposition import PCA

        keep = max(1, min(want, n, d))
        pca = PCA(n_components=keep, random_state=SEED, svd_solver="auto")
        Y = pca.fit_transform(X_scaled)
        return Y, {"dims": keep, "explained_variance": round(float(pca.explained_variance_ratio_.sum()), 4)}
    if n < 5:
        raise UsageError(f"--space umap needs at least 5 tracks (the library has {n}); use --space scaled or pca.")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # umap's notices about seeds and threads
        umap = import_umap()  # its numba code kept on disk between runs

        keep = max(1, min(want, n - 3))
        neighbours = umap_neighbors(n)
        knn = None
        if n <= EXACT_KNN:  # exact neighbours: faster here than compiling pynndescent, and exact
            from sklearn.neighbors import NearestNeighbors

            dist, idx = NearestNeighbors(n_neighbors=neighbours).fit(X_scaled).kneighbors(X_scaled)
            knn = (idx, dist)
        model = umap.UMAP(
            n_components=keep,
            n_neighbors=neighbours,
            min_dist=0.0,
            metric="euclidean",
            random_state=SEED,
            precomputed_knn=knn or (None, None, None),
        )
        Y = model.fit_transform(X_scaled)
    return np.asarray(Y, dtype=np.float64), {
        "dims": keep,
        "n_neighbors": neighbours,
        "min_dist": 0.0,
        "random_state": SEED,
    }


def umap_neighbors(n: int) -> int:
    """UMAP's neighbourhood for ``n`` tracks: a fifth of the library, between 5 and 15.

    15 is umap's default; on a small library a 15-track neighbourhood spans
    several groups and UMAP merges them (see README, "Clustering").
    """
    return max(2, min(n - 1, max(5, min(15, n // 5))))


def _kmeans(Y: np.ndarray, k: int):
    from sklearn.cluster import KMeans

    model = KMeans(n_clusters=k, random_state=SEED, n_init=10)
    labels = model.fit_predict(Y)
    dist = np.linalg.norm(Y - model.cluster_centers_[labels], axis=1)
    return labels, dist


def _hdbscan(Y: np.ndarray, min_cluster_size: int, min_samples: int):
    import warnings

    import hdbscan

    model = hdbscan.HDBSCAN(
        min_cluster_size=min_cluster_size,
        min_samples=min_samples,
        metric="euclidean",
        cluster_selection_method="eom",
        core_dist_n_jobs=os.cpu_count() or 1,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # GLOSH divides by zero on exact duplicates
        labels = model.fit_predict(Y)
        outlier = np.nan_to_num(np.asarray(model.outlier_scores_, dtype=np.float64), nan=0.0)
    return labels, np.asarray(model.probabilities_, dtype=np.float64), outlier


def _centre_distance(Y: np.ndarray, labels: np.ndarray) -> np.ndarray:
    dist = np.full(len(labels), np.nan)
    members = labels != -1
    if members.any():
        _, which = np.unique(labels[members], return_inverse=True)
        sums = np.zeros((which.max() + 1, Y.shape[1]))
        np.add.at(sums, which, Y[members])
        centres = sums / np.bincount(which)[:, None]
        dist[members] = np.linalg.norm(Y[members] - centres[which], axis=1)
    return dist


def cluster_vectors(
    X: np.ndarray,
    *,
    method: str,
    k: int | str = "auto",
    min_cluster_size: int = 4,
    min_samples: int = 2,
    space: str | None = None,
    dims: int | None = None,
    weights: np.ndarray | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> ClusterRun:
    """Cluster raw feature vectors as the notebook does; nothing is stored.

    Parameters
    ----------
    X : ndarray, shape (n_tracks, n_features)
        Raw features (they are z-scored here).
    method : {'kmeans', 'hdbscan'}
    k : int or 'auto'
        k-means clusters; ``'auto'`` tries :func:`k_auto_range` (2..10, more
        for a larger library, fewer for a tiny one) and keeps the best
        silhouette; a choice at either end of the range adds a line to ``advice``.
    min_cluster_size, min_samples : int
        HDBSCAN's (the notebook's 4 and 2).
    space : {'scaled', 'pca', 'umap'}, optional
        Where to cluster; default :data:`DEFAULT_SPACE` of the method.
    dims : int, optional
        Components for pca / umap.
    weights : ndarray, shape (n_features,), optional
        Multiplies each z-scored column before reducing and clustering (the
        ``extended`` features' group weights); None leaves them as the notebook.
    on_stage : callable, optional
        Called with one line as each stage starts (reducing, choosing k,
        clustering), for a status line while it runs.

    Returns
    -------
    ClusterRun
        Labels numbered by size (largest 0), ``track_ids`` 0..n-1, not stored.
    """
    started = time.monotonic()
    if method not in METHODS:
        raise UsageError(f"Unknown method {method!r}: choose kmeans or hdbscan (or both).")
    space = space or DEFAULT_SPACE[method]
    n = len(X)
    if n == 0:
        raise NothingIndexed("No tracks indexed yet: run audiodb scan DIR first.")
    _check_args(method, n, k, min_cluster_size, min_samples)
    X_scaled = standardize(X)
    if weights is not None:
        X_scaled *= weights
    if space == "umap":
        _say(on_stage, f"{method}: reducing {n} tracks with UMAP (compiled on its first run on this machine)…")
    elif space == "pca":
        _say(on_stage, f"{method}: reducing {n} tracks with PCA…")
    Y, space_info = reduce(X_scaled, space, dims=dims)
    params: dict = {"space": space, **space_info}
    run = ClusterRun(
        method=method, space=space, parameters=params, track_ids=np.arange(n), labels=np.zeros(n, dtype=np.int64)
    )
    k_notes: list[str] = []  # what --k auto says about its choice
    if method == "kmeans":
        k_scores, requested = None, str(k)
        with one_thread(n):
            if k == "auto":
                ks = k_auto_range(n)
                _say(on_stage, f"{method}: choosing k among {ks.start}..{ks.stop - 1} by silhouette…")
                k, k_scores, ties = choose_k(Y, ks)
                k_notes = [line for line in (edge_note(int(k), ks, n), tie_note(int(k), ties)) if line]
            _say(on_stage, f"{method}: clustering with k = {k}…")
            labels, dist = _kmeans(Y, int(k))
        params.update(k=int(k), k_requested=requested, random_state=SEED, n_init=10)
        if k_scores:
            params["k_scores"] = {str(key): round(v, 4) for key, v in k_scores.items()}
        run.k_scores, run.centre_distance = k_scores, dist
    else:
        _say(on_stage, f"{method}: clustering…")
        labels, prob, outlier = _hdbscan(Y, min_cluster_size, min_samples)
        params.update(
            min_cluster_size=min_cluster_size,
            min_samples=min_samples,
            metric="euclidean",
            cluster_selection_method="eom",
        )
        run.probability, run.outlier_score = prob, outlier
        run.centre_distance = _centre_distance(Y, labels)
    run.labels = match_ids(labels, None)  # by size, largest first
    with one_thread(n):
        run.quality = silhouette(Y, labels)
    run.advice = _advice(run, min_cluster_size, min_samples)
    run.advice.extend(k_notes)
    run.seconds = time.monotonic() - started
    return run


def _say(on_stage: Callable[[str], None] | None, line: str) -> None:
    if on_stage is not None:
        on_stage(line)


def _check_args(method: str, n: int, k, min_cluster_size: int, min_samples: int) -> None:
    if method == "kmeans":
        if k == "auto":
            if n < 3:
                raise UsageError(f"--k auto needs at least 3 tracks (the library has {n}); give --k 1 or 2.")
            return
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise UsageError(f"--k must be a positive number or 'auto' (got {k!r}).")
        if k > n:
            raise UsageError(f"k={k} is more than the {n} tracks; choose --k {n} or less, or --k auto.")
    else:
        if min_cluster_size < 2:
            raise UsageError(f"--min-cluster-size must be at least 2 (got {min_cluster_size}).")
        if min_samples < 1:
            raise UsageError(f"--min-samples must be at least 1 (got {min_samples}).")
        if min_cluster_size > n:
            raise UsageError(
                f"--min-cluster-size {min_cluster_size} is more than the {n} tracks; "
                f"choose {max(2, n // 2)} or less, or index more audio."
            )
        if min_samples > n - 1:
            raise UsageError(f"--min-samples {min_samples} needs more than the {n} tracks; choose {n - 1} or less.")


def _advice(run: ClusterRun, min_cluster_size: int, min_samples: int) -> list[str]:
    if run.method != "hdbscan" or run.n_noise < NOISY * run.n_tracks:
        return []
    dims = run.parameters.get("dims")
    head = (
        f"HDBSCAN labelled all {run.n_tracks} tracks noise"
        if run.n_clusters == 0
        else f"HDBSCAN labelled {run.n_noise} of {run.n_tracks} tracks noise"
    )
    head += f" in the {run.space} space ({dims} dimensions)."
    tips = []
    if run.space != "umap":
        tips.append(
            "--space umap (reduce first: in many dimensions all distances look alike, so no "
            "region is denser than another)"
        )
    if min_cluster_size > 2:
        tips.append(f"a smaller --min-cluster-size (now {min_cluster_size})")
    if min_samples > 1:
        tips.append(f"a smaller --min-samples (now {min_samples})")
    tips.append("--method kmeans, which puts every track in a cluster")
    return [head + " Try " + "; or ".join(tips) + "."]


# --------------------------------------------------------------------------- keeping runs


def store(con, run: ClusterRun) -> ClusterRun:
    """Renumber ``run`` against the previous run of its method and insert it, in one transaction."""
    return save_run(con, run, renumber=lambda previous: match_ids(run.labels, previous, track_ids=run.track_ids))


def cluster_library(file: LibraryFile, *, method: str, features: str = "notebook", **options) -> ClusterRun:
    """Cluster every track with current features and store the run.

    Reads the vectors and closes the library, computes with it closed, then
    writes the run (renumbered to match the previous run of ``method``) in one
    short transaction. ``features`` is one of :data:`FEATURES`; ``options`` are
    those of :func:`cluster_vectors`.

    Raises
    ------
    NothingIndexed
        Nothing indexed yet (or nothing with current features).
    UsageError
        Options that cannot work with this library (k larger than the tracks, ...).
    """
    if features not in FEATURES:
        raise UsageError(f"Unknown features {features!r}: choose notebook or extended.")
    params = file.params
    with file.connect() as con:
        tracks = load_tracks(con, params, file.extended if features == "extended" else None)
        stale = count_tracks(con) - len(tracks.track_ids)
    order = np.argsort(tracks.track_ids, kind="stable")  # by track id: the same input, the same clusters
    track_ids, X = tracks.track_ids[order], tracks.vectors[order]
    weights = group_scale(tracks.feature_names) if features == "extended" else None
    if len(track_ids) == 0:
        if stale:
            raise NothingIndexed(
                f"None of the {stale} tracks has current features: run audiodb scan DIR to compute them."
            )
        raise NothingIndexed("No tracks indexed yet: run audiodb scan DIR first.")
    run = cluster_vectors(X, method=method, weights=weights, **options)
    run.parameters["features"] = features
    run.track_ids, run.feature_set = track_ids, params.id
    if stale:
        run.advice.append(f"{stale} tracks without current features were left out: run audiodb scan DIR.")
    with file.connect(read_only=False) as con:
        return store(con, run)
