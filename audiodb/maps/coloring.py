"""How a map's points are coloured: by a clustering run or by a column of ``tracks``."""

from __future__ import annotations

import dataclasses
import datetime
import os
from collections.abc import Sequence

import numpy as np

__all__ = [
    "CLUSTER_METHODS",
    "FEW_VALUES",
    "MAX_CATEGORIES",
    "METHOD_LABELS",
    "MISSING_COLOR",
    "NOISE_COLOR",
    "PALETTE",
    "Coloring",
    "cluster_coloring",
    "cluster_labels",
    "column_coloring",
    "is_numeric",
    "is_temporal",
]

CLUSTER_METHODS = ("kmeans", "hdbscan")
METHOD_LABELS = {"kmeans": "k-means", "hdbscan": "HDBSCAN"}

#: plotly's ``px.colors.qualitative.Dark24``, the notebook's palette; colour = cluster id mod 24,
#: so a cluster keeps its colour across runs (cluster ids are kept stable by ``audiodb cluster``).
PALETTE = (
    "#2E91E5",
    "#E15F99",
    "#1CA71C",
    "#FB0D0D",
    "#DA16FF",
    "#222A2A",
    "#B68100",
    "#750D86",
    "#EB663B",
    "#511CFB",
    "#00A08B",
    "#FB00D1",
    "#FC0080",
    "#B2828D",
    "#6C7C32",
    "#778AAE",
    "#862A16",
    "#A777F1",
    "#620042",
    "#1616A7",
    "#DA60CA",
    "#6C4516",
    "#0D2A63",
    "#AF0038",
)
NOISE_COLOR = "#7f7f7f"  # the notebook's "medium grey" for HDBSCAN noise
MISSING_COLOR = "#c5c9d0"  # no value / not in the clustering run / lumped categories
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
    hover: list[str | None] | None = None  # the value of each point as hover text shows it (columns only)
    notes: list[str] = dataclasses.field(default_factory=list)


def is_temporal(typ: str) -> bool:
    return typ.startswith(("TIMESTAMP", "DATE"))


def _is_integer(typ: str) -> bool:
    return typ.lstrip("U").startswith(("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT"))


def is_numeric(typ: str) -> bool:
    return typ.startswith(
        (
            "TINYINT",
            "SMALLINT",
            "INTEGER",
            "BIGINT",
            "HUGEINT",
            "UTINYINT",
            "USMALLINT",
            "UINTEGER",
            "UBIGINT",
            "UHUGEINT",
            "FLOAT",
            "DOUBLE",
            "DECIMAL",
            "REAL",
        )
    )


def cluster_labels(column) -> np.ndarray:
    return np.asarray(column.fill_null(_NO_CLUSTER).to_numpy(zero_copy_only=False), dtype=np.int32)


def cluster_coloring(method: str, labels: np.ndarray, run: dict) -> Coloring:
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
        notes.append(
            f"{missing} tracks were indexed after that run and are grey ('not clustered'): "
            f"run audiodb cluster --method {method} to include them."
        )
    return Coloring(kind="discrete", title=f"{label} cluster", codes=codes, categories=categories, notes=notes)


def _common_folder(values: Sequence[str]) -> str:
    try:
        common = os.path.commonpath([v for v in values if v])
    except ValueError:
        return ""
    return "" if common in ("", "/") else common


def column_coloring(name: str, typ: str, column) -> Coloring:
    if is_numeric(typ) or is_temporal(typ):
        values = np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
        finite = values[np.isfinite(values)]
        distinct = np.unique(finite)
        if _is_integer(typ) and len(distinct) <= FEW_VALUES:
            texts = [None if not np.isfinite(v) else str(int(v)) for v in values]
            return _categories(name, texts, order=[str(int(v)) for v in distinct])
        ticks = None
        if is_temporal(typ) and len(finite):
            lo, hi = float(finite.min()), float(finite.max())
            tickvals = [lo] if hi == lo else [lo + (hi - lo) * i / 4 for i in range(5)]
            fmt = "%Y-%m-%d %H:%M" if hi - lo < 5 * 86400 else "%Y-%m-%d"
            ticks = (
                tickvals,
                [datetime.datetime.fromtimestamp(v, datetime.timezone.utc).strftime(fmt) for v in tickvals],
            )
            hover = [
                None
                if not np.isfinite(v)
                else datetime.datetime.fromtimestamp(v, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
                for v in values
            ]
        else:
            hover = [None if not np.isfinite(v) else f"{v:.6g}" for v in values]
        notes = []
        if len(finite) < len(values):
            notes.append(f"{len(values) - len(finite)} tracks have no {name} (grey).")
        return Coloring(kind="continuous", title=name, values=values, ticks=ticks, hover=hover, notes=notes)
    texts = column.to_pylist()
    return _categories(name, texts, shorten=name == "folder")


def _categories(
    name: str, texts: list[str | None], *, order: list[str] | None = None, shorten: bool = False
) -> Coloring:
    counts: dict[str, int] = {}
    for t in texts:
        if t is not None:
            counts[t] = counts.get(t, 0) + 1
    ranked = sorted(counts, key=lambda t: (-counts[t], t))
    kept = ranked if len(ranked) <= MAX_CATEGORIES else ranked[: MAX_CATEGORIES - 1]
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
        notes.append(
            f"{name} has {len(ranked)} values: the {len(kept)} most common have their own colour, "
            "the rest are grey; hover shows each track's value."
        )
    else:
        other = -1
    none = -1
    if any(t is None for t in texts):
        none = len(categories)
        categories.append(("(none)", MISSING_COLOR))
    codes = np.array([none if t is None else code_of.get(t, other) for t in texts], dtype=np.int32)
    return Coloring(
        kind="discrete",
        title=name,
        codes=codes,
        categories=categories,
        hover=[t if t is not None else "(none)" for t in texts],
        notes=notes,
    )
