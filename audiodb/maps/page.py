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
  euclidean in the z-scored space, :data:`audiodb.maps.projection.N_NEIGHBOURS`
  per track); a search
  box highlights tracks by name;
- points are drawn with WebGL (``scattergl``), so 50,000 stay responsive; a
  browser without WebGL gets SVG.

This module builds the page from ``static/page.html``, ``page.css`` and
``app.js`` (package data); :mod:`audiodb.maps.write` reads the library and
writes it. plotly is imported inside the function that uses it.
"""

from __future__ import annotations

import base64
import functools
import importlib.resources
import json
import os
import pathlib
import re
from collections.abc import Sequence

import numpy as np

from .coloring import METHOD_LABELS, Coloring

__all__ = [
    "PLOT_BGCOLOR",
    "build_page",
]

PLOT_BGCOLOR = "#F0F2F5"  # the notebook's


@functools.cache
def _static(name: str) -> str:
    """The text of ``static/<name>``, shipped as package data."""
    return (importlib.resources.files("audiodb.maps") / "static" / name).read_text(encoding="utf-8")


def _typed(values: np.ndarray, dtype: str) -> dict:
    """A typed array for the page: ``{"t": dtype, "b": base64 of its little-endian bytes}``."""
    arr = np.ascontiguousarray(values, dtype=np.dtype(dtype).newbyteorder("<"))
    return {"t": np.dtype(dtype).str.lstrip("<>|="), "b": base64.b64encode(arr.tobytes()).decode("ascii")}


def _index_dtype(n: int) -> str:
    return "u2" if n <= 0xFFFF else "u4"


def _script_json(obj) -> str:
    """JSON that is safe inside ``<script>``: no ``<``, ``>`` or ``&`` characters at all."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (
        text.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


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
    titles: Sequence[str | None] | None = None,
    moments: dict | None = None,
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
    titles : sequence of str or None, optional
        ``artist – title`` of each track where its tags say; hover shows it above the file name.
    moments : dict, optional
        A map of moments (:mod:`audiodb.maps.segments`): ``start_ms`` and ``end_ms`` (arrays,
        length n) of each point's window in its file, and ``segmentation`` (its label). A
        click then plays the file from the start to the end.

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
        assert coloring.codes is not None  # a discrete colouring has codes
        color["codes"] = _typed(coloring.codes, "i4")
        color["categories"] = [{"name": name, "color": c} for name, c in coloring.categories]
    else:
        assert coloring.values is not None  # a continuous colouring has values
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
        "titles": list(titles) if titles is not None and any(titles) else None,
        "moments": None
        if moments is None
        else {
            "start_ms": _typed(moments["start_ms"], "u4"),
            "end_ms": _typed(moments["end_ms"], "u4"),
            "segmentation": moments["segmentation"],
        },
    }
    parts = {
        "TITLE": _html_text(title),
        "CSS": _static("page.css"),
        "DATA": _script_json(data),
        "PLOTLY": plotly_js.replace("</script", "<\\/script"),  # a stray end tag would cut it short
        "APP": _static("app.js"),
    }
    # One pass over the template: nothing inserted is searched again.
    return re.sub(r"\{\{([A-Z]+)\}\}", lambda m: parts[m.group(1)], _static("page.html"))


def _html_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
