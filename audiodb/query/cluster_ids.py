"""Stable cluster ids: a new run's clusters take the ids of the previous run's that they overlap.

Matching is by the Jaccard index of the tracks both runs saw, maximised one to
one by the Hungarian algorithm (scipy, imported inside :func:`_match`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["match_ids"]


def match_ids(
    labels: np.ndarray,
    previous: tuple[np.ndarray, np.ndarray] | None,
    *,
    track_ids: np.ndarray | None = None,
    min_jaccard: float = 0.1,
) -> np.ndarray:
    """Renumber ``labels`` so clusters keep the ids they had in a previous run.

    New clusters are matched one-to-one to previous ones by overlap of the
    tracks both runs saw (Jaccard index, total maximised by the Hungarian
    algorithm); a match needs ``min_jaccard``. Matched clusters take the previous id;
    the others get fresh ids above every previous one, largest cluster first.
    Without a previous run, ids are 0, 1, ... by size. Noise (``-1``) stays.

    Parameters
    ----------
    labels : ndarray of int, shape (n,)
    previous : (track_ids, labels) of the previous run, or None
    track_ids : ndarray, shape (n,), the tracks ``labels`` belong to (needed with ``previous``)

    Returns
    -------
    ndarray of int64, shape (n,)
    """
    labels = np.asarray(labels, dtype=np.int64)
    ids, sizes = np.unique(labels[labels != -1], return_counts=True)
    mapping: dict[int, int] = {}
    next_id = 0
    if previous is not None and len(previous[0]) and len(ids):
        assert track_ids is not None, "track_ids is needed with previous"
        prev_tracks, prev_labels = (np.asarray(a, dtype=np.int64) for a in previous)
        next_id = int(prev_labels.max()) + 1 if len(prev_labels) else 0
        common, new_idx, old_idx = np.intersect1d(track_ids, prev_tracks, return_indices=True)
        a, b = labels[new_idx], prev_labels[old_idx]
        keep = (a != -1) & (b != -1)
        a, b = a[keep], b[keep]
        old_ids = np.unique(b)
        if len(a) and len(old_ids):
            # Sizes among the tracks both runs saw (noise in either run counts as outside).
            size_new = np.bincount(np.searchsorted(ids, labels[new_idx][labels[new_idx] != -1]), minlength=len(ids))
            size_old = np.bincount(
                np.searchsorted(old_ids, prev_labels[old_idx][np.isin(prev_labels[old_idx], old_ids)]),
                minlength=len(old_ids),
            )
            pairs = _match(np.searchsorted(ids, a), np.searchsorted(old_ids, b), size_new, size_old, min_jaccard)
            mapping = {int(ids[r]): int(old_ids[c]) for r, c in pairs}
        next_id = max([next_id, *(v + 1 for v in mapping.values())])
    for i in np.argsort(-sizes, kind="stable"):
        if int(ids[i]) not in mapping:
            mapping[int(ids[i])] = next_id
            next_id += 1
    out = np.full(len(labels), -1, dtype=np.int64)
    clustered = labels != -1
    out[clustered] = np.array([mapping[int(i)] for i in ids], dtype=np.int64)[np.searchsorted(ids, labels[clustered])]
    return out


def _match(
    ia: np.ndarray, ib: np.ndarray, size_new: np.ndarray, size_old: np.ndarray, min_jaccard: float
) -> list[tuple[int, int]]:
    """One-to-one pairs (new, old) maximising total Jaccard, each at least ``min_jaccard``.

    ``ia``, ``ib``: for each track in a cluster in both runs, its new and old cluster
    index. Only overlapping pairs are looked at; the Hungarian algorithm runs on each
    connected group of them (a cluster has at most 1 / min_jaccard candidates), so
    thousands of clusters cost no more than a few. A group too large for that
    (two very different runs) is matched greedily, best pair first.
    """
    from scipy.optimize import linear_sum_assignment
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n_old = len(size_old)
    key, overlap = np.unique(ia * n_old + ib, return_counts=True)
    ra, rb = np.divmod(key, n_old)
    jaccard = overlap / (size_new[ra] + size_old[rb] - overlap)
    keep = jaccard >= min_jaccard
    ra, rb, jaccard = ra[keep], rb[keep], jaccard[keep]
    if not len(ra):
        return []
    n_new = len(size_new)
    graph = coo_matrix((np.ones(len(ra)), (ra, n_new + rb)), shape=(n_new + n_old,) * 2)
    _, component = connected_components(graph, directed=False)
    pairs: list[tuple[int, int]] = []
    order = np.argsort(component[ra], kind="stable")
    for edges in np.split(order, np.flatnonzero(np.diff(component[ra][order])) + 1):
        rows, cols = np.unique(ra[edges]), np.unique(rb[edges])
        if len(rows) * len(cols) <= 250_000:
            dense = np.zeros((len(rows), len(cols)))
            dense[np.searchsorted(rows, ra[edges]), np.searchsorted(cols, rb[edges])] = jaccard[edges]
            r, c = linear_sum_assignment(-dense)
            pairs += [(int(rows[i]), int(cols[j])) for i, j in zip(r, c) if dense[i, j] > 0]
        else:
            used_r, used_c = set(), set()
            for e in edges[np.argsort(-jaccard[edges], kind="stable")]:
                if ra[e] not in used_r and rb[e] not in used_c:
                    used_r.add(ra[e])
                    used_c.add(rb[e])
                    pairs.append((int(ra[e]), int(rb[e])))
    return pairs
