"""Moments like a query: exact search over the stored segments of one segmentation.

A query is an audio clip that is not indexed (decoded and cut into the segmentation's
windows, as a scan would) or ``PATH@START-END`` (seconds) of an indexed file (its stored
windows that overlap that span). Query windows that are active are used (all of them if none
is). Every stored window (active ones unless ``all_segments``) is scored by its distance to
the nearest query window, in the space of :class:`audiodb.query.space.Space` with the
``cosine`` metric (:data:`METRIC`): each of the segment features z-scored over the windows
searched, then one minus the cosine similarity. One float32 matrix-vector product per query window, over the matrix
that :mod:`audiodb.store.segment_cache` keeps memory-mapped beside the library (with its
z-score statistics) until the segments change.

Windows of one file that match (rank before the first window of moment ``n + 1``) and
overlap or touch are merged into one moment, whose distance is its best window's. The query's
own moment (windows of the queried file overlapping the span) is left out.

Which segmentation: the one named (label such as ``1.0/0.5`` or id); else, of those
registered, the one whose window is closest to the query's length (a 1 s call uses ``calls``,
a minute of soundscape ``soundscape``), the earliest registered on a tie.
"""

from __future__ import annotations

import dataclasses
import os
import re

import numpy as np

from ..analysis.segments import choose_segmentation
from ..errors import NothingIndexed, TrackNotFound, UsageError
from ..paths import from_stored
from ..store import catalog, segment_cache
from ..store import segments as segment_store
from ..store.connection import LibraryFile
from ..store.segment_export import RAVEN_SELECTION_COLUMNS
from .space import Space

__all__ = [
    "MOMENT_COLUMNS",
    "RAVEN_COLUMNS",
    "Moment",
    "MomentSearch",
    "merge_moments",
    "raven_rows",
    "similar_moments",
    "span_windows",
]

#: The columns of :func:`similar_moments` rows.
MOMENT_COLUMNS = ("rank", "path", "start_sec", "end_sec", "distance", "track_id")

#: A Raven Pro selection table's columns, in order (:func:`raven_rows`).
RAVEN_COLUMNS = (*RAVEN_SELECTION_COLUMNS, "Distance")

#: The space moments are searched in: 1 - cosine similarity of the z-scored 220 numbers. On real
#: sounds placed in noise (benchmarks/bench_segment_quality.py, three seeds) it gave precision@5
#: 0.712 / 0.707 / 0.717 against 0.686 / 0.660 / 0.671 for ``extended`` (chance 0.09-0.10).
METRIC = "cosine"

_SPAN = re.compile(r"^(.*)@(\d+(?:\.\d*)?)-(\d+(?:\.\d*)?)$", re.S)


@dataclasses.dataclass
class Moment:
    """A stretch of one file: windows merged; ``distance`` is the best window's."""

    track_id: int
    start_ms: int
    end_ms: int
    distance: float


def merge_moments(
    track_ids: np.ndarray, start_ms: np.ndarray, end_ms: np.ndarray, distance: np.ndarray, n: int
) -> list[Moment]:
    """The ``n`` best moments from windows with distances (``inf`` = not a candidate).

    Windows are taken nearest first; one that overlaps or touches a moment already found in
    its file joins it (joining two if it bridges them), otherwise it starts a new moment; the
    first window that would start moment ``n + 1`` ends the search, so a moment is made of the
    windows that rank above it. Ties are broken by track id, then start.
    """
    finite = np.isfinite(distance)
    n_ok = int(np.count_nonzero(finite))
    k = min(n_ok, max(256, 16 * n))
    while True:
        # The k nearest windows and every window tied with the k-th: the moments are exact when
        # the merge ends (a window starting moment n + 1) before it runs out of them.
        if k < n_ok:
            cut = np.partition(np.where(finite, distance, np.inf), k - 1)[k - 1]
            ok = np.flatnonzero(distance <= cut)
        else:
            ok = np.flatnonzero(finite)
        found, ended = _merge(track_ids, start_ms, end_ms, distance, n, ok)
        if ended or k >= n_ok:
            return found
        k = min(n_ok, 4 * k)


def _merge(track_ids, start_ms, end_ms, distance, n: int, ok: np.ndarray) -> tuple[list[Moment], bool]:
    """:func:`merge_moments` over the windows ``ok``; True if a window would start moment n + 1."""
    order = ok[np.lexsort((start_ms[ok], track_ids[ok], distance[ok]))]
    by_track: dict[int, list[Moment]] = {}
    found: list[Moment] = []
    ended = False
    for i in order:
        t, a, b, d = int(track_ids[i]), int(start_ms[i]), int(end_ms[i]), float(distance[i])
        moments = by_track.setdefault(t, [])
        touching = [m for m in moments if a <= m.end_ms and b >= m.start_ms]
        if touching:
            keep = touching[0]
            keep.start_ms = min([a] + [m.start_ms for m in touching])
            keep.end_ms = max([b] + [m.end_ms for m in touching])
            for m in touching[1:]:
                moments.remove(m)
                found.remove(m)
            continue
        if len(found) >= n:
            ended = True
            break
        m = Moment(t, a, b, d)
        moments.append(m)
        found.append(m)
    found.sort(key=lambda m: (m.distance, m.track_id, m.start_ms))
    return found, ended


@dataclasses.dataclass
class _Query:
    vectors: np.ndarray  # (q, d) float32
    track_id: int | None = None
    start_ms: int = 0
    end_ms: int = 0


def _parse_span(query: str):
    m = _SPAN.match(query)
    if not m:
        return None
    start, end = float(m.group(2)), float(m.group(3))
    if end <= start:
        raise UsageError(f"{query!r}: the end of PATH@START-END must be after its start (seconds).")
    return m.group(1), round(start * 1000), round(end * 1000)


def _pick_active(vectors: np.ndarray, active: np.ndarray) -> np.ndarray:
    return vectors[active] if active.any() else vectors


def span_windows(own, start_ms: int, end_ms: int) -> np.ndarray | None:
    """The query vectors of a span of one file: of its windows in ``own`` (a
    :class:`~audiodb.store.segments.SegmentMatrix` of that file, all windows) that overlap
    the span, the active ones (all of them if none is); None if no window overlaps it."""
    hit = (own.start_ms < end_ms) & (own.end_ms > start_ms)
    if not hit.any():
        return None
    return _pick_active(own.vectors[hit], own.active[hit])


class MomentSearch:
    """Stored windows of one segmentation in the search space, ready for many queries.

    ``stored`` is a :class:`~audiodb.store.segments.SegmentMatrix`; z-score statistics are
    those of its windows (see the module).
    """

    def __init__(self, stored, seg, *, stats=None):
        self.stored, self.seg = stored, seg
        # ``stats``: the metric's statistics saved with a cached matrix (see audiodb.store.segment_cache)
        self.space = Space(np.arange(len(stored.track_ids)), stored.vectors, METRIC, seg.feature_names(), stats=stats)

    def distances(self, query_vectors: np.ndarray) -> np.ndarray:
        """Each stored window's distance to the nearest of ``query_vectors`` (raw, (q, d)): one pass
        over the stored matrix for all of them."""
        return self.space.min_distances(query_vectors)

    def own(self, track_id: int, start_ms: int, end_ms: int) -> np.ndarray:
        """Which stored windows are the moment ``track_id``, ``start_ms``..``end_ms`` (overlap it)."""
        s = self.stored
        return (s.track_ids == track_id) & (s.start_ms < end_ms) & (s.end_ms > start_ms)

    def search(
        self,
        query_vectors: np.ndarray,
        n: int,
        *,
        own: tuple[int, int, int] | None = None,
        mask: np.ndarray | None = None,
    ) -> list[Moment]:
        """The ``n`` nearest moments; ``own`` (track_id, start_ms, end_ms) is left out, and the windows
        outside ``mask`` (when given)."""
        best = self.distances(query_vectors)
        if mask is not None:
            best[~mask] = np.inf
        if own is not None:
            best[self.own(*own)] = np.inf
        s = self.stored
        return merge_moments(s.track_ids, s.start_ms, s.end_ms, best, n)


def similar_moments(
    file: LibraryFile,
    query: str,
    *,
    n: int = 10,
    segmentation: str | None = None,
    all_segments: bool = False,
    where: str | None = None,
) -> list[dict]:
    """The ``n`` moments nearest to ``query`` (see the module), nearest first.

    Returns
    -------
    list of dict
        Keys :data:`MOMENT_COLUMNS`: ``start_sec``, ``end_sec`` in seconds from the file's
        start, ``distance`` ascending.
    """
    if n < 1:
        raise UsageError("-n must be at least 1.")
    query = str(query)
    span = _parse_span(query)
    clip = None
    if span is None:
        path = os.path.abspath(os.path.expanduser(query))
        if not os.path.isfile(path) and os.path.isfile(from_stored(path)):
            path = from_stored(path)
        if not os.path.isfile(path):
            raise TrackNotFound(f"{query!r} is neither an audio file nor PATH@START-END (seconds) of an indexed file.")
        from ..analysis.decode import load

        clip = load(path, sr=file.params.sr).y
    with file.connect() as con:
        registered = segment_store.registered(con, file.params)
        if span is not None:
            row = catalog.lookup_track(con, span[0])
            if row is None:
                raise TrackNotFound(
                    f"{span[0]!r} (in {query!r}) is not an indexed file: PATH@START-END names a moment of an "
                    "indexed file; give a clip's path alone to search with a file that is not indexed."
                )
            _, start_ms, end_ms = span
            seg = choose_segmentation(registered, segmentation, end_ms - start_ms)
            own = segment_store.load_segments(con, seg.id, active_only=False, track_ids=[row[0]])
            vectors = span_windows(own, start_ms, end_ms)
            if vectors is None:
                raise UsageError(
                    f"{query!r}: the file has no {seg.label} segments in that span (is it within the file, "
                    "and has a scan computed the segmentation? see audiodb status)."
                )
            q = _Query(vectors, row[0], start_ms, end_ms)
        else:
            assert clip is not None  # not a PATH@START-END: an audio clip
            seg = choose_segmentation(registered, segmentation, 1000.0 * len(clip) / file.params.sr)
        rows, saved, keep_stats = segment_cache.cached_segments(
            file.path, con, seg.id, seg.dims, active_only=not all_segments, stats=METRIC
        )
        stored = segment_store.SegmentMatrix(**rows)
        mask = catalog.where_mask(con, stored.track_ids, where)
    if clip is not None:
        q = _clip_query(clip, seg)
    if len(stored.track_ids) == 0:
        raise NothingIndexed(
            f"No {'' if all_segments else 'active '}segments of {seg.label} are stored yet: run audiodb scan."
        )
    own_moment = None if q.track_id is None else (q.track_id, q.start_ms, q.end_ms)
    search = MomentSearch(stored, seg, stats=saved)
    if saved is None:
        keep_stats(search.space.stats())
    moments = search.search(q.vectors, n, own=own_moment, mask=mask)
    with file.connect() as con:
        info = catalog.track_info(con, sorted({m.track_id for m in moments}), ("path",))
    return [
        {
            "rank": i + 1,
            "path": info[m.track_id][0],
            "start_sec": m.start_ms / 1000.0,
            "end_sec": m.end_ms / 1000.0,
            "distance": m.distance,
            "track_id": m.track_id,
        }
        for i, m in enumerate(moments)
    ]


def _clip_query(y: np.ndarray, seg) -> _Query:
    from ..analysis.segments import segment_signal

    rows = segment_signal(y, [seg])[seg.id]
    return _Query(_pick_active(rows.vectors, rows.active))


def raven_rows(rows: list[dict], *, high_freq_hz: float = 11025.0) -> list[dict]:
    """``similar_moments`` rows as a Raven Pro selection table's (:data:`RAVEN_COLUMNS`).

    One selection per moment, numbered from 1; ``Begin Time (s)`` and ``File Offset (s)`` are
    both the moment's start within its file (each row names its file in ``Begin Path``); the
    band is the whole analysed band, 0 Hz to the analysis rate's Nyquist frequency. Paths are
    as the library stores them (printable; :func:`audiodb.paths.from_stored` gives the real one).
    """
    return [
        {
            "Selection": r["rank"],
            "View": "Spectrogram 1",
            "Channel": 1,
            "Begin Time (s)": r["start_sec"],
            "End Time (s)": r["end_sec"],
            "Low Freq (Hz)": 0.0,
            "High Freq (Hz)": high_freq_hz,
            "Begin Path": r["path"],
            "File Offset (s)": r["start_sec"],
            "Distance": r["distance"],
        }
        for r in rows
    ]
