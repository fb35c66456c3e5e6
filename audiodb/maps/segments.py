"""A map of moments: a point per active segment, in the space ``similar --segments`` ranks in.

The page is the file map's (:mod:`audiodb.maps.page`) with each point a window of a recording:
hover shows the file and the window's times, a click plays the file from the window's start to
its end (a media fragment ``#t=START,END``, and the page pauses at the end) and lists its
nearest moments. The segment features are z-scored over every active segment with feature
groups weighted alike (the ``extended`` metric of :func:`audiodb.query.moments.similar_moments`),
then projected by PCA or UMAP as file maps are. Above :data:`MAX_POINTS` active segments a
uniform random sample of that many is drawn (said on the page). Points are coloured by the
latest clustering run over the segmentation (``audiodb cluster --segments``), else by file.
"""

from __future__ import annotations

import math
import os
import pathlib
import time

import numpy as np

from ..errors import AudiodbError, NoClusteringRun, NothingIndexed, UsageError
from ..query.space import Space
from ..store import segment_export
from ..store import segments as segment_store
from ..store.catalog import track_info
from ..store.connection import LibraryFile
from .coloring import CLUSTER_METHODS, METHOD_LABELS, cluster_coloring, column_coloring
from .page import build_page
from .projection import N_NEIGHBOURS, PROJECTIONS, project
from .write import PlotResult

__all__ = ["MAX_POINTS", "SEGMENT_COLORS", "SEGMENT_METRIC", "moment_neighbours", "plot_segments"]

#: At most this many points on a map of segments; above it a uniform random sample (seed 0).
MAX_POINTS = 20_000
#: What a map of segments may be coloured by besides the default (latest run, else file).
SEGMENT_COLORS = (*CLUSTER_METHODS, "file")
#: The metric whose space the map draws (that of ``similar --segments``).
SEGMENT_METRIC = "extended"


def moment_neighbours(
    X: np.ndarray, track_ids: np.ndarray, start_ms: np.ndarray, end_ms: np.ndarray, k: int, per_window: int
) -> np.ndarray:
    """The ``k`` nearest windows of every window (exact, euclidean in ``X``), leaving out its own
    moment: itself and the windows of its file that overlap it (as ``similar --segments`` does).

    ``per_window`` bounds how many windows of one file overlap a window (``2 * ceil(window / hop)``).
    Returns row indexes, shape ``(n, k')`` with ``k'`` at most ``k`` (fewer when the map is tiny).
    """
    from .projection import nearest_neighbours

    n = len(X)
    c = n - 1 if n <= 2000 else min(n - 1, k + per_window + 2)
    cand = nearest_neighbours(X, c).astype(np.int64)
    if cand.shape[1] == 0:
        return np.empty((n, 0), dtype=np.int32)
    own = (
        (track_ids[cand] == track_ids[:, None])
        & (start_ms[cand] < end_ms[:, None])
        & (end_ms[cand] > start_ms[:, None])
    )
    keep = ~own
    k_eff = int(min(k, keep.sum(axis=1).min()))
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k_eff]  # kept candidates, nearest first
    return np.take_along_axis(cand, order, axis=1).astype(np.int32)


def _relative(paths: list[str]) -> list[str]:
    try:
        common = os.path.commonpath([os.path.dirname(p) for p in paths])
    except ValueError:
        return paths
    return [os.path.relpath(p, common) for p in paths] if common not in ("", "/") else paths


def plot_segments(
    file: LibraryFile,
    *,
    projection: str = "pca",
    color: str | None = None,
    output: str | os.PathLike,
    segmentation: str | None = None,
) -> PlotResult:
    """Write the map of the active segments of one segmentation as one self-contained page.

    Parameters
    ----------
    file : LibraryFile
    projection : {'pca', 'umap'}
    color : {None, 'kmeans', 'hdbscan', 'file'}
        None: the latest clustering run over the segmentation (any method), else by file;
        a method: its latest run over the segmentation; ``'file'``: by recording.
    output : path
    segmentation : str, optional
        Label (``1.0/0.5``), preset or id; default the first registered.

    Raises
    ------
    UsageError, NothingIndexed, NoClusteringRun, AudiodbError
    """
    started = time.monotonic()
    if projection not in PROJECTIONS:
        raise UsageError(f"Unknown projection {projection!r}: choose pca or umap.")
    if color is not None and color not in SEGMENT_COLORS:
        raise UsageError(f"Unknown --color {color!r} for a map of segments: choose kmeans, hdbscan or file.")
    with file.connect() as con:
        seg = segment_export.pick_segmentation(con, file.params, segmentation)
        stored = segment_store.load_segments(con, seg.id, active_only=True)
        total = len(stored.track_ids)
        if total == 0:
            raise NothingIndexed(
                f"No active segments of {seg.label} are stored yet: run audiodb scan DIR (audiodb status counts them)."
            )
        runs = segment_export.latest_segment_runs(con, seg.id)
        if color in CLUSTER_METHODS and color not in runs:
            raise NoClusteringRun(
                f"No {METHOD_LABELS[color]} clustering of the {seg.label} segments yet: run audiodb cluster "
                f"--segments --method {color} first (or colour by file: --color file)."
            )
        if total > MAX_POINTS:
            rows = np.sort(np.random.default_rng(0).choice(total, MAX_POINTS, replace=False))
        else:
            rows = np.arange(total)
        tids, seg_index = stored.track_ids[rows], stored.seg_index[rows]
        start_ms, end_ms = stored.start_ms[rows], stored.end_ms[rows]
        labels = segment_export.segment_cluster_labels(con, seg.id, tids, seg_index)
        info = track_info(con, sorted(set(tids.tolist())), ("path",))
    paths = [info[int(t)][0] for t in tids]
    space = Space(np.arange(total), stored.vectors, SEGMENT_METRIC, seg.feature_names())
    X = space.transform(stored.vectors[rows])
    del stored
    n = len(rows)
    if n < 3:
        raise UsageError(f"A map needs at least 3 active segments (there are {n}).")
    Y, proj = project(X, projection)
    per_window = 2 * math.ceil(seg.window_ms / max(seg.hop_ms, 1))
    neighbours = moment_neighbours(X, tids, start_ms, end_ms, N_NEIGHBOURS, per_window)

    method = color if color in CLUSTER_METHODS else None
    if color is None and runs:
        method = max(runs, key=lambda m: runs[m]["id"])
    if method is not None:
        coloring = cluster_coloring(method, labels[method], runs[method])
        coloring.notes = [
            t.replace(" tracks were indexed after that run", " segments were computed after that run").replace(
                f"audiodb cluster --method {method}", f"audiodb cluster --segments --method {method}"
            )
            for t in coloring.notes
        ]
        what = f"{METHOD_LABELS[method]} Cluster"
    else:
        import pyarrow as pa

        coloring = column_coloring("file", "VARCHAR", pa.array(_relative(paths)))
        if color is None:
            coloring.notes.insert(
                0, f"Coloured by file: no clustering of the {seg.label} segments yet (audiodb cluster --segments)."
            )
        what = "File"
    shown = (
        f"{n:,} active segments of {seg.label} (window {seg.window_ms / 1000:g} s, hop {seg.hop_ms / 1000:g} s)"
        if n == total
        else f"{n:,} of the {total:,} active segments of {seg.label}, a uniform random sample "
        f"(seed 0; a map shows at most {MAX_POINTS:,})"
    )
    notes = [
        f"{shown}, from {len(info)} files. "
        + proj["notes"][0].replace("features.", "features, feature groups weighted alike (as similar --segments)."),
        *proj["notes"][1:],
        *coloring.notes,
    ]
    hint = (
        f"Click a point to play that moment (from its start to its end) and list its {neighbours.shape[1]} "
        "nearest moments (other windows of its file that overlap it left out"
        + (", among the points drawn)." if n < total else ").")
    )
    name = "PCA Projection of Segments" if projection == "pca" else "UMAP of Segments"
    page = build_page(
        title=f"{name} — Colored by {what}",
        x=Y[:, 0],
        y=Y[:, 1],
        paths=paths,
        durations=(end_ms - start_ms) / 1000.0,
        coloring=coloring,
        neighbours=neighbours,
        axes=proj["axes"],
        notes=[*notes, hint],
        clusters=labels,
        moments={"start_ms": start_ms, "end_ms": end_ms, "segmentation": seg.label},
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
        n_points=n,
        projection=projection,
        color=what,
        size_bytes=out.stat().st_size,
        seconds=time.monotonic() - started,
        notes=notes,
    )
