"""Reading stored vectors into numpy, through Arrow, without per-row Python work."""

from __future__ import annotations

import numpy as np

from ..analysis.params import NOTEBOOK, FeatureParams

__all__ = ["arrow_values", "count_stale", "load_vectors", "query_arrow", "read_vectors"]

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
        emb = cur.sql(f"SELECT track_id, vector FROM {table} WHERE feature_set = $fs",
                      params={"fs": feature_set}).to_arrow_table(batch_size=max(n, 1))
    finally:
        cur.execute(f"SET threads = {int(threads)}")
    chunks = emb.column("vector").chunks
    if len(chunks) == 1:
        vectors = arrow_values(chunks[0].flatten(), np.float32).reshape(len(chunks[0]), dims)
    else:
        vectors = np.empty((emb.num_rows, dims), dtype=np.float32)
        at = 0
        for vec in chunks:
            vectors[at:at + len(vec)] = arrow_values(vec.flatten(), np.float32).reshape(len(vec), dims)
            at += len(vec)
    ids = np.concatenate([arrow_values(c, np.int64) for c in emb.column("track_id").chunks] or
                         [np.empty(0, np.int64)])
    return ids, vectors


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
    many tracks have none for ``params`` yet."""
    cur = con.cursor()
    try:
        ids, X = read_vectors(cur, "embeddings", params.id, params.dims)
        known = cur.execute("SELECT track_id FROM track_files").fetchnumpy()["track_id"]
    finally:
        cur.close()
    keep = np.isin(ids, known)  # vectors of tracks no longer in the library are left out
    order = np.argsort(ids[keep], kind="stable")  # by track id: the same input, the same clusters
    ids, X = ids[keep][order], X[keep][order]
    return ids, X, int(len(known) - len(ids))


def count_stale(con, feature_set: str, table: str = "embeddings") -> int:
    """Tracks with no vector for ``feature_set`` in ``table`` (new parameters, or analysis pending)."""
    assert table in TABLES
    return con.execute(
        f"SELECT count(*) FROM track_files t WHERE NOT EXISTS (SELECT 1 FROM {table} e "
        "WHERE e.track_id = t.track_id AND e.feature_set = ?)", [feature_set]).fetchall()[0][0]
