"""Evaluation: does "similar" mean "same label" in this library? Leave-one-out k-NN figures."""

from __future__ import annotations

import csv
import dataclasses
import os
from collections.abc import Sequence

import numpy as np

from ..errors import UsageError
from ..store import catalog
from ..store.connection import LibraryFile
from ..store.vectors import VectorSet
from .neighbours import load_for, require_tracks
from .space import space_for

__all__ = [
    "ALL_LABELS",
    "EVAL_COLUMNS",
    "EvalReport",
    "evaluate",
    "evaluate_vectors",
    "labels_from_csv",
    "labels_from_folders",
]


@dataclasses.dataclass
class EvalReport:
    """Leave-one-out k-NN figures: ``rows`` of dicts with keys :data:`EVAL_COLUMNS`."""

    rows: list[dict]
    labelled: int = 0
    unmatched: list[str] = dataclasses.field(default_factory=list)  # CSV paths not in the library
    singletons: list[str] = dataclasses.field(default_factory=list)  # labels with one track: no queries
    #: {label: the most its precision@k can be} for labels with fewer than k + 1 tracks, whose
    #: queries find at most (tracks - 1) of their own among k neighbours; ``"(all)"`` too when
    #: the overall figure cannot reach 1. Labels that can reach 1 are not in it.
    ceilings: dict[str, float] = dataclasses.field(default_factory=dict)


EVAL_COLUMNS = ("metric", "label", "tracks", "k", "precision_at_k", "accuracy_1nn")
ALL_LABELS = "(all)"


def labels_from_folders(rows: list[tuple[int, str]]) -> dict[int, str]:
    """Label each track with its folder, relative to the folder that holds them all."""
    folders = {tid: os.path.dirname(path) for tid, path in rows}
    if not folders:
        return {}
    root = os.path.commonpath(list(folders.values()))
    labels = {tid: os.path.relpath(f, root) for tid, f in folders.items()}
    if len(set(labels.values())) < 2:
        raise UsageError(
            "Every track is in the same folder, so folder names cannot label them. "
            "Give a CSV of path,label instead: audiodb eval --label-from labels.csv"
        )
    return labels


def labels_from_csv(csv_path: str, rows: list[tuple[int, str]]) -> tuple[dict[int, str], list[str]]:
    """Labels from a CSV of ``path,label`` (header optional; relative paths are relative to the CSV)."""
    by_path = {path: tid for tid, path in rows}
    base = os.path.dirname(os.path.abspath(csv_path))
    labels, unmatched = {}, []
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            lines = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    except OSError as e:
        raise UsageError(
            f"Cannot read labels from {csv_path}: {e.strerror}. Give 'folder' or a CSV of path,label."
        ) from None
    if lines and [c.strip().lower() for c in lines[0][:2]] == ["path", "label"]:
        lines = lines[1:]
    for line in lines:
        if len(line) < 2:
            raise UsageError(f"{csv_path}: each line needs path,label; got {','.join(line)!r}.")
        path, label = line[0].strip(), line[1].strip()
        full = os.path.normpath(os.path.join(base, os.path.expanduser(path)))
        tid = by_path.get(full)
        if tid is None:
            tid = by_path.get(os.path.realpath(full))
        if tid is None:
            unmatched.append(path)
        else:
            labels[tid] = label
    return labels, unmatched


def evaluate(
    file: LibraryFile, label_from: str = "folder", *, metrics: Sequence[str | None] = (None,), k: int = 5
) -> EvalReport:
    """Leave-one-out k-NN evaluation: does "similar" mean "same label" in this library?

    Each labelled track whose label has at least two tracks is a query; its
    ``k`` nearest other labelled tracks are found in each metric's space
    (z-score statistics from the whole library). precision@k is the share of
    them with the query's label; 1-NN accuracy the share of queries whose
    nearest track has it. Figures are given per label and over all queries.
    A label with m < k + 1 tracks has at most m - 1 of its own among the k,
    so its precision@k is at most (m - 1) / k (:attr:`EvalReport.ceilings`).

    Parameters
    ----------
    label_from : 'folder' or a path to a CSV of path,label
    metrics : metric names; None is the default metric (see :func:`load_for`)
    """
    if k < 1:
        raise UsageError("-k must be at least 1.")
    with file.connect() as con:
        metrics, tracks = load_for(con, file, metrics)
        require_tracks(tracks, con)
        with_vectors = set(tracks.track_ids.tolist())
        rows = [r for r in catalog.track_paths(con) if r[0] in with_vectors]
    unmatched: list[str] = []
    if label_from == "folder":
        labels = labels_from_folders(rows)
    else:
        labels, unmatched = labels_from_csv(label_from, rows)
    return evaluate_vectors(tracks, labels, metrics, k, unmatched)


def evaluate_vectors(
    tracks: VectorSet, labels: dict[int, str], metrics: Sequence[str], k: int, unmatched: list[str] | None = None
) -> EvalReport:
    """Leave-one-out k-NN figures of ``tracks`` for ``labels`` ({track_id: label}) in each metric."""
    sel = np.array([i for i, t in enumerate(tracks.track_ids) if int(t) in labels], dtype=np.int64)
    names = np.array([labels[int(t)] for t in tracks.track_ids[sel]], dtype=object)
    uniq, codes, counts = np.unique(names.astype(str), return_inverse=True, return_counts=True)
    if len(uniq) < 2:
        raise UsageError(f"Evaluation needs at least two labels with tracks in the library; found {len(uniq)}.")
    queries = np.flatnonzero(counts[codes] >= 2)
    kk = min(k, len(sel) - 1)
    report = EvalReport(
        [], labelled=len(sel), unmatched=unmatched or [], singletons=[str(u) for u, c in zip(uniq, counts) if c < 2]
    )
    reach = np.minimum(counts - 1, kk) / kk  # per label: own tracks among k neighbours, at best
    report.ceilings = {str(u): round(float(r), 4) for u, c, r in zip(uniq, counts, reach) if 2 <= c and r < 1}
    if report.ceilings:
        report.ceilings[ALL_LABELS] = round(float(reach[codes[queries]].mean()), 4)
    for metric in metrics:
        space = space_for(tracks, metric)
        x = space.transform(space.vectors[sel])
        hits = np.zeros(len(sel))
        first = np.zeros(len(sel), dtype=bool)
        step = max(1, min(1024, (1 << 24) // len(sel)))  # a block of distances stays ~128 MB
        for a in range(0, len(queries), step):
            q = queries[a : a + step]
            if metric == "cosine":
                d = 1.0 - x[q] @ x.T
            else:
                d = (x[q] ** 2).sum(1)[:, None] + (x**2).sum(1)[None, :] - 2.0 * x[q] @ x.T
            d[np.arange(len(q)), q] = np.inf  # leave the query out
            part = np.argpartition(d, kk - 1, axis=1)[:, :kk]
            nn = np.take_along_axis(part, np.argsort(np.take_along_axis(d, part, 1), axis=1, kind="stable"), 1)
            same = codes[nn] == codes[q][:, None]
            hits[q] = same.mean(axis=1)
            first[q] = same[:, 0]
        for label_index in [None, *range(len(uniq))]:
            qs = queries if label_index is None else queries[codes[queries] == label_index]
            if label_index is not None and counts[label_index] < 2:
                continue
            report.rows.append(
                {
                    "metric": metric,
                    "label": ALL_LABELS if label_index is None else str(uniq[label_index]),
                    "tracks": len(qs),
                    "k": kk,
                    "precision_at_k": round(float(hits[qs].mean()), 4),
                    "accuracy_1nn": round(float(first[qs].mean()), 4),
                }
            )
    return report
