"""Maps of the library: the notebook's PCA and UMAP scatter plots, as pages a user opens.

The notebook ends with four Plotly maps: the z-scored 180 features projected
to two dimensions by PCA (``n_components=2, random_state=42``, with the
explained variance of each axis printed) and by UMAP (``n_neighbors=10,
min_dist=0.1, metric='euclidean', random_state=42``), coloured by the k-means
and the HDBSCAN clusters (Dark24 colours, noise in grey ``#7f7f7f``). Here
each map is one self-contained HTML page:

- plotly.js is inside the page (no CDN): it opens with no network;
- the data are one JSON document in a ``<script type="application/json">``
  (``<``, ``>`` and ``&`` escaped), the numbers in it as base64 typed arrays;
  the page's script puts names into the document with ``textContent`` and
  HTML-escapes them for Plotly, so a file name is always text, never markup;
- clicking a point plays the track (an ``<audio>`` element with the file's
  ``file://`` URL) and lists its nearest neighbours, computed here (exact,
  euclidean in the z-scored space, :data:`N_NEIGHBOURS` per track); a search
  box highlights tracks by name;
- points are drawn with WebGL (``scattergl``), so 50,000 stay responsive; a
  browser without WebGL gets SVG.

plotly, scikit-learn and umap are imported inside the functions that use them.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import json
import os
import pathlib
import re
import time
from collections.abc import Callable, Sequence

import numpy as np

from . import db as _db
from .cluster import standardize  # z-score as StandardScaler does, without importing sklearn
from .errors import AudiodbError, UsageError
from .analysis.params import NOTEBOOK, FeatureParams

__all__ = [
    "CLUSTER_METHODS",
    "N_NEIGHBOURS",
    "PROJECTIONS",
    "UMAP_SETTINGS",
    "Coloring",
    "PlotResult",
    "build_page",
    "human_size",
    "nearest_neighbours",
    "plot_library",
    "project",
]

PROJECTIONS = ("pca", "umap")
CLUSTER_METHODS = ("kmeans", "hdbscan")
METHOD_LABELS = {"kmeans": "k-means", "hdbscan": "HDBSCAN"}

#: The notebook's UMAP, as it is called there.
UMAP_SETTINGS = {"n_neighbors": 10, "min_dist": 0.1, "metric": "euclidean", "random_state": 42}
#: The notebook's PCA.
PCA_SETTINGS = {"n_components": 2, "random_state": 42}

#: Nearest neighbours listed for a clicked track (stored for every track in the page).
N_NEIGHBOURS = 5

#: plotly's ``px.colors.qualitative.Dark24``, the notebook's palette; colour = cluster id mod 24,
#: so a cluster keeps its colour across runs (cluster ids are kept stable by ``audiodb cluster``).
PALETTE = (
    "#2E91E5", "#E15F99", "#1CA71C", "#FB0D0D", "#DA16FF", "#222A2A", "#B68100", "#750D86",
    "#EB663B", "#511CFB", "#00A08B", "#FB00D1", "#FC0080", "#B2828D", "#6C7C32", "#778AAE",
    "#862A16", "#A777F1", "#620042", "#1616A7", "#DA60CA", "#6C4516", "#0D2A63", "#AF0038",
)
NOISE_COLOR = "#7f7f7f"  # the notebook's "medium grey" for HDBSCAN noise
MISSING_COLOR = "#c5c9d0"  # no value / not in the clustering run / lumped categories
PLOT_BGCOLOR = "#F0F2F5"  # the notebook's
#: A text (or few-valued integer) column gets this many legend entries at most; the rest
#: are drawn as one grey "other" entry (their own value still shows on hover).
MAX_CATEGORIES = 24
#: An integer column (channels, sample_rate) with at most this many distinct values is coloured as categories.
FEW_VALUES = 12

_NO_CLUSTER = np.iinfo(np.int32).min  # "not in the latest run" in the page's cluster arrays


@dataclasses.dataclass
class Coloring:
    """How the points are coloured.

    ``kind`` is ``'discrete'`` (``codes`` index ``categories``: ``(label, colour)``
    pairs, in legend order) or ``'continuous'`` (``values``, NaN where missing,
    drawn with the Viridis scale; ``ticks`` optionally labels the colour bar,
    e.g. dates).
    """

    kind: str
    title: str
    codes: np.ndarray | None = None
    categories: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    values: np.ndarray | None = None
    ticks: tuple[list[float], list[str]] | None = None
    hover: list[str] | None = None  # the value of each point as hover text shows it (columns only)
    notes: list[str] = dataclasses.field(default_factory=list)


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


# --------------------------------------------------------------------------- computation


def project(X_scaled: np.ndarray, projection: str) -> tuple[np.ndarray, dict]:
    """Project z-scored features to two dimensions as the notebook does.

    Parameters
    ----------
    X_scaled : ndarray, shape (n_tracks, n_features)
        Output of :func:`standardize`.
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
            "notes": [(f"Explained variance by PC1 and PC2: {r1:.4f} {r2:.4f} "
                       f"(together {r1 + r2:.1%}); PCA(n_components=2, random_state=42) on the "
                       f"z-scored {X_scaled.shape[1]} features.")],
        }
    if projection != "umap":
        raise UsageError(f"Unknown projection {projection!r}: choose pca or umap.")
    if n < 4:
        raise UsageError(f"A UMAP map needs at least 4 tracks with features (the library has {n}); "
                         "use --projection pca.")
    settings = dict(UMAP_SETTINGS)
    note = ("UMAP with the notebook's settings: n_neighbors=10, min_dist=0.1, metric=euclidean, "
            f"random_state=42, on the z-scored {X_scaled.shape[1]} features.")
    extra = {}
    if n <= settings["n_neighbors"]:
        settings["n_neighbors"] = n - 1
        extra["init"] = "random"
        note += (f" The library has {n} tracks, so n_neighbors is {n - 1} here and the start "
                 "layout random (spectral needs more tracks).")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # umap's notices about seeds overriding n_jobs
        import umap

        Y = umap.UMAP(n_components=2, **settings, **extra).fit_transform(X_scaled)
    return np.asarray(Y, dtype=np.float64), {"axes": ["UMAP-1", "UMAP-2"], "notes": [note],
                                             "settings": settings}


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


# --------------------------------------------------------------------------- reading the library


def _tracks_columns(con) -> dict[str, str]:
    return {name: typ for name, typ, *_ in con.execute("DESCRIBE tracks").fetchall()}


def _latest_run(con, method: str) -> dict | None:
    rows = con.execute(
        "SELECT id, space, parameters, n_clusters, n_noise, created_at FROM cluster_runs "
        "WHERE id = (SELECT max(id) FROM cluster_runs WHERE method = ?)", [method]).fetchall()
    if not rows:
        return None
    row = rows[0]
    keys = ("id", "space", "parameters", "n_clusters", "n_noise", "created_at")
    run = dict(zip(keys, row))
    try:
        run["parameters"] = json.loads(run["parameters"] or "{}")
    except ValueError:
        run["parameters"] = {}
    return run


def _no_clustering(method: str) -> AudiodbError:
    return AudiodbError(
        f"No {METHOD_LABELS[method]} clustering yet: run audiodb cluster --method {method} first "
        "(or colour by a column of tracks, e.g. --color folder).")


def _check_color(color: str, columns: dict[str, str]) -> None:
    if color in CLUSTER_METHODS or color in columns:
        return
    raise UsageError(f"Unknown --color {color!r}: choose kmeans, hdbscan or a column of tracks "
                     f"({', '.join(columns)}).")


def _is_temporal(typ: str) -> bool:
    return typ.startswith(("TIMESTAMP", "DATE"))


def _is_integer(typ: str) -> bool:
    return typ.lstrip("U").startswith(("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT"))


def _is_numeric(typ: str) -> bool:
    return typ.startswith(("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                           "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL", "REAL"))


def _read(con, color: str, columns: dict[str, str], params: FeatureParams):
    """One query: every track with current features, by path, with its clusters and colour column."""
    if color in CLUSTER_METHODS:
        value_sql = "NULL"
    else:
        quoted = '"' + color.replace('"', '""') + '"'
        typ = columns[color]
        if _is_temporal(typ):
            value_sql = f"epoch(t.{quoted})"
        elif _is_numeric(typ):
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
    return table, int(_db.count_stale(con, params.id))


def _clusters(column) -> np.ndarray:
    return np.asarray(column.fill_null(_NO_CLUSTER).to_numpy(zero_copy_only=False), dtype=np.int32)


def _cluster_coloring(method: str, labels: np.ndarray, run: dict) -> Coloring:
    label = METHOD_LABELS[method]
    ids = sorted(set(labels.tolist()) - {-1, _NO_CLUSTER})
    categories = [(str(c), PALETTE[c % len(PALETTE)]) for c in ids]
    code_of = {c: i for i, c in enumerate(ids)}
    if (labels == -1).any():
        code_of[-1] = len(categories)
        categories.append(("noise (-1)", NOISE_COLOR))
    missing = int((labels == _NO_CLUSTER).sum())
    if missing:
        code_of[_NO_CLUSTER] = len(categories)
        categories.append(("not clustered", MISSING_COLOR))
    codes = np.array([code_of[v] for v in labels.tolist()], dtype=np.int32)
    p = run["parameters"]
    what = [f"k={p['k']}"] if "k" in p else []
    what += [f"{key}={p[key]}" for key in ("min_cluster_size", "min_samples") if key in p]
    what.append(f"clustered in the {run['space']} space")
    noise = f", {run['n_noise']} noise" if method == "hdbscan" else ""
    notes = [f"Colours: {label} run {run['id']} ({', '.join(what)}): {run['n_clusters']} clusters{noise}."]
    if missing:
        notes.append(f"{missing} tracks were indexed after that run and are grey ('not clustered'): "
                     f"run audiodb cluster --method {method} to include them.")
    return Coloring(kind="discrete", title=f"{label} cluster", codes=codes, categories=categories, notes=notes)


def _common_folder(values: Sequence[str]) -> str:
    try:
        common = os.path.commonpath([v for v in values if v])
    except ValueError:
        return ""
    return "" if common in ("", "/") else common


def _column_coloring(name: str, typ: str, column) -> Coloring:
    if _is_numeric(typ) or _is_temporal(typ):
        values = np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
        finite = values[np.isfinite(values)]
        distinct = np.unique(finite)
        if _is_integer(typ) and len(distinct) <= FEW_VALUES:
            texts = [None if not np.isfinite(v) else str(int(v)) for v in values]
            return _categories(name, texts, order=[str(int(v)) for v in distinct])
        ticks = None
        if _is_temporal(typ) and len(finite):
            lo, hi = float(finite.min()), float(finite.max())
            tickvals = [lo] if hi == lo else [lo + (hi - lo) * i / 4 for i in range(5)]
            fmt = "%Y-%m-%d %H:%M" if hi - lo < 5 * 86400 else "%Y-%m-%d"
            ticks = (tickvals, [datetime.datetime.fromtimestamp(v, datetime.timezone.utc).strftime(fmt)
                                for v in tickvals])
            hover = [None if not np.isfinite(v) else
                     datetime.datetime.fromtimestamp(v, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
                     for v in values]
        else:
            hover = [None if not np.isfinite(v) else f"{v:.6g}" for v in values]
        notes = []
        if len(finite) < len(values):
            notes.append(f"{len(values) - len(finite)} tracks have no {name} (grey).")
        return Coloring(kind="continuous", title=name, values=values, ticks=ticks, hover=hover, notes=notes)
    texts = column.to_pylist()
    return _categories(name, texts, shorten=name == "folder")


def _categories(name: str, texts: list[str | None], *, order: list[str] | None = None,
                shorten: bool = False) -> Coloring:
    counts: dict[str, int] = {}
    for t in texts:
        if t is not None:
            counts[t] = counts.get(t, 0) + 1
    ranked = sorted(counts, key=lambda t: (-counts[t], t))
    kept = ranked if len(ranked) <= MAX_CATEGORIES else ranked[:MAX_CATEGORIES - 1]
    kept = [t for t in (order or sorted(kept)) if t in set(kept)]
    prefix = _common_folder(kept) if shorten and len(kept) > 1 else ""
    labels = [(os.path.relpath(t, prefix) if prefix else t) for t in kept]
    categories = [(label, PALETTE[i % len(PALETTE)]) for i, label in enumerate(labels)]
    code_of = {t: i for i, t in enumerate(kept)}
    notes = []
    if prefix:
        notes.append(f"Folders are shown relative to {prefix}.")
    rest = len(ranked) - len(kept)
    if rest:
        other = len(categories)
        categories.append((f"other ({rest} values)", MISSING_COLOR))
        notes.append(f"{name} has {len(ranked)} values: the {len(kept)} most common have their own colour, "
                     "the rest are grey; hover shows each track's value.")
    else:
        other = -1
    none = -1
    if any(t is None for t in texts):
        none = len(categories)
        categories.append(("(none)", MISSING_COLOR))
    codes = np.array([none if t is None else code_of.get(t, other) for t in texts], dtype=np.int32)
    return Coloring(kind="discrete", title=name, codes=codes, categories=categories,
                    hover=[t if t is not None else "(none)" for t in texts], notes=notes)


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
    runs = {m: _latest_run(con, m) for m in CLUSTER_METHODS}
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
    clusters = {m: (_clusters(table[f"cluster_{m}"]), runs[m]) if runs[m] else None for m in CLUSTER_METHODS}
    if color in CLUSTER_METHODS:
        coloring = _cluster_coloring(color, clusters[color][0], runs[color])
    else:
        coloring = _column_coloring(color, columns[color], table["color_value"])
    return table, X, coloring, clusters, stale


# --------------------------------------------------------------------------- the page


def _typed(values: np.ndarray, dtype: str) -> dict:
    """A typed array for the page: ``{"t": dtype, "b": base64 of its little-endian bytes}``."""
    arr = np.ascontiguousarray(values, dtype=np.dtype(dtype).newbyteorder("<"))
    return {"t": np.dtype(dtype).str.lstrip("<>|="), "b": base64.b64encode(arr.tobytes()).decode("ascii")}


def _index_dtype(n: int) -> str:
    return "u2" if n <= 0xFFFF else "u4"


def _script_json(obj) -> str:
    """JSON that is safe inside ``<script>``: no ``<``, ``>`` or ``&`` characters at all."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _folder_url(folder: str) -> str:
    url = pathlib.PurePosixPath(folder).as_uri() if os.sep == "/" else pathlib.Path(folder).as_uri()
    return url if url.endswith("/") else url + "/"


def build_page(
    *,
    title: str,
    x: np.ndarray,
    y: np.ndarray,
    paths: Sequence[str],
    durations: np.ndarray,
    coloring: Coloring,
    neighbours: np.ndarray,
    axes: Sequence[str],
    notes: Sequence[str] = (),
    clusters: dict[str, np.ndarray] | None = None,
    plotly_js: str | None = None,
) -> str:
    """The HTML of one map, self-contained (plotly.js inside).

    Parameters
    ----------
    title : str
    x, y : ndarray, shape (n,)
        Point positions.
    paths : sequence of str, length n
        Absolute paths of the tracks (the audio element plays ``file://`` URLs of them).
    durations : ndarray, shape (n,)
        Seconds; NaN where unknown.
    coloring : Coloring
    neighbours : ndarray of int, shape (n, k)
        Row indexes of each point's nearest neighbours, nearest first.
    axes : two str
        Axis titles.
    notes : sequence of str
        Lines shown under the title.
    clusters : dict, optional
        ``{'kmeans': labels, 'hdbscan': labels}`` (int32, ``-1`` noise, int32 min
        for "not in the run") shown on hover.
    plotly_js : str, optional
        plotly.js source; default: the copy bundled with the plotly package.

    Returns
    -------
    str
    """
    if plotly_js is None:
        from plotly.offline import get_plotlyjs

        plotly_js = get_plotlyjs()
    n = len(paths)
    folders: dict[str, int] = {}
    folder_index = np.empty(n, dtype=np.int64)
    names = []
    for i, p in enumerate(paths):
        folder, name = os.path.split(p)
        folder_index[i] = folders.setdefault(folder, len(folders))
        names.append(name)
    k = neighbours.shape[1] if neighbours.ndim == 2 else 0
    color: dict = {"kind": coloring.kind, "title": coloring.title}
    if coloring.kind == "discrete":
        color["codes"] = _typed(coloring.codes, "i4")
        color["categories"] = [{"name": name, "color": c} for name, c in coloring.categories]
    else:
        color["values"] = _typed(coloring.values, "f4")
        if coloring.ticks:
            color["ticks"] = {"vals": coloring.ticks[0], "text": coloring.ticks[1]}
    if coloring.hover is not None:
        color["hover"] = coloring.hover
    data = {
        "title": title,
        "notes": list(notes),
        "axes": list(axes),
        "plot_bgcolor": PLOT_BGCOLOR,
        "n": n,
        "names": names,
        "folders": list(folders),
        "folder_urls": [_folder_url(f) for f in folders],
        "folder_index": _typed(folder_index, _index_dtype(len(folders))),
        "x": _typed(x, "f4"),
        "y": _typed(y, "f4"),
        "duration": _typed(np.where(np.isfinite(durations), durations, np.nan), "f4"),
        "k": k,
        "neighbours": _typed(neighbours.reshape(-1), _index_dtype(n)),
        "color": color,
        "clusters": {m: _typed(v, "i4") for m, v in (clusters or {}).items() if v is not None},
        "cluster_labels": METHOD_LABELS,
    }
    parts = {
        "TITLE": _html_text(title),
        "CSS": _CSS,
        "DATA": _script_json(data),
        "PLOTLY": plotly_js.replace("</script", "<\\/script"),  # a stray end tag would cut it short
        "APP": _APP_JS,
    }
    # One pass over the template: nothing inserted is searched again.
    return re.sub(r"\{\{([A-Z]+)\}\}", lambda m: parts[m.group(1)], _PAGE)


def _html_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


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
        from .analysis.params import ExtendedParams

        extended = ExtendedParams(base=params)
    with _db.connect(db, read_only=True, on_wait=on_wait) as con:
        table, X, coloring, clusters, stale = _load(con, color, params=params, extended=extended)
    paths = table["path"].to_pylist()
    durations = np.asarray(table["duration_sec"].to_numpy(zero_copy_only=False), dtype=np.float64)
    X_scaled = standardize(X)
    if extended is not None:
        from .similar import group_weights

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
    from .vectors import read_vectors

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


# --------------------------------------------------------------------------- page template

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="audiodb">
<title>{{TITLE}}</title>
<style>{{CSS}}</style>
</head>
<body>
<header>
  <h1 id="title"></h1>
  <ul id="notes"></ul>
</header>
<main>
  <div id="plot-wrap">
    <div id="plot" aria-label="map of the library"></div>
    <svg id="highlights" aria-hidden="true"></svg>
  </div>
  <aside>
    <section>
      <label for="search">Find a track</label>
      <input id="search" type="search" placeholder="part of a file name" autocomplete="off">
      <p id="search-count" class="dim"></p>
      <ul id="matches"></ul>
    </section>
    <section>
      <h2>Now playing</h2>
      <p id="now-name" class="name dim">Click a point to play it.</p>
      <p id="now-info" class="dim"></p>
      <p id="now-path" class="path dim"></p>
      <audio id="player" controls preload="none"></audio>
    </section>
    <section>
      <h2>Nearest neighbours</h2>
      <ol id="neighbours"></ol>
    </section>
  </aside>
</main>
<output id="audiodb-status" hidden></output>
<script type="application/json" id="audiodb-data">{{DATA}}</script>
<script>{{PLOTLY}}</script>
<script>{{APP}}</script>
</body>
</html>
"""

_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1d2330;
       display: flex; flex-direction: column; height: 100vh; }
header { padding: 10px 16px 0; }
h1 { font-size: 18px; margin: 0 0 4px; }
h2 { font-size: 14px; margin: 14px 0 4px; }
#notes { margin: 0; padding-left: 18px; color: #4a5263; font-size: 13px; }
main { display: flex; gap: 12px; padding: 8px 16px 16px; flex: 1 1 auto; min-height: 420px; }
#plot-wrap { flex: 1 1 auto; min-width: 0; position: relative; }
#plot { width: 100%; height: 100%; }
#highlights { position: absolute; left: 0; top: 0; width: 100%; height: 100%; pointer-events: none; }
#highlights .match { fill: none; stroke: #ff7f0e; stroke-width: 2.5; }
#highlights .selected { fill: none; stroke: #000; stroke-width: 3; }
#highlights .neighbour { fill: none; stroke: #000; stroke-width: 1.5; }
#highlights line { stroke: #000; stroke-width: 1; stroke-opacity: 0.5; }
aside { flex: 0 0 300px; overflow-y: auto; border-left: 1px solid #dde1e7; padding-left: 12px; }
label { font-weight: 600; display: block; margin-bottom: 4px; }
input[type=search] { width: 100%; box-sizing: border-box; padding: 5px 7px; font: inherit; }
ul#matches, ol#neighbours { margin: 4px 0; padding-left: 20px; }
ul#matches { list-style: none; padding-left: 0; max-height: 220px; overflow-y: auto; }
button.track { all: unset; cursor: pointer; color: #1f4fbf; overflow-wrap: anywhere; }
button.track:hover, button.track:focus { text-decoration: underline; }
.dim { color: #4a5263; margin: 2px 0; }
.name { font-weight: 600; color: #1d2330; overflow-wrap: anywhere; }
.path { font-size: 12px; overflow-wrap: anywhere; }
audio { width: 100%; margin-top: 6px; }
"""

_APP_JS = r"""
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("audiodb-data").textContent);
  var TYPES = {f4: Float32Array, i4: Int32Array, u2: Uint16Array, u4: Uint32Array};
  function decode(a) {
    var bin = atob(a.b), bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new TYPES[a.t](bytes.buffer);
  }
  // Names are data: they go into the page with textContent, and into Plotly's
  // (HTML-like) labels escaped.
  function esc(s) {
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;");
  }
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text != null) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }
  var NO_CLUSTER = -2147483648;
  var n = D.n, names = D.names, K = D.k;
  var X = decode(D.x), Y = decode(D.y), dur = decode(D.duration), folderOf = decode(D.folder_index);
  var nbrs = decode(D.neighbours);
  var clusters = {};
  Object.keys(D.clusters).forEach(function (m) { clusters[m] = decode(D.clusters[m]); });

  document.getElementById("title").textContent = D.title;
  var notesEl = document.getElementById("notes");
  D.notes.forEach(function (t) { notesEl.appendChild(el("li", t)); });

  function path(i) {
    var f = D.folders[folderOf[i]];
    return (f.charAt(f.length - 1) === "/" ? f : f + "/") + names[i];
  }
  function fileUrl(i) { return D.folder_urls[folderOf[i]] + encodeURIComponent(names[i]); }
  function clusterText(c) {
    return c === NO_CLUSTER ? "not clustered" : c === -1 ? "noise (-1)" : String(c);
  }
  function durationText(i) { return isNaN(dur[i]) ? "?" : dur[i].toFixed(1) + " s"; }
  function infoLines(i) {
    var lines = ["duration: " + durationText(i)];
    Object.keys(clusters).forEach(function (m) {
      lines.push(D.cluster_labels[m] + " cluster: " + clusterText(clusters[m][i]));
    });
    if (D.color.hover) lines.push(D.color.title + ": " + D.color.hover[i]);
    return lines;
  }
  function hoverText(i) {
    return "<b>" + esc(names[i]) + "</b><br>" + infoLines(i).map(esc).join("<br>");
  }

  function webgl() {
    try {
      var c = document.createElement("canvas");
      return !!(window.WebGLRenderingContext && (c.getContext("webgl") || c.getContext("experimental-webgl")));
    } catch (e) { return false; }
  }
  var TYPE = webgl() ? "scattergl" : "scatter";
  var size = n <= 1000 ? 9 : n <= 10000 ? 6 : 4;
  var opacity = n <= 10000 ? 0.85 : 0.7;

  // One trace per colour (discrete) or one coloured trace (continuous); members[t] maps a
  // trace's point number back to the track.
  var traces = [], members = [];
  function addTrace(idx, props) {
    var xs = new Float32Array(idx.length), ys = new Float32Array(idx.length), text = new Array(idx.length);
    for (var j = 0; j < idx.length; j++) { xs[j] = X[idx[j]]; ys[j] = Y[idx[j]]; text[j] = hoverText(idx[j]); }
    var t = {type: TYPE, mode: "markers", x: xs, y: ys, text: text,
             hovertemplate: "%{text}<extra></extra>", marker: {size: size, opacity: opacity}};
    Object.keys(props).forEach(function (key) { t[key] = props[key]; });
    traces.push(t);
    members.push(idx);
  }
  var color = D.color;
  if (color.kind === "discrete") {
    var codes = decode(color.codes), groups = color.categories.map(function () { return []; });
    for (var i = 0; i < n; i++) groups[codes[i]].push(i);
    color.categories.forEach(function (cat, c) {
      if (!groups[c].length) return;
      addTrace(Int32Array.from(groups[c]), {name: esc(cat.name),
        marker: {size: size, opacity: opacity, color: cat.color}});
    });
  } else {
    var values = decode(color.values), have = [], none = [];
    for (var i2 = 0; i2 < n; i2++) (isNaN(values[i2]) ? none : have).push(i2);
    var colorbar = {title: {text: esc(color.title)}};
    if (color.ticks) { colorbar.tickvals = color.ticks.vals; colorbar.ticktext = color.ticks.text.map(esc); }
    if (have.length) addTrace(Int32Array.from(have), {name: esc(color.title), showlegend: false,
      marker: {size: size, opacity: opacity, color: Float32Array.from(have, function (i) { return values[i]; }),
               colorscale: "Viridis", showscale: true, colorbar: colorbar}});
    if (none.length) addTrace(Int32Array.from(none), {name: "(none)",
      marker: {size: size, opacity: opacity, color: "#c5c9d0"}});
  }

  var layout = {
    xaxis: {title: {text: esc(D.axes[0])}, zeroline: false},
    yaxis: {title: {text: esc(D.axes[1])}, zeroline: false},
    plot_bgcolor: D.plot_bgcolor,
    legend: {title: {text: color.kind === "discrete" ? esc(color.title) : ""}, itemsizing: "constant"},
    hovermode: "closest",
    margin: {l: 60, r: 20, t: 36, b: 50},
    uirevision: "keep"
  };
  var gd = document.getElementById("plot");
  var player = document.getElementById("player");

  // Highlights (search matches, the selected track and its neighbours) are drawn on an SVG
  // layer over the plot, not as Plotly traces: changing a trace makes Plotly recompute every
  // trace, about a second at 50,000 points; this layer redraws in a few milliseconds.
  var SVG = "http://www.w3.org/2000/svg", layer = document.getElementById("highlights");
  var MAX_DRAWN_MATCHES = 5000;
  var matched = [], selected = -1;
  function svg(tag, attrs) {
    var e = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (a) { e.setAttribute(a, attrs[a]); });
    return e;
  }
  function drawHighlights(ev) {
    layer.textContent = "";
    var drag = gd.querySelector(".nsewdrag");
    if (!drag) return;
    var box = drag.getBoundingClientRect(), origin = layer.getBoundingClientRect();
    var xr = gd.layout.xaxis.range, yr = gd.layout.yaxis.range;
    if (ev) {  // while zooming or panning the layout lags behind the event
      if (ev["xaxis.range[0]"] !== undefined) xr = [ev["xaxis.range[0]"], ev["xaxis.range[1]"]];
      if (ev["yaxis.range[0]"] !== undefined) yr = [ev["yaxis.range[0]"], ev["yaxis.range[1]"]];
    }
    if (!xr || !yr) return;
    var area = svg("svg", {x: box.left - origin.left, y: box.top - origin.top, width: box.width, height: box.height});
    function px(i) {
      return [(X[i] - xr[0]) / (xr[1] - xr[0]) * box.width, (1 - (Y[i] - yr[0]) / (yr[1] - yr[0])) * box.height];
    }
    for (var j = 0; j < matched.length && j < MAX_DRAWN_MATCHES; j++) {
      var p = px(matched[j]);
      area.appendChild(svg("circle", {"class": "match", cx: p[0], cy: p[1], r: size / 2 + 5}));
    }
    if (selected >= 0) {
      var s = px(selected);
      for (var k = 0; k < K; k++) {
        var q = px(nbrs[selected * K + k]);
        area.appendChild(svg("line", {x1: s[0], y1: s[1], x2: q[0], y2: q[1]}));
        area.appendChild(svg("circle", {"class": "neighbour", cx: q[0], cy: q[1], r: size / 2 + 3}));
      }
      area.appendChild(svg("circle", {"class": "selected", cx: s[0], cy: s[1], r: size / 2 + 6}));
    }
    layer.appendChild(area);
  }

  function trackButton(i, onclick) {
    var b = el("button", names[i], "track");
    b.type = "button";
    b.title = path(i);
    b.addEventListener("click", function () { onclick(i); });
    return b;
  }
  function select(i, play) {
    selected = i;
    var name = document.getElementById("now-name");
    name.textContent = names[i];
    name.className = "name";
    document.getElementById("now-info").textContent = infoLines(i).join(" · ");
    document.getElementById("now-path").textContent = path(i);
    player.preload = "metadata";
    player.src = fileUrl(i);
    player.dataset.track = String(i);
    if (play) { var p = player.play(); if (p && p.catch) p.catch(function () {}); }
    var list = document.getElementById("neighbours");
    list.textContent = "";
    for (var j = 0; j < K; j++) {
      var nb = nbrs[i * K + j], li = el("li");
      li.appendChild(trackButton(nb, function (t) { select(t, true); }));
      li.appendChild(el("span", " " + durationText(nb), "dim"));
      list.appendChild(li);
    }
    drawHighlights();
  }

  var lower = null;
  function search(q) {
    q = q.trim().toLowerCase();
    var list = document.getElementById("matches"), count = document.getElementById("search-count");
    list.textContent = "";
    matched = [];
    if (q) {
      if (!lower) lower = names.map(function (s) { return s.toLowerCase(); });
      for (var i = 0; i < n; i++) if (lower[i].indexOf(q) !== -1) matched.push(i);
      count.textContent = (matched.length === 1 ? "1 track" : matched.length + " tracks") +
        (matched.length > 50 ? " (first 50 listed)" : "") +
        (matched.length > MAX_DRAWN_MATCHES ? "; the first " + MAX_DRAWN_MATCHES + " ringed" : "");
      matched.slice(0, 50).forEach(function (i) {
        var li = el("li");
        li.appendChild(trackButton(i, function (t) { select(t, true); }));
        list.appendChild(li);
      });
    } else {
      count.textContent = "";
    }
    drawHighlights();
    return matched;
  }
  var box = document.getElementById("search"), timer = null;
  box.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () { search(box.value); }, n > 10000 ? 150 : 0);
  });
  box.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter") {
      clearTimeout(timer);
      var found = search(box.value);
      if (found.length) select(found[0], true);
    }
  });

  Plotly.newPlot(gd, traces, layout, {responsive: true, displaylogo: false, scrollZoom: true}).then(function () {
    gd.on("plotly_click", function (ev) {
      var p = ev && ev.points && ev.points[0];
      if (!p) return;
      var idx = members[p.curveNumber];
      if (idx && p.pointNumber < idx.length) select(idx[p.pointNumber], true);
    });
    gd.on("plotly_relayouting", drawHighlights);
    gd.on("plotly_relayout", function () { drawHighlights(); });
    gd.on("plotly_afterplot", function () { drawHighlights(); });
    window.addEventListener("resize", function () { drawHighlights(); });
    var drawn = 0;
    for (var t = 0; t < traces.length; t++) drawn += gd._fullData[t].x.length;
    var status = {points: drawn, tracks: n, traces: traces.length, renderer: TYPE};
    document.getElementById("audiodb-status").textContent = JSON.stringify(status);
    document.body.dataset.ready = "1";
  });
  window.audiodbMap = {select: select, search: search, members: members, fileUrl: fileUrl, gd: gd};
})();
"""
