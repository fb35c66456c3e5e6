"""Writing a map: read the library, z-score, project, find neighbours, write one page.

:func:`plot_library` is what ``audiodb plot`` calls; see :mod:`audiodb.maps.page`
for what the page holds.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import time
from collections.abc import Callable

import numpy as np

from ..store import connection
from ..store.vectors import count_stale
from ..analysis.params import NOTEBOOK, FeatureParams
from ..errors import AudiodbError, UsageError
from ..query.cluster import standardize  # z-score as StandardScaler does, without importing sklearn
from ..store.runs import latest_run
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
    "human_size",
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


def _tracks_columns(con) -> dict[str, str]:
    return {name: typ for name, typ, *_ in con.execute("DESCRIBE tracks").fetchall()}


def _no_clustering(method: str) -> AudiodbError:
    return AudiodbError(
        f"No {METHOD_LABELS[method]} clustering yet: run audiodb cluster --method {method} first "
        "(or colour by a column of tracks, e.g. --color folder).")


def _check_color(color: str, columns: dict[str, str]) -> None:
    if color in CLUSTER_METHODS or color in columns:
        return
    raise UsageError(f"Unknown --color {color!r}: choose kmeans, hdbscan or a column of tracks "
                     f"({', '.join(columns)}).")


def _read(con, color: str, columns: dict[str, str], params: FeatureParams):
    """One query: every track with current features, by path, with its clusters and colour column."""
    if color in CLUSTER_METHODS:
        value_sql = "NULL"
    else:
        quoted = '"' + color.replace('"', '""') + '"'
        typ = columns[color]
        if is_temporal(typ):
            value_sql = f"epoch(t.{quoted})"
        elif is_numeric(typ):
            value_sql = f"CAST(t.{quoted} AS DOUBLE)"
        else:
            value_sql = f"CAST(t.{quoted} AS VARCHAR)"
    table = con.sql(
        f"""SELECT t.track_id, t.path, t.duration_sec, e.vector,
                   k.cluster AS cluster_kmeans, h.cluster AS cluster_hdbscan, {value_sql} AS color_value
            FROM embeddings e
            JOIN tracks t USING (track_id)
            LEFT JOIN clusters k ON k.track_id = e.track_id AND k.method = 'kmeans'
            LEFT JOIN clusters h ON h.track_id = e.track_id AND h.method = 'hdbscan'
            WHERE e.feature_set = ?
            ORDER BY t.path""", params=[params.id]).to_arrow_table()
    return table, int(count_stale(con, params.id))


def _load(con, color: str, *, params: FeatureParams = NOTEBOOK, extended=None):
    """Read what a map needs from an open library.

    With ``extended`` (:class:`audiodb.analysis.params.ExtendedParams`), each track's
    vector is followed by its second feature set, and tracks without one are
    left out (and counted as stale).

    Returns
    -------
    (table, X, coloring, clusters, stale)
        The Arrow table of tracks with current features (by path: ``track_id``,
        ``path``, ``duration_sec``, ``vector``, ...), their raw vectors
        (float32, one row per table row), the :class:`Coloring`,
        ``{method: (labels int32 with a sentinel for "not in the run", run info) or None}``
        and the number of tracks without current features.

    Raises
    ------
    UsageError
        ``color`` is neither a clustering method nor a column of ``tracks``.
    AudiodbError
        Colouring by a method that has no run yet; nothing indexed.
    """
    columns = _tracks_columns(con)
    _check_color(color, columns)
    runs = {m: latest_run(con, m) for m in CLUSTER_METHODS}
    if color in CLUSTER_METHODS and runs[color] is None:
        raise _no_clustering(color)
    table, stale = _read(con, color, columns, params)
    if table.num_rows == 0:
        if stale:
            raise AudiodbError(f"None of the {stale} tracks has current features: run audiodb scan DIR "
                               "to compute them.")
        raise AudiodbError("No tracks indexed yet: run audiodb scan DIR first.")
    vectors = table["vector"].combine_chunks()
    X = np.asarray(vectors.flatten().to_numpy(), dtype=np.float32).reshape(-1, params.dims)
    if extended is not None:
        table, X, dropped = _append_extended(con, table, X, extended)
        stale += dropped
    clusters = {m: (cluster_labels(table[f"cluster_{m}"]), runs[m]) if runs[m] else None for m in CLUSTER_METHODS}
    if color in CLUSTER_METHODS:
        coloring = cluster_coloring(color, clusters[color][0], runs[color])
    else:
        coloring = column_coloring(color, columns[color], table["color_value"])
    return table, X, coloring, clusters, stale


# --------------------------------------------------------------------------- writing


def plot_library(
    db: str | os.PathLike | None,
    *,
    projection: str = "pca",
    color: str = "kmeans",
    output: str | os.PathLike,
    params: FeatureParams = NOTEBOOK,
    features: str = "notebook",
    on_wait: Callable[[str], None] | None = None,
) -> PlotResult:
    """Write the map of the library as one self-contained HTML page.

    Reads the tracks with current features (and the latest clustering runs),
    closes the library, z-scores the 180 features (``StandardScaler``),
    projects them (:func:`project`), finds each track's nearest neighbours
    and writes the page (atomically: a temporary file renamed into place).

    Parameters
    ----------
    db : path or None
        The library (None: ``$AUDIODB_DB`` / the default).
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
    AudiodbError
        Nothing indexed, or no clustering run for ``color`` yet.
    """
    started = time.monotonic()
    if projection not in PROJECTIONS:
        raise UsageError(f"Unknown projection {projection!r}: choose pca or umap.")
    if features not in ("notebook", "extended"):
        raise UsageError(f"Unknown features {features!r}: choose notebook or extended.")
    extended = None
    if features == "extended":
        from ..analysis.params import ExtendedParams

        extended = ExtendedParams(base=params)
    with connection.connect(db, read_only=True, on_wait=on_wait) as con:
        table, X, coloring, clusters, stale = _load(con, color, params=params, extended=extended)
    paths = table["path"].to_pylist()
    durations = np.asarray(table["duration_sec"].to_numpy(zero_copy_only=False), dtype=np.float64)
    X_scaled = standardize(X)
    if extended is not None:
        from ..similar import group_weights

        X_scaled *= np.sqrt(group_weights(params.feature_names() + extended.feature_names()))
    Y, info = project(X_scaled, projection)
    neighbours = nearest_neighbours(X_scaled, N_NEIGHBOURS)

    name = "PCA Projection of Acoustic Embeddings" if projection == "pca" else "UMAP of Acoustic Embeddings"
    what = f"{METHOD_LABELS[color]} Cluster" if color in CLUSTER_METHODS else color
    notes = [f"{len(paths):,} tracks. " + info["notes"][0], *info["notes"][1:], *coloring.notes]
    if stale:
        notes.append(f"{stale} tracks without current features are not shown: run audiodb scan DIR.")
    space = ("the notebook's space" if features == "notebook" else
             "with the second feature set, each group weighted alike: audiodb similar's default")
    hint = (f"Click a point to play it and list its {neighbours.shape[1]} nearest neighbours "
            f"(euclidean on the z-scored features, {space}).")
    page = build_page(
        title=f"{name} — Colored by {what}", x=Y[:, 0], y=Y[:, 1], paths=paths, durations=durations,
        coloring=coloring, neighbours=neighbours, axes=info["axes"], notes=[*notes, hint],
        clusters={m: c[0] for m, c in clusters.items() if c is not None},
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
    return PlotResult(path=out, n_points=len(paths), projection=projection, color=color,
                      size_bytes=out.stat().st_size, seconds=time.monotonic() - started, notes=notes)


def _append_extended(con, table, X, extended):
    """``X`` with each track's second feature set appended; tracks without one are left out.

    Returns (table, X, number left out).
    """
    from ..store.vectors import read_vectors

    cur = con.cursor()
    try:
        ids, E = read_vectors(cur, "extended_embeddings", extended.id, extended.dims)
    finally:
        cur.close()
    track_ids = np.asarray(table["track_id"].to_numpy(zero_copy_only=False), dtype=np.int64)
    order = np.argsort(ids)
    pos = np.minimum(np.searchsorted(ids[order], track_ids), max(len(ids) - 1, 0))
    has = ids[order][pos] == track_ids if len(ids) else np.zeros(len(track_ids), dtype=bool)
    if not has.any():
        raise AudiodbError(f"None of the {len(has)} tracks has the extended features yet (indexed by an older "
                           "audiodb): run audiodb scan on their folders, or plot with --features notebook.")
    if not has.all():
        keep = np.flatnonzero(has)
        table, X, pos = table.take(keep), X[keep], pos[keep]
    return table, np.hstack([X, E[order][pos]]), int((~has).sum())


def human_size(n: int) -> str:
    """``5.1 MB`` and the like."""
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover
