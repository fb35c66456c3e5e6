"""Nearest neighbours of a track: which metric, which tracks, which query vector.

A query is a path (indexed, or any audio file analysed on the fly) or a track
id; :func:`resolve_queries` turns it into a raw vector, and :func:`similar`
ranks the library's tracks in one metric's space (:mod:`audiodb.query.space`).
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from ..errors import AudiodbWarning, NothingIndexed, TrackNotFound, UsageError
from ..paths import from_stored, to_stored
from ..store import catalog
from ..store.connection import LibraryFile
from ..store.vectors import VectorSet, load_tracks, stored_vector
from ..store.words import SAME_KINDS, WORD_KEYS, check_same, display_name, same_codes, track_words
from .space import DEFAULT_METRIC, EXTENDED_METRICS, check_metric, space_for

__all__ = [
    "CLUSTER_METHODS",
    "SAME_KINDS",
    "SIMILAR_COLUMNS",
    "WORD_KEYS",
    "Query",
    "display_name",
    "load_for",
    "require_tracks",
    "resolve_metric",
    "resolve_queries",
    "similar",
]

#: Keys of each neighbour ``similar`` returns, in order.
SIMILAR_COLUMNS = (
    "rank",
    "track_id",
    "path",
    *WORD_KEYS,
    "distance",
    "duration_sec",
    "cluster_kmeans",
    "cluster_hdbscan",
)
CLUSTER_METHODS = ("kmeans", "hdbscan")


def resolve_metric(metric: str | None, missing: int) -> str:
    """``metric``, or the default when None, given ``missing`` tracks without the second set.

    The extended metric needs every track's second feature set. Asked for by
    name, its absence is an error; as the default, ``blocks`` stands in (with
    a warning) until a scan has computed it.
    """
    if metric is not None:
        check_metric(metric)
    chosen = metric or DEFAULT_METRIC
    if chosen in EXTENDED_METRICS and missing:
        if metric is None:
            warnings.warn(
                AudiodbWarning(
                    f"{missing} tracks have no extended features yet (indexed by an older audiodb), so "
                    f"tracks are ranked with --metric blocks; run audiodb scan on their folders to compute "
                    f"them (one decode per file) and get the default {DEFAULT_METRIC!r} metric."
                ),
                stacklevel=4,
            )
            return "blocks"
        raise UsageError(
            f"--metric {chosen} needs the extended features, and {missing} tracks have none yet "
            "(indexed by an older audiodb). Run audiodb scan on their folders to compute them, "
            "or use --metric blocks."
        )
    return chosen


def load_for(con, file: LibraryFile, metrics: Sequence[str | None]) -> tuple[list[str], VectorSet]:
    """The metrics to use (None: the default, see :func:`resolve_metric`) and the tracks
    with the vectors they need, in one read of the vectors."""
    wanted = [m or DEFAULT_METRIC for m in metrics]
    extended = any(m in EXTENDED_METRICS for m in wanted)
    tracks = load_tracks(con, file.params, file.extended if extended else None)
    chosen = [resolve_metric(m, tracks.without_extended) for m in metrics]
    if extended and not any(m in EXTENDED_METRICS for m in chosen):
        tracks = load_tracks(con, file.params)  # fell back to blocks: every track, notebook vectors only
    return chosen, tracks


def require_tracks(tracks: VectorSet, con) -> None:
    if len(tracks.track_ids):
        return
    n = catalog.count_tracks(con)
    if n:
        raise NothingIndexed(
            f"The library has {n} tracks but none with current vectors; "
            "run audiodb scan on their folders to compute them."
        )
    raise NothingIndexed("The library is empty. Index some audio first: audiodb scan DIR")


@dataclasses.dataclass
class Query:
    """A track to search from: indexed (``track_id``) or a file analysed on the fly."""

    path: str
    vector: np.ndarray  # raw, (d,)
    track_id: int | None = None
    folder: str | None = None
    duration_sec: float | None = None
    content_hash: str | None = None


def resolve_queries(
    file: LibraryFile, refs: Iterable[str], embed: Callable | None = None, *, extended: bool = False
) -> list[Query]:
    """Turn paths or track ids into :class:`Query` objects.

    An indexed track's stored vector is used (no audio is read); a file that is
    not indexed (or whose vector is out of date) is analysed with ``embed``
    (default :func:`audiodb.analysis.embed.embed_file`) and not added. With
    ``extended``, each vector is the notebook's followed by the second set's.
    """
    refs = [str(r) for r in refs]
    found: list[tuple | None] = []
    vectors: dict[int, np.ndarray] = {}
    with file.connect() as con:
        for ref in refs:
            row = catalog.lookup_track(con, ref)
            found.append(row)
            if row is not None:
                v = stored_vector(con, row[0], file.params.id, file.extended.id if extended else None)
                if v is not None:
                    vectors[row[0]] = v
    out = []
    for ref, row in zip(refs, found):
        if row is not None and row[0] in vectors:
            out.append(
                Query(row[1], vectors[row[0]], track_id=row[0], folder=row[2], duration_sec=row[3], content_hash=row[4])
            )
            continue
        path = from_stored(row[1]) if row is not None else os.path.abspath(os.path.expanduser(ref))
        if row is None and not os.path.isfile(path) and os.path.isfile(from_stored(path)):
            path = from_stored(path)  # the printed form of a non-UTF-8 name
        if not os.path.isfile(path):
            if row is not None:
                raise TrackNotFound(
                    f"Track {ref!r} ({row[1]}) has no current vector and its file is gone; "
                    "run audiodb scan on its folder."
                )
            raise TrackNotFound(
                f"{ref!r} is neither an indexed track nor an audio file. Give a path to an audio file "
                'or a track id (audiodb sql "select track_id, path from tracks" lists them).'
            )
        if embed is None:
            from ..analysis.embed import embed_file

            embed = embed_file
        vector, meta = embed(path, file.params, extended=extended)
        if extended:
            vector = np.concatenate([vector, meta["extended_vector"]])
        out.append(
            Query(
                to_stored(path),
                np.asarray(vector, dtype=np.float32),
                row[0] if row else None,
                folder=to_stored(os.path.dirname(path)),
                duration_sec=meta.get("duration_sec"),
            )
        )
    return out


def similar(
    file: LibraryFile,
    track: str,
    *,
    n: int = 10,
    metric: str | None = None,
    where: str | None = None,
    exclude_folder: bool = False,
    exclude_same: str | None = None,
) -> list[dict]:
    """The ``n`` tracks nearest to ``track`` (a path, indexed or not, or a track id).

    The query itself is left out; an unindexed file is analysed and not added.
    ``metric`` None is :data:`DEFAULT_METRIC` (see :func:`load_for`).
    ``exclude_same`` ('artist', 'album' or 'folder') leaves out the tracks that
    share the query's artist, album or folder (:func:`audiodb.store.words.same_codes`:
    a track without the tag is never "the same"; an unindexed query file has no
    stored tags, so only ``folder`` leaves anything out for it).

    Returns
    -------
    list of dict
        Keys :data:`SIMILAR_COLUMNS`; ``distance`` ascending.
    """
    if n < 1:
        raise UsageError("-n must be at least 1.")
    check_same(exclude_same, "--exclude-same")
    if exclude_same == "folder":
        exclude_folder = True
    with file.connect() as con:
        (metric,), tracks = load_for(con, file, [metric])
        require_tracks(tracks, con)
    (query,) = resolve_queries(file, [track], extended=metric in EXTENDED_METRICS)
    with file.connect() as con:
        space = space_for(tracks, metric)
        mask = np.ones(len(space), dtype=bool)
        if query.track_id is not None:
            mask &= space.track_ids != query.track_id
        if (m := catalog.where_mask(con, space.track_ids, where)) is not None:
            mask &= m
        if exclude_folder and query.folder is not None:
            mask &= catalog.folder_mask(con, space.track_ids, [query.folder])
        if exclude_same in ("artist", "album") and query.track_id is not None:
            codes = same_codes(con, np.append(space.track_ids, query.track_id), exclude_same)
            if codes[-1] >= 0:  # the query's own artist (album) is known
                mask &= codes[:-1] != codes[-1]
        rows, dist = space.nearest(query.vector, n, mask)
        ids = [int(t) for t in space.track_ids[rows]]
        info = catalog.track_info(con, ids, ("path", "duration_sec"))
        labels = catalog.cluster_labels(con, ids, CLUSTER_METHODS)
        words = track_words(con, ids)
    return [
        {
            "rank": i + 1,
            "track_id": t,
            "path": info[t][0],
            **words[t],
            "distance": float(d),
            "duration_sec": float(info[t][1]) if info[t][1] is not None else None,
            **labels[t],
        }
        for i, (t, d) in enumerate(zip(ids, dist))
    ]
