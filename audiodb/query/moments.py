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

from ..errors import NothingIndexed, TrackNotFound, UsageError
from ..paths import from_stored
from ..store import catalog, segment_cache
from ..store import segments as segment_store
from ..store.connection import LibraryFile
from .space import Space

__all__ = ["MOMENT_COLUMNS", "RAVEN_COLUMNS", "Moment", "merge_moments", "raven_rows", "similar_moments"]

#: The columns of :func:`similar_moments` rows.
MOMENT_COLUMNS = ("rank", "path", "start_sec", "end_sec", "distance", "track_id")

#: A Raven Pro selection table's columns, in order (:func:`raven_rows`).
RAVEN_COLUMNS = (
    "Selection",
    "View",
    "Channel",
    "Begin Time (s)",
    "End Time (s)",
    "Low Freq (Hz)",
    "High Freq (Hz)",
    "Begin Path",
    "File Offset (s)",
    "Distance",
)

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


def _choose(registered: list, name: str | None, length_ms: float | None):
    if not registered:
        raise NothingIndexed(
            "No segmentation is registered in this library: run audiodb scan DIR --segments calls "
            "(or WINDOW/HOP in seconds) first."
        )
    if name:
        for s in registered:
            if name in (s.id, s.label) or name == f"{s.window_ms / 1000:g}/{s.hop_ms / 1000:g}":
                return s
        from ..analysis.segments import PRESETS

        if name in PRESETS:
            win, hop = PRESETS[name]
            for s in registered:
                if (s.window_ms, s.hop_ms) == (round(win * 1000), round(hop * 1000)):
                    return s
        raise UsageError(
            f"No segmentation {name!r} is registered; registered: " + ", ".join(s.label for s in registered)
        )
    if length_ms is None or len(registered) == 1:
        return registered[0]
    return min(registered, key=lambda s: abs(s.window_ms - length_ms))  # min keeps the first on ties


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
            seg = _choose(registered, segmentation, end_ms - start_ms)
            own = segment_store.load_segments(con, seg.id, active_only=False, track_ids=[row[0]])
            hit = (own.start_ms < end_ms) & (own.end_ms > start_ms)
            if not hit.any():
                raise UsageError(
                    f"{query!r}: the file has no {seg.label} segments in that span (is it within the file, "
                    "and has a scan computed the segmentation? see audiodb status)."
                )
            q = _Query(_pick_active(own.vectors[hit], own.active[hit]), row[0], start_ms, end_ms)
        else:
            seg = _choose(registered, segmentation, 1000.0 * len(clip) / file.params.sr)
        stored, saved, keep_stats = segment_cache.cached_segments(
            file.path, con, seg.id, seg.dims, active_only=not all_segments, stats=METRIC
        )
        stored = segment_store.SegmentMatrix(**stored)
        mask = catalog.where_mask(con, stored.track_ids, where)
    if clip is not None:
        q = _clip_query(clip, seg)
    if len(stored.track_ids) == 0:
        raise NothingIndexed(
            f"No {'' if all_segments else 'active '}segments of {seg.label} are stored yet: run audiodb scan."
        )
    space = Space(np.arange(len(stored.track_ids)), stored.vectors, METRIC, seg.feature_names(), stats=saved)
    if saved is None:
        keep_stats(space.stats())
    best = space.min_distances(q.vectors)
    if mask is not None:
        best[~mask] = np.inf
    if q.track_id is not None:
        own = (stored.track_ids == q.track_id) & (stored.start_ms < q.end_ms) & (stored.end_ms > q.start_ms)
        best[own] = np.inf
    moments = merge_moments(stored.track_ids, stored.start_ms, stored.end_ms, best, n)
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
