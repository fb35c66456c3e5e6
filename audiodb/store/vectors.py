"""Reading stored vectors into numpy, through Arrow, without per-row Python work."""

from __future__ import annotations

import dataclasses

import numpy as np

from ..analysis.params import NOTEBOOK, ExtendedParams, FeatureParams

__all__ = [
    "VectorSet",
    "arrow_values",
    "segment_arrow",
    "segment_scan_arrow",
    "count_stale",
    "load_tracks",
    "load_vectors",
    "query_arrow",
    "read_vectors",
    "stored_vector",
]

TABLES = ("embeddings", "extended_embeddings")


def read_vectors(cur, table: str, feature_set: str, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """(track ids, vectors) of one feature set in ``table``, in the table's order.

    ``cur`` is a cursor of its own (see below); ``dims`` the set's vector length.
    """
    if table not in TABLES:
        raise ValueError(f"no vector table {table!r}")
    # A relation (not execute()) hands Arrow its columns without an extra copy; it needs a
    # connection with no result pending, hence a cursor of its own. One scan thread makes
    # DuckDB return one Arrow chunk, which numpy then uses in place: at a million tracks,
    # copying 720 MB into fresh memory costs more than the scan.
    n = cur.execute(f"SELECT count(*) FROM {table} WHERE feature_set = ?", [feature_set]).fetchone()[0]
    threads = cur.execute("SELECT current_setting('threads')").fetchone()[0]
    cur.execute("SET threads = 1")
    try:
        emb = cur.sql(
            f"SELECT track_id, vector FROM {table} WHERE feature_set = $fs", params={"fs": feature_set}
        ).to_arrow_table(batch_size=max(n, 1))
    finally:
        cur.execute(f"SET threads = {int(threads)}")
    chunks = emb.column("vector").chunks
    if len(chunks) == 1:
        vectors = arrow_values(chunks[0].flatten(), np.float32).reshape(len(chunks[0]), dims)
    else:
        vectors = np.empty((emb.num_rows, dims), dtype=np.float32)
        at = 0
        for vec in chunks:
            vectors[at : at + len(vec)] = arrow_values(vec.flatten(), np.float32).reshape(len(vec), dims)
            at += len(vec)
    ids = np.concatenate([arrow_values(c, np.int64) for c in emb.column("track_id").chunks] or [np.empty(0, np.int64)])
    return ids, vectors


@dataclasses.dataclass
class VectorSet:
    """What the library holds for the current feature set: ids, raw vectors and a few columns.

    Data only; :func:`audiodb.query.space.space_for` puts it in a metric's space.
    """

    track_ids: np.ndarray  # (n,) int64
    vectors: np.ndarray  # (n, d) float32
    duration_sec: np.ndarray  # (n,) float64
    feature_names: list[str]
    notebook_dims: int = NOTEBOOK.dims  # the first columns are the notebook's; any others the second set's
    without_extended: int = 0  # loaded with the second set: tracks left out for lacking it


def load_tracks(con, params: FeatureParams = NOTEBOOK, extended: ExtendedParams | None = None) -> VectorSet:
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
        meta = cur.sql("SELECT track_id, coalesce(duration_sec, 0) AS duration_sec FROM track_files").to_arrow_table()
    finally:
        cur.close()
    n = len(ids)
    track_ids = np.concatenate(
        [arrow_values(c, np.int64) for c in meta.column("track_id").chunks] or [np.empty(0, np.int64)]
    )
    seconds = np.concatenate([arrow_values(c, np.float64) for c in meta.column("duration_sec").chunks] or [np.empty(0)])
    order = np.argsort(track_ids)
    track_ids, seconds = track_ids[order], seconds[order]
    at = np.minimum(np.searchsorted(track_ids, ids), max(len(track_ids) - 1, 0))
    known = track_ids[at] == ids if len(track_ids) else np.zeros(n, dtype=bool)
    if not known.all():  # vectors of tracks no longer in the library
        vectors, ids, at = vectors[known], ids[known], at[known]
    dur = seconds[at] if len(track_ids) else np.empty(0)
    return VectorSet(ids, vectors, dur, names, params.dims, without_extended)


def arrow_values(arr, dtype) -> np.ndarray:
    """A null-free primitive Arrow array as a numpy view of its buffer.

    (pyarrow's own ``to_numpy`` imports pandas, which costs more than the query.)
    """
    dtype = np.dtype(dtype)
    if arr.null_count:
        raise ValueError("unexpected NULL in a vector column")
    return np.frombuffer(arr.buffers()[1], dtype=dtype, count=len(arr), offset=arr.offset * dtype.itemsize)


def query_arrow(con, query: str, params: list | None = None):
    """A query's rows as an Arrow table, without a copy.

    Runs on a cursor: DuckDB 2 refuses ``con.sql`` while an ``execute()`` result
    on the same connection is unfinished, and copies DB-API results to Arrow.
    """
    cur = con.cursor()
    try:
        return cur.sql(query, params=params or None).to_arrow_table()
    finally:
        cur.close()


def load_vectors(con, params: FeatureParams = NOTEBOOK) -> tuple[np.ndarray, np.ndarray, int]:
    """``(track_ids, X, n_stale)``: current vectors of every track, by track id, and how
    many tracks have none for ``params`` yet (:func:`load_tracks`, sorted by id)."""
    tracks = load_tracks(con, params)
    order = np.argsort(tracks.track_ids, kind="stable")  # by track id: the same input, the same clusters
    n = con.execute("SELECT count(*) FROM track_files").fetchone()[0]
    return tracks.track_ids[order], tracks.vectors[order], int(n - len(order))


def stored_vector(con, track_id: int, feature_set: str, extended_set: str | None = None) -> np.ndarray | None:
    """The stored vector of one track (followed by its second set's with ``extended_set``), or None."""
    v = con.execute(
        "SELECT vector FROM embeddings WHERE track_id = ? AND feature_set = ?", [track_id, feature_set]
    ).fetchall()
    if v and extended_set is not None:
        x = con.execute(
            "SELECT vector FROM extended_embeddings WHERE track_id = ? AND feature_set = ?", [track_id, extended_set]
        ).fetchall()
        v = [[v[0][0] + x[0][0]]] if x else []
    return np.asarray(v[0][0], dtype=np.float32) if v else None


def count_stale(con, feature_set: str, table: str = "embeddings") -> int:
    """Tracks with no vector for ``feature_set`` in ``table`` (new parameters, or analysis pending)."""
    assert table in TABLES
    return con.execute(
        f"SELECT count(*) FROM track_files t WHERE NOT EXISTS (SELECT 1 FROM {table} e "
        "WHERE e.track_id = t.track_id AND e.feature_set = ?)",
        [feature_set],
    ).fetchall()[0][0]


def extended_for(con, track_ids: np.ndarray, extended: ExtendedParams) -> tuple[np.ndarray, np.ndarray]:
    """``(has, E)``: which of ``track_ids`` have a second-set vector, and those vectors, in order."""
    cur = con.cursor()
    try:
        ids, E = read_vectors(cur, "extended_embeddings", extended.id, extended.dims)
    finally:
        cur.close()
    track_ids = np.asarray(track_ids, dtype=np.int64)
    order = np.argsort(ids)
    pos = np.minimum(np.searchsorted(ids[order], track_ids), max(len(ids) - 1, 0))
    has = ids[order][pos] == track_ids if len(ids) else np.zeros(len(track_ids), dtype=bool)
    return has, E[order][pos[has]]


def segment_arrow(cur, seg_id: str, *, active_only: bool, track_ids: list[int] | None = None):
    """The ``segments`` rows of one segmentation as one Arrow table (track_id, seg_index,
    start_ms, end_ms, active, vector), in (track_id, seg_index) order; ``cur`` a cursor of its own.
    :func:`audiodb.store.segments.load_segments` turns it into arrays."""
    where = "segmentation = $seg" + (" AND active" if active_only else "")
    params: dict = {"seg": seg_id}
    if track_ids is not None:
        where += " AND list_contains($tids, track_id)"
        params["tids"] = [int(t) for t in track_ids]
    return (
        cur.sql(
            f"SELECT track_id, seg_index, start_ms, end_ms, active, vector FROM segments WHERE {where} "
            "ORDER BY track_id, seg_index",
            params=params,
        )
        .to_arrow_table()
        .combine_chunks()
    )


def segment_scan_arrow(cur, seg_id: str, *, active_only: bool):
    """The ``segments`` rows of one segmentation (track_id, seg_index, start_ms, end_ms, active as
    UTINYINT, vector) in the table's order, as one Arrow chunk per column; ``cur`` a cursor of its own.

    One scan on one thread, with no ORDER BY: sorting 880-byte rows inside DuckDB costs three times
    the scan, so :func:`audiodb.store.segment_cache.read_segments` orders them in numpy.
    """
    where = "segmentation = $seg" + (" AND active" if active_only else "")
    n = cur.execute(f"SELECT count(*) FROM segments WHERE {where.replace('$seg', '?')}", [seg_id]).fetchone()[0]
    threads = cur.execute("SELECT current_setting('threads')").fetchone()[0]
    cur.execute("SET threads = 1")
    try:
        tab = cur.sql(
            "SELECT track_id, seg_index, start_ms, end_ms, active::UTINYINT AS active, vector FROM segments "
            f"WHERE {where}",
            params={"seg": seg_id},
        ).to_arrow_table(batch_size=max(n, 1))
    finally:
        cur.execute(f"SET threads = {int(threads)}")
    return tab.combine_chunks() if tab.num_rows else tab
