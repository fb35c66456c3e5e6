"""Nearest neighbours in the library: similar tracks, duplicates, playlists, evaluation.

Every metric starts from the notebook's space: each of the 180 features
z-scored with the mean and standard deviation of the library's own tracks.

========== ===========================================================================
metric     distance
========== ===========================================================================
notebook   euclidean on the z-scores: the notebook's ``StandardScaler`` space as is
cosine     1 - cosine similarity of the z-scored vectors
blocks     euclidean on the z-scores, each feature group (mel means, mel stds, MFCC
           means, MFCC stds, the 12 spectral statistics) weighted by 1/sqrt(its size),
           so the 128 mel numbers no longer outvote the 40 MFCC and 12 spectral ones
extended   as blocks, over the notebook's 180 numbers and the second feature set's 42
           (:mod:`audiodb.extended`: contrast means, contrast stds, chroma means,
           chroma stds, onset and tempo): ten groups that count alike
========== ===========================================================================

All four are one computation: a centre ``mean``, per-feature weights ``w``
and ``<x, q> = sum_i w_i (x_i - mean_i) (q_i - mean_i)``. Per row the squared
norm is computed once; a query then costs one matrix-vector product over the
stored float32 vectors. Only numpy and duckdb are imported here: asking for
the neighbours of an indexed track decodes no audio and imports no librosa.

Duplicates are judged in a fixed space of their own, whatever metric ranks
the neighbours: the root-mean-square difference of the z-scores of the mel
bands below 6 kHz, under :data:`DUPLICATE_THRESHOLD`, lengths agreeing.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import warnings
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from .errors import AudiodbWarning, TrackNotFound, UsageError
from .analysis.params import NOTEBOOK, ExtendedParams, FeatureParams
from .paths import from_stored, to_stored
from .store.vectors import arrow_values, read_vectors

__all__ = [
    "DEFAULT_METRIC",
    "DUPLICATE_THRESHOLD",
    "METRICS",
    "EvalReport",
    "Query",
    "Space",
    "duplicates",
    "evaluate",
    "load_space",
    "playlist",
    "similar",
]

#: Metric names, in the order `audiodb eval --metric all` reports them.
METRICS: tuple[str, ...] = ("notebook", "cosine", "blocks", "extended")

#: Metrics that need the second feature set's vectors.
EXTENDED_METRICS = ("extended",)

#: The group of each feature name prefix; features not listed are "spectral".
_GROUP_PREFIXES = ("mel_mean", "mel_std", "mfcc_mean", "mfcc_std", "contrast_mean", "contrast_std",
                   "chroma_mean", "chroma_std")
_RHYTHM = ("onset_mean", "onset_std", "tempo_bpm", "pulse_clarity")

#: The metric ``similar``, ``playlist`` and ``eval`` use unless told otherwise: the
#: best precision@5 with ``audiodb eval`` on the labelled audio in the README
#: (0.520 against 0.369 for blocks and 0.340 for the notebook's space).
DEFAULT_METRIC = "extended"

#: Duplicates are judged on the mel bands below this frequency (Hz): lossy
#: codecs and resamplers change the top of the spectrum, not what is below.
DUPLICATE_MAX_HZ = 6000.0

#: Two tracks whose RMS z-score difference over those bands is below this (and
#: whose durations agree, see :func:`same_duration`) are one recording. Measured
#: on 20-s excerpts of real music (README, "Similarity"): wav -> flac / mp3 / ogg
#: / m4a at the encoders' default quality and a 22.05 kHz resample stay at or
#: below 0.040; different recordings start at 0.071 (a very low bitrate copy of a
#: neighbouring passage of the same piece), other pairs at 0.10.
DUPLICATE_THRESHOLD = 0.06

#: Keys of each neighbour ``similar`` returns, in order.
SIMILAR_COLUMNS = ("rank", "track_id", "path", "distance", "duration_sec", "cluster_kmeans", "cluster_hdbscan")
CLUSTER_METHODS = ("kmeans", "hdbscan")

_CHUNK = 8192  # rows per block: a block of float32 vectors stays in cache


def _groups(feature_names: Sequence[str]) -> list[str]:
    """The group of each feature: ``mel_mean``, ``mel_std``, ``mfcc_mean``, ``mfcc_std``,
    ``spectral`` (the notebook's 12 statistics), ``contrast_mean``, ``contrast_std``,
    ``chroma_mean``, ``chroma_std`` or ``rhythm`` (onset and tempo)."""
    out = []
    for name in feature_names:
        head, _, tail = name.rpartition("_")
        if tail.isdigit() and head in _GROUP_PREFIXES:
            out.append(head)
        else:
            out.append("rhythm" if name in _RHYTHM else "spectral")
    return out


def group_weights(feature_names: Sequence[str]) -> np.ndarray:
    """1 / (size of its group) for each feature: each group's squared distance counts alike."""
    groups = _groups(feature_names)
    sizes = {g: groups.count(g) for g in set(groups)}
    return 1.0 / np.array([sizes[g] for g in groups], dtype=float)


def _check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise UsageError(f"Unknown metric {metric!r}; choose one of {', '.join(METRICS)}.")
    return metric


class Space:
    """The library's vectors in one metric's space, ready for nearest-neighbour queries.

    Parameters
    ----------
    track_ids : np.ndarray, shape (n,), int64
    vectors : np.ndarray, shape (n, d), float32
        Raw embeddings, as stored. Kept, not copied.
    metric : str
        One of :data:`METRICS`.
    feature_names : sequence of str, length d
    """

    def __init__(self, track_ids: np.ndarray, vectors: np.ndarray, metric: str = DEFAULT_METRIC,
                 feature_names: Sequence[str] = NOTEBOOK.feature_names()):
        self.metric = _check_metric(metric)
        self.track_ids = np.asarray(track_ids, dtype=np.int64)
        self.vectors = vectors
        n, d = vectors.shape
        if len(feature_names) != d:
            raise ValueError(f"{len(feature_names)} feature names for {d}-dimensional vectors")
        self.mean, std = _mean_std(vectors)
        # A constant feature (to float32 precision) is left unscaled, as StandardScaler does.
        std[std <= 1e-6 * (np.abs(self.mean) + 1e-3)] = 1.0
        self.std = std
        weights = 1.0 / std**2
        if metric in ("blocks", "extended"):
            weights *= group_weights(feature_names)
        self.weights = weights
        # |x - mean|_w^2 of every row, and <x, w * mean> to centre the products.
        self.sqnorms = np.empty(n, dtype=np.float64)
        sw = np.sqrt(weights).astype(np.float32)
        mean32 = self.mean.astype(np.float32)
        for a in range(0, n, _CHUNK):
            block = vectors[a:a + _CHUNK] - mean32
            block *= sw
            self.sqnorms[a:a + _CHUNK] = np.einsum("ij,ij->i", block, block)  # float32: rel. error ~1e-7
        self._row = None

    def __len__(self) -> int:
        return len(self.track_ids)

    def row(self, track_id: int) -> int | None:
        """Row of ``track_id``, or None."""
        if self._row is None:
            self._row = {int(t): i for i, t in enumerate(self.track_ids)} if len(self) < 50_000 else {}
        if self._row:
            return self._row.get(int(track_id))
        hit = np.flatnonzero(self.track_ids == track_id)
        return int(hit[0]) if hit.size else None

    def transform(self, raw: np.ndarray) -> np.ndarray:
        """Raw vectors (..., d) into the metric's coordinates (euclidean there; unit rows for cosine)."""
        out = (np.asarray(raw, dtype=np.float64) - self.mean) * np.sqrt(self.weights)
        if self.metric == "cosine":
            norm = np.linalg.norm(out, axis=-1, keepdims=True)
            out = out / np.where(norm > 0, norm, 1.0)
        return out

    def distances(self, raw_query: np.ndarray) -> np.ndarray:
        """Distance from one raw vector to every row, shape (n,), float64.

        One float32 matrix-vector product over the stored vectors, plus O(n).
        """
        q = np.asarray(raw_query, dtype=np.float64) - self.mean
        wq = self.weights * q
        dots = self.vectors @ wq.astype(np.float32)  # <x, w q>
        dots = dots.astype(np.float64)
        dots -= float(self.mean @ wq)  # <x - mean, w q>
        qq = float(q @ wq)
        if self.metric == "cosine":
            denom = np.sqrt(self.sqnorms * qq)
            with np.errstate(invalid="ignore", divide="ignore"):
                sim = np.where(denom > 0, dots / denom, 0.0)
            return 1.0 - sim
        d2 = self.sqnorms + qq - 2.0 * dots
        np.maximum(d2, 0.0, out=d2)
        return np.sqrt(d2, out=d2)

    def exact(self, raw_query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Distances from one raw vector to ``rows``, computed directly in float64."""
        q = self.transform(raw_query)
        x = self.transform(self.vectors[rows])
        if self.metric == "cosine":
            return 1.0 - x @ q
        return np.linalg.norm(x - q, axis=-1)

    def nearest(self, raw_query: np.ndarray, k: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Rows and distances of the ``k`` nearest rows allowed by ``mask``, nearest first.

        Ties are broken by track id, so results are deterministic.
        """
        d = self.distances(raw_query)
        if mask is not None:
            d[~mask] = np.inf
        allowed = int(np.count_nonzero(np.isfinite(d)))
        k = min(k, allowed)
        if k <= 0:
            return np.empty(0, dtype=np.int64), np.empty(0)
        # A little slack so near-ties at the cut are ordered by the exact distance.
        m = min(len(d), k + 8)
        rows = np.argpartition(d, m - 1)[:m] if m < len(d) else np.arange(len(d))
        rows = rows[np.isfinite(d[rows])]
        exact = self.exact(raw_query, rows)
        order = np.lexsort((self.track_ids[rows], exact))[:k]
        return rows[order], exact[order]


def _mean_std(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column mean and population standard deviation (as StandardScaler), in float64.

    One pass by blocks, shifted by the first row: a constant column gets exactly 0,
    and cancellation stays small since the shift is a typical value.
    """
    n = len(x)
    if n == 0:
        return np.zeros(x.shape[1]), np.ones(x.shape[1])
    shift = x[0].astype(np.float64)
    total = np.zeros(x.shape[1])
    squares = np.zeros(x.shape[1])
    for a in range(0, n, _CHUNK):
        block = x[a:a + _CHUNK].astype(np.float64)
        block -= shift
        total += block.sum(axis=0)
        squares += np.einsum("ij,ij->j", block, block)
    mean = total / n
    return shift + mean, np.sqrt(np.maximum(squares / n - mean * mean, 0.0))


# --------------------------------------------------------------------------- loading

@dataclasses.dataclass
class Tracks:
    """What the library holds for the current feature set: ids, raw vectors and a few columns."""

    track_ids: np.ndarray  # (n,) int64
    vectors: np.ndarray  # (n, d) float32
    duration_sec: np.ndarray  # (n,) float64
    feature_names: list[str]
    notebook_dims: int = NOTEBOOK.dims  # the first columns are the notebook's; any others the second set's
    without_extended: int = 0  # loaded with the second set: tracks left out for lacking it

    def space(self, metric: str) -> Space:
        if metric in EXTENDED_METRICS or self.vectors.shape[1] == self.notebook_dims:
            return Space(self.track_ids, self.vectors, metric, self.feature_names)
        d = self.notebook_dims  # a notebook-only metric on vectors loaded with the second set
        return Space(self.track_ids, self.vectors[:, :d], metric, self.feature_names[:d])


def load_tracks(con, params: FeatureParams = NOTEBOOK, extended: ExtendedParams | None = None) -> Tracks:
    """Every track with a current vector, read through Arrow (no per-row Python work).

    With ``extended``, each row is the notebook's vector followed by the second
    feature set's, and only tracks that have both are returned.

    Vectors and track rows are read separately and matched by id in numpy: at a
    million tracks a join inside DuckDB that carries the 180 floats costs
    several times the read itself.
    """
    without_extended = 0
    cur = con.cursor()
    try:
        ids, vectors = read_vectors(cur, "embeddings", params.id, params.dims)
        names = params.feature_names()
        if extended is not None:
            ext_ids, ext_vectors = read_vectors(cur, "extended_embeddings", extended.id, extended.dims)
            if not np.array_equal(ids, ext_ids):  # usually both are in track order already
                n_notebook = len(ids)
                ids, a, b = np.intersect1d(ids, ext_ids, assume_unique=True, return_indices=True)
                vectors, ext_vectors = vectors[a], ext_vectors[b]
                without_extended = n_notebook - len(ids)
            vectors = np.hstack([vectors, ext_vectors])
            names = names + extended.feature_names()
        meta = cur.sql("SELECT track_id, coalesce(duration_sec, 0) AS duration_sec FROM track_files"
                       ).to_arrow_table()
    finally:
        cur.close()
    n = len(ids)
    track_ids = np.concatenate([arrow_values(c, np.int64) for c in meta.column("track_id").chunks] or
                               [np.empty(0, np.int64)])
    seconds = np.concatenate([arrow_values(c, np.float64) for c in meta.column("duration_sec").chunks] or
                             [np.empty(0)])
    order = np.argsort(track_ids)
    track_ids, seconds = track_ids[order], seconds[order]
    at = np.minimum(np.searchsorted(track_ids, ids), max(len(track_ids) - 1, 0))
    known = track_ids[at] == ids if len(track_ids) else np.zeros(n, dtype=bool)
    if not known.all():  # vectors of tracks no longer in the library
        vectors, ids, at = vectors[known], ids[known], at[known]
    dur = seconds[at] if len(track_ids) else np.empty(0)
    return Tracks(ids, vectors, dur, names, params.dims, without_extended)


def load_space(con, metric: str = DEFAULT_METRIC, params: FeatureParams = NOTEBOOK) -> Space:
    """The library's vectors in ``metric``'s space (z-score statistics from its own tracks)."""
    _check_metric(metric)
    extended = ExtendedParams(base=params) if metric in EXTENDED_METRICS else None
    return load_tracks(con, params, extended).space(metric)


def _resolve_metric(metric: str | None, missing: int) -> str:
    """``metric``, or the default when None, given ``missing`` tracks without the second set.

    The extended metric needs every track's second feature set. Asked for by
    name, its absence is an error; as the default, ``blocks`` stands in (with
    a warning) until a scan has computed it.
    """
    if metric is not None:
        _check_metric(metric)
    chosen = metric or DEFAULT_METRIC
    if chosen in EXTENDED_METRICS and missing:
        if metric is None:
            warnings.warn(AudiodbWarning(
                f"{missing} tracks have no extended features yet (indexed by an older audiodb), so "
                f"tracks are ranked with --metric blocks; run audiodb scan on their folders to compute "
                f"them (one decode per file) and get the default {DEFAULT_METRIC!r} metric."), stacklevel=4)
            return "blocks"
        raise UsageError(
            f"--metric {chosen} needs the extended features, and {missing} tracks have none yet "
            "(indexed by an older audiodb). Run audiodb scan on their folders to compute them, "
            "or use --metric blocks.")
    return chosen


def load_for(con, lib, metrics: Sequence[str | None]) -> tuple[list[str], Tracks]:
    """The metrics to use (None: the default, see :func:`_resolve_metric`) and the tracks
    with the vectors they need, in one read of the vectors."""
    wanted = [m or DEFAULT_METRIC for m in metrics]
    extended = any(m in EXTENDED_METRICS for m in wanted)
    tracks = load_tracks(con, lib.params, lib.extended if extended else None)
    chosen = [_resolve_metric(m, tracks.without_extended) for m in metrics]
    if extended and not any(m in EXTENDED_METRICS for m in chosen):
        tracks = load_tracks(con, lib.params)  # fell back to blocks: every track, notebook vectors only
    return chosen, tracks


def _require_tracks(tracks: Tracks, con) -> None:
    if len(tracks.track_ids):
        return
    n = con.execute("SELECT count(*) FROM track_files").fetchone()[0]
    if n:
        raise UsageError(f"The library has {n} tracks but none with current vectors; "
                         "run audiodb scan on their folders to compute them.")
    raise UsageError("The library is empty. Index some audio first: audiodb scan DIR")


# --------------------------------------------------------------------------- queries

@dataclasses.dataclass
class Query:
    """A track to search from: indexed (``track_id``) or a file analysed on the fly."""

    path: str
    vector: np.ndarray  # raw, (d,)
    track_id: int | None = None
    folder: str | None = None
    duration_sec: float | None = None
    content_hash: str | None = None


def _lookup(con, ref: str) -> tuple | None:
    """(track_id, path, folder, duration_sec, content_hash) of the track ``ref`` names, or None."""
    cols = "track_id, path, folder, duration_sec, content_hash"
    given = os.path.abspath(os.path.expanduser(ref))
    # Stored paths are audiodb.paths.to_stored of the real ones; the text audiodb prints
    # for a non-UTF-8 name (with \xNN) is accepted too.
    candidates = [to_stored(given)]
    real = to_stored(os.path.realpath(given))
    if real != candidates[0]:
        candidates.append(real)
    if "\\" in given:
        candidates.append(given)
    for path in candidates:
        row = con.execute(f"SELECT {cols} FROM track_files WHERE path = ?", [path]).fetchone()
        if row:
            return row
    if ref.strip().isdigit() and not os.path.exists(ref):
        return con.execute(f"SELECT {cols} FROM track_files WHERE track_id = ?", [int(ref)]).fetchone()
    return None


def resolve_queries(lib, refs: Iterable[str], embed: Callable | None = None, *, extended: bool = False
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
    with lib.connect() as con:
        for ref in refs:
            row = _lookup(con, ref)
            found.append(row)
            if row is not None:
                v = con.execute("SELECT vector FROM embeddings WHERE track_id = ? AND feature_set = ?",
                                [row[0], lib.params.id]).fetchall()
                if v and extended:
                    x = con.execute("SELECT vector FROM extended_embeddings WHERE track_id = ? AND "
                                    "feature_set = ?", [row[0], lib.extended.id]).fetchall()
                    v = [[v[0][0] + x[0][0]]] if x else []
                if v:
                    vectors[row[0]] = np.asarray(v[0][0], dtype=np.float32)
    out = []
    for ref, row in zip(refs, found):
        if row is not None and row[0] in vectors:
            out.append(Query(row[1], vectors[row[0]], track_id=row[0], folder=row[2], duration_sec=row[3],
                             content_hash=row[4]))
            continue
        path = from_stored(row[1]) if row is not None else os.path.abspath(os.path.expanduser(ref))
        if row is None and not os.path.isfile(path) and os.path.isfile(from_stored(path)):
            path = from_stored(path)  # the printed form of a non-UTF-8 name
        if not os.path.isfile(path):
            if row is not None:
                raise TrackNotFound(f"Track {ref!r} ({row[1]}) has no current vector and its file is gone; "
                                    "run audiodb scan on its folder.")
            raise TrackNotFound(
                f"{ref!r} is neither an indexed track nor an audio file. Give a path to an audio file "
                "or a track id (audiodb sql \"select track_id, path from tracks\" lists them).")
        if embed is None:
            from .analysis.embed import embed_file as embed
        vector, meta = embed(path, lib.params, extended=extended)
        if extended:
            vector = np.concatenate([vector, meta["extended_vector"]])
        out.append(Query(to_stored(path), np.asarray(vector, dtype=np.float32), row[0] if row else None,
                         folder=to_stored(os.path.dirname(path)), duration_sec=meta.get("duration_sec")))
    return out


def _where_mask(con, space_ids: np.ndarray, where: str | None) -> np.ndarray | None:
    """Which rows meet the user's SQL condition on the ``tracks`` view (None: no condition).

    The condition is the user's own SQL on their own file, run on a read-only
    connection; it is only ever evaluated as ``WHERE (<condition>)`` on ``tracks``.
    """
    if not where:
        return None
    import duckdb

    if ";" in where:
        raise UsageError(f"--where takes one SQL condition on the tracks view, without ';' (got {where!r}).")
    try:
        ids = con.execute(f"SELECT track_id FROM tracks WHERE ({where})").fetchnumpy()["track_id"]
    except duckdb.Error as e:
        first = str(e).strip().splitlines()[0]
        raise UsageError(
            f"--where {where!r} is not a valid SQL condition on the tracks view ({first}). "
            "It is used as WHERE <condition>; for example --where \"duration_sec > 60\" or "
            "--where \"folder LIKE '%/jazz%'\" (columns: audiodb sql \"describe tracks\")."
        ) from None
    return np.isin(space_ids, np.asarray(ids, dtype=np.int64))


def _folder_mask(con, space_ids: np.ndarray, folders: Iterable[str]) -> np.ndarray:
    ids = con.execute("SELECT track_id FROM track_files WHERE list_contains(?, folder)",
                      [sorted(set(folders))]).fetchnumpy()["track_id"]
    return ~np.isin(space_ids, np.asarray(ids, dtype=np.int64))


def _cluster_labels(con, track_ids: list[int]) -> dict[int, dict[str, int | None]]:
    """Latest cluster of each track per method, from the ``clusters`` view if there is one."""
    out: dict[int, dict[str, int | None]] = {t: {f"cluster_{m}": None for m in CLUSTER_METHODS} for t in track_ids}
    has = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'clusters'").fetchone()[0]
    if not has or not track_ids:
        return out
    import duckdb

    try:
        rows = con.execute("SELECT track_id, method, cluster FROM clusters WHERE list_contains(?, track_id)",
                           [track_ids]).fetchall()
    except duckdb.Error:
        return out
    for tid, method, cluster in rows:
        if method in CLUSTER_METHODS:
            out[tid][f"cluster_{method}"] = cluster
    return out


def similar(lib, track: str, *, n: int = 10, metric: str | None = None, where: str | None = None,
            exclude_folder: bool = False) -> list[dict]:
    """The ``n`` tracks nearest to ``track`` (a path, indexed or not, or a track id).

    The query itself is left out; an unindexed file is analysed and not added.
    ``metric`` None is :data:`DEFAULT_METRIC` (see :func:`load_for`).

    Returns
    -------
    list of dict
        Keys :data:`SIMILAR_COLUMNS`; ``distance`` ascending.
    """
    if n < 1:
        raise UsageError("-n must be at least 1.")
    with lib.connect() as con:
        (metric,), tracks = load_for(con, lib, [metric])
        _require_tracks(tracks, con)
    (query,) = resolve_queries(lib, [track], extended=metric in EXTENDED_METRICS)
    with lib.connect() as con:
        space = tracks.space(metric)
        mask = np.ones(len(space), dtype=bool)
        if query.track_id is not None:
            mask &= space.track_ids != query.track_id
        if (m := _where_mask(con, space.track_ids, where)) is not None:
            mask &= m
        if exclude_folder and query.folder is not None:
            mask &= _folder_mask(con, space.track_ids, [query.folder])
        rows, dist = space.nearest(query.vector, n, mask)
        ids = [int(t) for t in space.track_ids[rows]]
        info = {r[0]: r[1:] for r in con.execute(
            "SELECT track_id, path, duration_sec FROM track_files WHERE list_contains(?, track_id)",
            [ids]).fetchall()}
        labels = _cluster_labels(con, ids)
    return [
        {"rank": i + 1, "track_id": t, "path": info[t][0], "distance": float(d),
         "duration_sec": float(info[t][1]) if info[t][1] is not None else None, **labels[t]}
        for i, (t, d) in enumerate(zip(ids, dist))
    ]


# --------------------------------------------------------------------------- duplicates

def duration_tolerance(duration_sec: np.ndarray | float) -> np.ndarray | float:
    """How far apart two files of one recording may be in length: 0.5 s plus 0.5 %.

    Encoders pad or drop a few frames (MP3 and AAC add tens of milliseconds);
    a different edit of a song is a different recording.
    """
    return 0.5 + 0.005 * np.asarray(duration_sec)


def same_duration(a: float, b: float) -> bool:
    """Whether two lengths (seconds) could be one recording: within the shorter one's tolerance."""
    return abs(a - b) <= duration_tolerance(min(a, b))


def duplicate_features(params: FeatureParams = NOTEBOOK) -> np.ndarray:
    """Which features judge duplicates: mean and std of the mel bands that lie wholly
    below :data:`DUPLICATE_MAX_HZ`. Boolean mask, shape (params.dims,)."""
    from .analysis.filters import hz_to_mel as _hz_to_mel, mel_to_hz as _mel_to_hz

    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.array([0.0]))[0],
                                   _hz_to_mel(np.array([params.sr / 2]))[0], params.n_mels + 2))
    low = edges[2:] <= DUPLICATE_MAX_HZ  # upper edge of each band
    mask = np.zeros(params.dims, dtype=bool)
    mask[: params.n_mels] = low
    mask[params.n_mels: 2 * params.n_mels] = low
    return mask


class _DupSpace:
    """Raw vectors to duplicate-comparison coordinates: the :func:`duplicate_features`
    z-scored and divided by sqrt(their number), so that the euclidean distance there is
    the root-mean-square z-score difference."""

    def __init__(self, space: Space, params: FeatureParams = NOTEBOOK):
        # The notebook's columns come first; any after them (the second set) are not used.
        self.mask = np.zeros(space.vectors.shape[1], dtype=bool)
        self.mask[: params.dims] = duplicate_features(params)
        self.mean = space.mean[self.mask]
        self.scale = 1.0 / (space.std[self.mask] * math.sqrt(self.mask.sum()))

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        return (np.asarray(raw, dtype=np.float64)[..., self.mask] - self.mean) * self.scale


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        a, b = self.find(i), self.find(j)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


def _lossless(codec: str | None, container: str | None) -> bool:
    codec, container = (codec or "").upper(), (container or "").upper()
    return (codec.startswith("PCM") or codec in ("FLAC", "ALAC", "FLOAT", "DOUBLE")
            or container in ("WAV", "FLAC", "AIFF", "AIFC", "W64", "RF64"))


def duplicates(lib, *, threshold: float = DUPLICATE_THRESHOLD, where: str | None = None) -> list[list[dict]]:
    """Groups of tracks that are one recording in different files, most certain first.

    Two tracks are linked when their lengths agree (:func:`duration_tolerance`)
    and the RMS difference of their z-scored mel bands below 6 kHz is below
    ``threshold``; groups are the connected sets of links, ordered by their
    largest distance to their first file. In a group the first file is the best copy
    (lossless, then the largest); each member's ``distance`` is to it, and
    the others follow nearest first.

    Returns
    -------
    list of list of dict
        Each dict: ``group``, ``track_id``, ``path``, ``distance``,
        ``duration_sec``, ``codec``, ``size``.
    """
    if threshold <= 0:
        raise UsageError("--threshold must be positive.")
    with lib.connect() as con:
        tracks = load_tracks(con, lib.params)
        _require_tracks(tracks, con)
        space = tracks.space("notebook")
        keep = _where_mask(con, space.track_ids, where)
        to_dup = _DupSpace(space, lib.params)
        pairs = _duplicate_pairs(space, to_dup, tracks.duration_sec, threshold, keep)
        if not pairs:
            return []
        members = sorted({i for p in pairs for i in p[:2]})
        ids = [int(space.track_ids[i]) for i in members]
        info = {r[0]: r[1:] for r in con.execute(
            "SELECT track_id, path, duration_sec, codec, container, size FROM track_files "
            "WHERE list_contains(?, track_id)", [ids]).fetchall()}
    uf = _UnionFind(len(space))
    for i, j, _ in pairs:
        uf.union(i, j)
    groups: dict[int, list[int]] = {}
    for i in members:
        groups.setdefault(uf.find(i), []).append(i)
    out = []
    for rows in groups.values():
        def quality(i: int):
            path, _, codec, container, size = info[int(space.track_ids[i])]
            return (not _lossless(codec, container), -(size or 0), path)

        rows.sort(key=quality)
        coords = to_dup(space.vectors[rows])
        dist = np.linalg.norm(coords - coords[0], axis=1)
        order = np.lexsort((np.arange(len(rows)), dist))  # the best copy (distance 0) stays first
        rows, dist = [rows[k] for k in order], dist[order]
        group = []
        for i, d in zip(rows, dist):
            t = int(space.track_ids[i])
            path, dur, codec, _, size = info[t]
            group.append({"track_id": t, "path": path, "distance": float(d), "duration_sec": dur,
                          "codec": codec, "size": size})
        out.append(group)
    out.sort(key=lambda g: (max(m["distance"] for m in g), g[0]["path"]))
    for number, group in enumerate(out, 1):
        for m in group:
            m["group"] = number
    return out


def _duplicate_pairs(space: Space, to_dup: _DupSpace, duration: np.ndarray, threshold: float,
                     keep: np.ndarray | None = None) -> list[tuple[int, int, float]]:
    """(row, row, distance) of every pair closer than ``threshold`` with agreeing durations.

    Rows are sorted by duration and each is compared only with the rows whose
    length could match, so the work grows with n times the number of tracks
    of about the same length, not n squared.
    """
    rows = np.arange(len(space)) if keep is None else np.flatnonzero(keep)
    order = rows[np.argsort(duration[rows], kind="stable")]
    dur = duration[order]
    pairs = []
    block = 512
    for a in range(0, len(order), block):
        b = min(len(order), a + block)
        hi = int(np.searchsorted(dur, dur[b - 1] + duration_tolerance(dur[b - 1]), side="right"))
        left = to_dup(space.vectors[order[a:b]])
        right = to_dup(space.vectors[order[a:hi]])
        d2 = (left**2).sum(1)[:, None] + (right**2).sum(1)[None, :] - 2.0 * left @ right.T
        ii, jj = np.nonzero(d2 < threshold**2 * 1.5)
        for i, j in zip(ii, jj):
            gi, gj = a + i, a + j
            if gj <= gi:
                continue
            if dur[gj] - dur[gi] > duration_tolerance(dur[gi]):  # sorted: dur[gi] is the shorter
                continue
            d = float(np.linalg.norm(left[i] - right[j]))
            if d < threshold:
                pairs.append((int(order[gi]), int(order[gj]), d))
    return pairs


# --------------------------------------------------------------------------- playlists

PLAYLIST_COLUMNS = ("position", "track_id", "path", "distance", "duration_sec", "seed")


def playlist(lib, seeds: Sequence[str], *, n: int = 20, metric: str | None = None, smooth: bool = False,
             include_seeds: bool = True, where: str | None = None,
             threshold: float = DUPLICATE_THRESHOLD) -> list[dict]:
    """A playlist of ``n`` tracks near the ``seeds`` (paths, indexed or not, or track ids).

    Candidates are ranked by their distance to the nearest seed. A track is
    never listed twice, and a candidate that is the same recording as a track
    already chosen (same content, or a duplicate as :func:`duplicates` judges
    it) is skipped. The seeds come first unless ``include_seeds`` is false;
    with ``smooth``, the rest are ordered so each next track is the nearest
    remaining one to the last.

    Returns
    -------
    list of dict
        Keys :data:`PLAYLIST_COLUMNS`; ``distance`` is to the nearest seed.
    """
    if n < 1:
        raise UsageError("-n must be at least 1.")
    if not seeds:
        raise UsageError("Give at least one seed track.")
    with lib.connect() as con:
        (metric,), tracks = load_for(con, lib, [metric])
        _require_tracks(tracks, con)
    queries = resolve_queries(lib, seeds, extended=metric in EXTENDED_METRICS)
    with lib.connect() as con:
        space = tracks.space(metric)
        dup = _DupSpace(space, lib.params)
        allowed = _where_mask(con, space.track_ids, where)
        hashes, paths = {}, {}
        for t, path, content in con.execute("SELECT track_id, path, content_hash FROM track_files").fetchall():
            hashes[t], paths[t] = content, path

    # Chosen so far: (track_id or None, path, raw vector, duration, content hash, distance, is_seed).
    chosen: list[tuple] = []
    seen_paths: set[str] = set()
    for q in queries:
        if q.path in seen_paths:
            continue
        seen_paths.add(q.path)
        chosen.append((q.track_id, q.path, q.vector, q.duration_sec or 0.0, q.content_hash, 0.0, True))
    dist = np.min([space.distances(q.vector) for q in queries], axis=0)
    if allowed is not None:
        dist[~allowed] = np.inf
    seed_ids = {q.track_id for q in queries if q.track_id is not None}
    order = np.lexsort((space.track_ids, dist))
    picked_coords = [dup(c[2]) for c in chosen]
    want = n + (len(chosen) if not include_seeds else 0)
    for i in order:
        if len(chosen) >= want or not np.isfinite(dist[i]):
            break
        t = int(space.track_ids[i])
        if t in seed_ids:
            continue
        duration = tracks.duration_sec[i]
        h = hashes.get(t)
        coords = dup(space.vectors[i])
        if any((h is not None and h == c[4]) or (same_duration(duration, c[3]) and
               float(np.linalg.norm(coords - pc)) < threshold) for c, pc in zip(chosen, picked_coords)):
            continue
        chosen.append((t, paths[t], space.vectors[i], duration, h, float(dist[i]), False))
        picked_coords.append(coords)

    seeds_part = [c for c in chosen if c[6]]
    rest = [c for c in chosen if not c[6]]
    if smooth and rest:
        rest = _smooth(space, seeds_part[-1][2], rest)
    items = (seeds_part if include_seeds else []) + rest
    items = items[:n]
    return [
        {"position": k + 1, "track_id": c[0], "path": c[1], "distance": c[5],
         "duration_sec": float(c[3]) if c[3] is not None else None, "seed": c[6]}
        for k, c in enumerate(items)
    ]


def _smooth(space: Space, start: np.ndarray, items: list[tuple]) -> list[tuple]:
    """Greedy nearest-neighbour walk from ``start`` through ``items``."""
    coords = space.transform(np.stack([c[2] for c in items]))
    here = space.transform(start)
    left = list(range(len(items)))
    out = []
    while left:
        sub = coords[left]
        d = 1.0 - sub @ here if space.metric == "cosine" else np.linalg.norm(sub - here, axis=1)
        k = left.pop(int(np.argmin(d)))
        out.append(items[k])
        here = coords[k]
    return out


# --------------------------------------------------------------------------- evaluation

@dataclasses.dataclass
class EvalReport:
    """Leave-one-out k-NN figures: ``rows`` of dicts with keys :data:`EVAL_COLUMNS`."""

    rows: list[dict]
    labelled: int = 0
    unmatched: list[str] = dataclasses.field(default_factory=list)  # CSV paths not in the library
    singletons: list[str] = dataclasses.field(default_factory=list)  # labels with one track: no queries


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
        raise UsageError("Every track is in the same folder, so folder names cannot label them. "
                         "Give a CSV of path,label instead: audiodb eval --label-from labels.csv")
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
        raise UsageError(f"Cannot read labels from {csv_path}: {e.strerror}. Give 'folder' or a CSV of "
                         "path,label.") from None
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


def evaluate(lib, label_from: str = "folder", *, metrics: Sequence[str | None] = (None,), k: int = 5
             ) -> EvalReport:
    """Leave-one-out k-NN evaluation: does "similar" mean "same label" in this library?

    Each labelled track whose label has at least two tracks is a query; its
    ``k`` nearest other labelled tracks are found in each metric's space
    (z-score statistics from the whole library). precision@k is the share of
    them with the query's label; 1-NN accuracy the share of queries whose
    nearest track has it. Figures are given per label and over all queries.

    Parameters
    ----------
    label_from : 'folder' or a path to a CSV of path,label
    metrics : metric names; None is the default metric (see :func:`load_for`)
    """
    if k < 1:
        raise UsageError("-k must be at least 1.")
    with lib.connect() as con:
        metrics, tracks = load_for(con, lib, metrics)
        _require_tracks(tracks, con)
        with_vectors = set(tracks.track_ids.tolist())
        rows = [r for r in con.execute("SELECT track_id, path FROM track_files").fetchall() if r[0] in with_vectors]
    unmatched: list[str] = []
    if label_from == "folder":
        labels = labels_from_folders(rows)
    else:
        labels, unmatched = labels_from_csv(label_from, rows)
    return _evaluate(tracks, labels, metrics, k, unmatched)


def _evaluate(tracks: Tracks, labels: dict[int, str], metrics: Sequence[str], k: int,
              unmatched: list[str] | None = None) -> EvalReport:
    sel = np.array([i for i, t in enumerate(tracks.track_ids) if int(t) in labels], dtype=np.int64)
    names = np.array([labels[int(t)] for t in tracks.track_ids[sel]], dtype=object)
    uniq, codes, counts = np.unique(names.astype(str), return_inverse=True, return_counts=True)
    if len(uniq) < 2:
        raise UsageError("Evaluation needs at least two labels with tracks in the library; "
                         f"found {len(uniq)}.")
    queries = np.flatnonzero(counts[codes] >= 2)
    kk = min(k, len(sel) - 1)
    report = EvalReport([], labelled=len(sel), unmatched=unmatched or [],
                        singletons=[str(u) for u, c in zip(uniq, counts) if c < 2])
    for metric in metrics:
        space = tracks.space(metric)
        x = space.transform(space.vectors[sel])
        hits = np.zeros(len(sel))
        first = np.zeros(len(sel), dtype=bool)
        step = max(1, min(1024, (1 << 24) // len(sel)))  # a block of distances stays ~128 MB
        for a in range(0, len(queries), step):
            q = queries[a:a + step]
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
            report.rows.append({
                "metric": metric,
                "label": ALL_LABELS if label_index is None else str(uniq[label_index]),
                "tracks": len(qs),
                "k": kk,
                "precision_at_k": round(float(hits[qs].mean()), 4),
                "accuracy_1nn": round(float(first[qs].mean()), 4),
            })
    return report
