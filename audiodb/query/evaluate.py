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
from ..store.words import check_same, same_codes, tag_labels
from .neighbours import load_for, require_tracks
from .space import space_for

__all__ = [
    "ALL_LABELS",
    "EVAL_COLUMNS",
    "FILTERED_COLUMNS",
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
    #: With --filter-same: the kind (artist, album, folder); the rows then carry
    #: :data:`FILTERED_COLUMNS` too, the figures with same-kind neighbours left out.
    filter_same: str | None = None
    #: With --filter-same: queries whose own artist (album) is unknown, so nothing was left out for them.
    unfiltered: int = 0
    #: Tracks with vectors that have no label (no such tag, not in the CSV): not queried, not ranked.
    unlabelled: int = 0


EVAL_COLUMNS = ("metric", "label", "tracks", "k", "precision_at_k", "accuracy_1nn")
#: Added to each row with ``filter_same``: the same figures when the neighbours that share the
#: query's artist (album, folder) are left out of its ranking, as Musly's artist filter does.
FILTERED_COLUMNS = ("precision_at_k_filtered", "accuracy_1nn_filtered")
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
    file: LibraryFile,
    label_from: str = "folder",
    *,
    metrics: Sequence[str | None] = (None,),
    k: int = 5,
    filter_same: str | None = None,
) -> EvalReport:
    """Leave-one-out k-NN evaluation: does "similar" mean "same label" in this library?

    Each labelled track whose label has at least two tracks is a query; its
    ``k`` nearest other labelled tracks are found in each metric's space
    (z-score statistics from the whole library). precision@k is the share of
    them with the query's label; 1-NN accuracy the share of queries whose
    nearest track has it. Figures are given per label and over all queries.
    A label with m < k + 1 tracks has at most m - 1 of its own among the k,
    so its precision@k is at most (m - 1) / k (:attr:`EvalReport.ceilings`).

    With ``filter_same`` ('artist', 'album' or 'folder'), each query's
    neighbours that share its artist (album, folder) are also left out of a
    second ranking, and each row gains :data:`FILTERED_COLUMNS`: same-artist
    neighbours make genre figures look better than the space is. A track
    without the tag is never "the same" as another (nothing is left out for it).

    Parameters
    ----------
    label_from : 'folder', 'tag:NAME' (a tag column such as genre or artist, or a key
        of the ``tags`` JSON), or a path to a CSV of path,label
    metrics : metric names; None is the default metric (see :func:`load_for`)
    filter_same : None, 'artist', 'album' or 'folder'
    """
    if k < 1:
        raise UsageError("-k must be at least 1.")
    check_same(filter_same, "--filter-same")
    with file.connect() as con:
        metrics, tracks = load_for(con, file, metrics)
        require_tracks(tracks, con)
        with_vectors = set(tracks.track_ids.tolist())
        rows = [r for r in catalog.track_paths(con) if r[0] in with_vectors]
        unmatched: list[str] = []
        if label_from == "folder":
            labels = labels_from_folders(rows)
        elif label_from.startswith("tag:"):
            labels = {t: v for t, v in tag_labels(con, label_from[4:]).items() if t in with_vectors}
            if not labels:
                raise UsageError(
                    f"No track with current vectors has the tag {label_from[4:]!r}. Tag columns: "
                    'audiodb sql "describe tracks"; other tags: audiodb sql "select tags from tracks limit 5".'
                )
        else:
            labels, unmatched = labels_from_csv(label_from, rows)
        groups = same_codes(con, tracks.track_ids, filter_same) if filter_same else None
    report = evaluate_vectors(tracks, labels, metrics, k, unmatched, groups=groups)
    report.filter_same = filter_same
    report.unlabelled = len(with_vectors) - report.labelled
    return report


def evaluate_vectors(
    tracks: VectorSet,
    labels: dict[int, str],
    metrics: Sequence[str],
    k: int,
    unmatched: list[str] | None = None,
    *,
    groups: np.ndarray | None = None,
) -> EvalReport:
    """Leave-one-out k-NN figures of ``tracks`` for ``labels`` ({track_id: label}) in each metric.

    ``groups`` (one code per track, ``-1`` unknown; :func:`audiodb.store.words.same_codes`):
    the rows also get :data:`FILTERED_COLUMNS`, ranking each query without the tracks of its
    own group. A neighbour slot left empty because every other track is in the group is a miss.
    """
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
    gsel = groups[sel] if groups is not None else None
    if gsel is not None:
        report.unfiltered = int((gsel[queries] < 0).sum())
    for metric in metrics:
        space = space_for(tracks, metric)
        x = space.transform(space.vectors[sel])
        hits = np.zeros(len(sel))
        first = np.zeros(len(sel), dtype=bool)
        hits_f = np.zeros(len(sel))
        first_f = np.zeros(len(sel), dtype=bool)
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
            if gsel is not None:
                own = (gsel[q][:, None] == gsel[None, :]) & (gsel[q][:, None] >= 0)
                d[own] = np.inf
                part = np.argpartition(d, kk - 1, axis=1)[:, :kk]
                nn = np.take_along_axis(part, np.argsort(np.take_along_axis(d, part, 1), axis=1, kind="stable"), 1)
                same = (codes[nn] == codes[q][:, None]) & np.isfinite(np.take_along_axis(d, nn, 1))
                hits_f[q] = same.mean(axis=1)
                first_f[q] = same[:, 0]
        for label_index in [None, *range(len(uniq))]:
            qs = queries if label_index is None else queries[codes[queries] == label_index]
            if label_index is not None and counts[label_index] < 2:
                continue
            row = {
                "metric": metric,
                "label": ALL_LABELS if label_index is None else str(uniq[label_index]),
                "tracks": len(qs),
                "k": kk,
                "precision_at_k": round(float(hits[qs].mean()), 4),
                "accuracy_1nn": round(float(first[qs].mean()), 4),
            }
            if gsel is not None:
                row["precision_at_k_filtered"] = round(float(hits_f[qs].mean()), 4)
                row["accuracy_1nn_filtered"] = round(float(first_f[qs].mean()), 4)
            report.rows.append(row)
    return report
