"""Questions about the tracks a query needs answered: lookups, masks, labels, the map's rows.

Every statement here reads; the queries in :mod:`audiodb.query` and the maps in
:mod:`audiodb.maps` call these instead of writing SQL themselves.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from ..errors import UsageError
from ..paths import to_stored

if TYPE_CHECKING:  # loaded by the queries that take masks; a scan's writer uses has_rows alone
    import numpy as np

__all__ = [
    "cluster_labels",
    "count_tracks",
    "folder_mask",
    "has_rows",
    "lookup_track",
    "map_rows",
    "track_info",
    "track_paths",
    "tracks_columns",
    "where_mask",
]


def count_tracks(con) -> int:
    """Rows of ``track_files``: every indexed file, with a current vector or not."""
    return con.execute("SELECT count(*) FROM track_files").fetchone()[0]


def has_rows(con, table: str) -> bool:
    """Whether ``table`` holds a row (a writer skips deleting from an empty table: milliseconds a batch)."""
    return con.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is not None


def track_paths(con) -> list[tuple[int, str]]:
    """(track_id, path) of every indexed file."""
    return con.execute("SELECT track_id, path FROM track_files").fetchall()


def track_info(con, track_ids: Sequence[int] | None, columns: Sequence[str]) -> dict[int, tuple]:
    """``{track_id: (column values...)}`` of ``track_files`` for ``track_ids`` (None: every track).

    ``columns`` are names of ``track_files`` columns, chosen by the caller (never user text).
    """
    cols = ", ".join(["track_id", *columns])
    if track_ids is None:
        rows = con.execute(f"SELECT {cols} FROM track_files").fetchall()
    else:
        rows = con.execute(
            f"SELECT {cols} FROM track_files WHERE list_contains(?, track_id)", [list(track_ids)]
        ).fetchall()
    return {r[0]: r[1:] for r in rows}


def lookup_track(con, ref: str) -> tuple | None:
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


def where_mask(con, space_ids: np.ndarray, where: str | None) -> np.ndarray | None:
    """Which rows meet the user's SQL condition on the ``tracks`` view (None: no condition).

    The condition is the user's own SQL on their own file, run on a read-only
    connection; it is only ever evaluated as ``WHERE (<condition>)`` on ``tracks``.
    """
    import numpy as np

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
            'It is used as WHERE <condition>; for example --where "duration_sec > 60" or '
            '--where "folder LIKE \'%/jazz%\'" (columns: audiodb sql "describe tracks").'
        ) from None
    return np.isin(space_ids, np.asarray(ids, dtype=np.int64))


def folder_mask(con, space_ids: np.ndarray, folders: Iterable[str]) -> np.ndarray:
    """Which rows are *not* in one of ``folders``."""
    import numpy as np

    ids = con.execute(
        "SELECT track_id FROM track_files WHERE list_contains(?, folder)", [sorted(set(folders))]
    ).fetchnumpy()["track_id"]
    return ~np.isin(space_ids, np.asarray(ids, dtype=np.int64))


def cluster_labels(con, track_ids: list[int], methods: Sequence[str]) -> dict[int, dict[str, int | None]]:
    """Latest cluster of each track per method, from the ``clusters`` view if there is one."""
    out: dict[int, dict[str, int | None]] = {t: {f"cluster_{m}": None for m in methods} for t in track_ids}
    has = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'clusters'").fetchone()[0]
    if not has or not track_ids:
        return out
    import duckdb

    try:
        rows = con.execute(
            "SELECT track_id, method, cluster FROM clusters WHERE list_contains(?, track_id)", [track_ids]
        ).fetchall()
    except duckdb.Error:
        return out
    for tid, method, cluster in rows:
        if method in methods:
            out[tid][f"cluster_{method}"] = cluster
    return out


def tracks_columns(con) -> dict[str, str]:
    """``{column: DuckDB type}`` of the ``tracks`` view."""
    return {name: typ for name, typ, *_ in con.execute("DESCRIBE tracks").fetchall()}


#: How :func:`map_rows` reads the colour column: by the kind of its type.
COLOR_KINDS = ("none", "temporal", "numeric", "text")


def map_rows(con, color: str | None, kind: str):
    """One query: every track, by path, with its clusters and colour column (no vectors: those
    come from :func:`audiodb.store.vectors.load_tracks`, matched by ``track_id``).

    ``color`` is a column of ``tracks`` (checked by the caller) read as ``kind``, one of
    :data:`COLOR_KINDS` (``none``: no column, ``color_value`` is NULL). Returns an Arrow table
    of ``track_id``, ``path``, ``duration_sec``, ``artist``, ``title``, ``cluster_kmeans``,
    ``cluster_hdbscan``, ``color_value``.
    """
    if kind == "none":
        value_sql = "NULL"
    else:
        assert color is not None, "a colour column is needed unless kind is 'none'"
        quoted = '"' + color.replace('"', '""') + '"'
        value_sql = {
            "temporal": f"epoch(t.{quoted})",
            "numeric": f"CAST(t.{quoted} AS DOUBLE)",
            "text": f"CAST(t.{quoted} AS VARCHAR)",
        }[kind]
    return con.sql(
        f"""SELECT t.track_id, t.path, t.duration_sec, t.artist, t.title,
                   k.cluster AS cluster_kmeans, h.cluster AS cluster_hdbscan, {value_sql} AS color_value
            FROM tracks t
            LEFT JOIN clusters k ON k.track_id = t.track_id AND k.method = 'kmeans'
            LEFT JOIN clusters h ON h.track_id = t.track_id AND h.method = 'hdbscan'
            ORDER BY t.path"""
    ).to_arrow_table()
