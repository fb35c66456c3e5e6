"""Writing a map: read the library, z-score, project, find neighbours, write one page.

:func:`plot_library` is what ``audiodb plot`` calls; see :mod:`audiodb.maps.page`
for what the page holds.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import time

import numpy as np

from ..analysis.params import NOTEBOOK, FeatureParams
from ..errors import AudiodbError, NoClusteringRun, NothingIndexed, UsageError
from ..query.space import group_scale, standardize  # the z-score rule of audiodb similar
from ..store import catalog
from ..store.connection import LibraryFile
from ..store.runs import latest_run
from ..store.vectors import load_tracks
from .coloring import (
    CLUSTER_METHODS,
    METHOD_LABELS,
    cluster_coloring,
    cluster_labels,
    column_coloring,
    is_numeric,
    is_temporal,
)
from .page import build_page
from .projection import N_NEIGHBOURS, PROJECTIONS, nearest_neighbours, project

__all__ = [
    "PlotResult",
    "plot_library",
]


@dataclasses.dataclass
class PlotResult:
    """What :func:`plot_library` wrote."""

    path: pathlib.Path
    n_points: int
    projection: str
    color: str
    size_bytes: int
    seconds: float
    notes: list[str]

    def as_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["path"] = str(self.path)
        return out


# --------------------------------------------------------------------------- reading the library


def _no_clustering(method: str) -> NoClusteringRun:
    return NoClusteringRun(
        f"No {METHOD_LABELS[method]} clustering yet: run audiodb cluster --method {method} first "
        "(or colour by a column of tracks, e.g. --color folder)."
    )


def _check_color(color: str, columns: dict[str, str]) -> None:
    if color in CLUSTER_METHODS or color in columns:
        return
    raise UsageError(f"Unknown --color {color!r}: choose kmeans, hdbscan or a column of tracks ({', '.join(columns)}).")


def _color_kind(color: str, columns: dict[str, str]) -> str:
    """How :func:`audiodb.store.catalog.map_rows` reads the colour column."""
    if color in CLUSTER_METHODS:
        return "none"
    typ = columns[color]
    return "temporal" if is_temporal(typ) else "numeric" if is_numeric(typ) else "text"


def _load(con, color: str, *, params: FeatureParams = NOTEBOOK, extended=None):
    """Read what a map needs from an open library.

    With ``extended`` (:class:`audiodb.analysis.params.ExtendedParams`), each track's
    vector is followed by its second feature set, and tracks without one are
    left out (and counted as stale).

    Returns
    -------
    (table, X, coloring, clusters, stale)
        The Arrow table of tracks with current features (by path: ``track_id``,
        ``path``, ``duration_sec``, ...), their raw vectors (:func:`audiodb.store.vectors.load_tracks`)
        (float32, one row per table row), the :class:`Coloring`,
        ``{method: (labels int32 with a sentinel for "not in the run", run info) or None}``
        and the number of tracks without current features.

    Raises
    ------
    UsageError
        ``color`` is neither a clustering method nor a column of ``tracks``.
    NoClusteringRun
        Colouring by a method that has no run yet.
    NothingIndexed
        No track with current features.
    """
    columns = catalog.tracks_columns(con)
    _check_color(color, columns)
    runs = {m: latest_run(con, m) for m in CLUSTER_METHODS}
    if color in CLUSTER_METHODS and runs[color] is None:
        raise _no_clustering(color)
    table = catalog.map_rows(con, color, _color_kind(color, columns))
    tracks = load_tracks(con, params, extended)  # the Arrow path that similar and cluster read with
    if len(tracks.track_ids) == 0:
        if extended is not None and tracks.without_extended:
            raise NothingIndexed(
                f"None of the {tracks.without_extended} tracks has the extended features yet "
                "(indexed by an older audiodb): run audiodb scan on their folders, or plot "
                "with --features notebook."
            )
        if table.num_rows:
            raise NothingIndexed(
                f"None of the {table.num_rows} tracks has current features: run audiodb scan DIR to compute them."
            )
        raise NothingIndexed("No tracks indexed yet: run audiodb scan DIR first.")
    # Match the rows (by path) to the vectors by track id; tracks without current vectors are left out.
    row_ids = np.asarray(table["track_id"].to_numpy(zero_copy_only=False), dtype=np.int64)
    order = np.argsort(tracks.track_ids)
    at = np.minimum(np.searchsorted(tracks.track_ids[order], row_ids), len(order) - 1)
    has = tracks.track_ids[order][at] == row_ids
    keep = np.flatnonzero(has)
    if len(keep) < len(row_ids):
        table = table.take(keep)
    X = tracks.vectors[order[at[keep]]]
    stale = int(len(row_ids) - len(keep))
    clusters = {m: (cluster_labels(table[f"cluster_{m}"]), runs[m]) if runs[m] else None for m in CLUSTER_METHODS}
    if color in CLUSTER_METHODS:
        entry, run = clusters[color], runs[color]
        assert entry is not None and run is not None  # a method without a run raised above
        coloring = cluster_coloring(color, entry[0], run)
    else:
        coloring = column_coloring(color, columns[color], table["color_value"])
    return table, X, coloring, clusters, stale


# --------------------------------------------------------------------------- writing


def track_titles(table) -> list[str | None]:
    """``artist – title`` of each row of :func:`audiodb.store.catalog.map_rows` (None when untagged)."""
    from ..store.words import display_name

    return [
        display_name({"artist": a, "title": t}) for a, t in zip(table["artist"].to_pylist(), table["title"].to_pylist())
    ]


def plot_library(
    file: LibraryFile,
    *,
    projection: str = "pca",
    color: str = "kmeans",
    output: str | os.PathLike,
    features: str = "notebook",
) -> PlotResult:
    """Write the map of the library as one self-contained HTML page.

    Reads the tracks with current features (and the latest clustering runs),
    closes the library, z-scores the 180 features (as ``audiodb similar``: see
    :func:`audiodb.query.space.zscore_stats`),
    projects them (:func:`project`), finds each track's nearest neighbours
    and writes the page (atomically: a temporary file renamed into place).

    Parameters
    ----------
    file : LibraryFile
        The library (``Library.file``).
    projection : {'pca', 'umap'}
    color : str
        ``'kmeans'`` or ``'hdbscan'`` (the latest run of that method) or the
        name of a column of ``tracks`` (``duration_sec``, ``folder``, ...).
    output : path
        The ``.html`` file to write.
    features : {'notebook', 'extended'}
        Map (and find neighbours in) the notebook's z-scored 180 features, or
        those and the second feature set's 42 with each group weighted alike
        (the space of ``audiodb similar``'s default metric; tracks without
        the second set are left out).

    Returns
    -------
    PlotResult

    Raises
    ------
    UsageError
        Unknown projection or colour; too few tracks for the projection.
    NothingIndexed
        No track with current features.
    NoClusteringRun
        No clustering run for ``color`` yet.
    AudiodbError
        The page cannot be written.
    """
    started = time.monotonic()
    if projection not in PROJECTIONS:
        raise UsageError(f"Unknown projection {projection!r}: choose pca or umap.")
    if features not in ("notebook", "extended"):
        raise UsageError(f"Unknown features {features!r}: choose notebook or extended.")
    params = file.params
    extended = file.extended if features == "extended" else None
    with file.connect() as con:
        table, X, coloring, clusters, stale = _load(con, color, params=params, extended=extended)
    paths = table["path"].to_pylist()
    durations = np.asarray(table["duration_sec"].to_numpy(zero_copy_only=False), dtype=np.float64)
    X_scaled = standardize(X)
    if extended is not None:
        X_scaled *= group_scale(params.feature_names() + extended.feature_names())
    Y, info = project(X_scaled, projection)
    neighbours = nearest_neighbours(X_scaled, N_NEIGHBOURS)

    name = "PCA Projection of Acoustic Embeddings" if projection == "pca" else "UMAP of Acoustic Embeddings"
    what = f"{METHOD_LABELS[color]} Cluster" if color in CLUSTER_METHODS else color
    notes = [f"{len(paths):,} tracks. " + info["notes"][0], *info["notes"][1:], *coloring.notes]
    if stale:
        notes.append(f"{stale} tracks without current features are not shown: run audiodb scan DIR.")
    space = (
        "the notebook's space"
        if features == "notebook"
        else "with the second feature set, each group weighted alike: audiodb similar's default"
    )
    hint = (
        f"Click a point to play it and list its {neighbours.shape[1]} nearest neighbours "
        f"(euclidean on the z-scored features, {space})."
    )
    page = build_page(
        title=f"{name} — Colored by {what}",
        x=Y[:, 0],
        y=Y[:, 1],
        paths=paths,
        durations=durations,
        coloring=coloring,
        neighbours=neighbours,
        axes=info["axes"],
        notes=[*notes, hint],
        clusters={m: c[0] for m, c in clusters.items() if c is not None},
        titles=track_titles(table),
    )
    out = pathlib.Path(output).expanduser().absolute()
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, out)
    except OSError as e:
        raise AudiodbError(f"Cannot write {out}: {e.strerror or e}. Choose another file with -o.") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return PlotResult(
        path=out,
        n_points=len(paths),
        projection=projection,
        color=color,
        size_bytes=out.stat().st_size,
        seconds=time.monotonic() - started,
        notes=notes,
    )
