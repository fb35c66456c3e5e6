"""The notebook's CSV (or the same columns as Parquet), written by DuckDB; with
``features="extended"`` also the second feature set's 42 columns."""

from __future__ import annotations

import os

from ..analysis.params import EXTENDED, FEATURE_NAMES
from ..errors import NothingIndexed, UsageError

__all__ = ["EXPORT_FEATURES", "export", "export_query"]

#: What ``features`` may name: the notebook's columns, or those and the second set's 42.
EXPORT_FEATURES = ("notebook", "extended")


def export_query(features: str = "notebook") -> str:
    """The notebook's CSV as one SELECT: file_name, file_path, duration_sec, sample_rate,
    the 180 features, cluster_kmeans, cluster_hdbscan (latest runs; NULL where none).

    ``features="extended"`` puts the ``extended_features`` view's 42 columns after the
    180 (NULL for a track without a current second-set vector).
    """
    if features not in EXPORT_FEATURES:
        raise UsageError(f"Unknown features {features!r}: choose notebook or extended.")
    columns = ", ".join(f"f.{name}" for name in FEATURE_NAMES)
    join = ""
    if features == "extended":
        columns += ", " + ", ".join(f"x.{name}" for name in EXTENDED.feature_names())
        join = "LEFT JOIN extended_features x ON x.track_id = t.track_id"
    return f"""
        SELECT t.file_name, t.path AS file_path, t.duration_sec, t.sample_rate, {columns},
               k.cluster AS cluster_kmeans, h.cluster AS cluster_hdbscan
        FROM track_files t
        JOIN features f USING (track_id)
        {join}
        LEFT JOIN clusters k ON k.track_id = t.track_id AND k.method = 'kmeans'
        LEFT JOIN clusters h ON h.track_id = t.track_id AND h.method = 'hdbscan'
        ORDER BY t.path"""


def export(con, path: str | os.PathLike, *, features: str = "notebook") -> int:
    """Write the notebook's CSV (``.csv``) or the same columns as Parquet (``.parquet``);
    ``features="extended"`` adds the second feature set's 42 columns (see :func:`export_query`).

    Returns the number of tracks written.
    """
    query = export_query(features)
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".csv", ".parquet"):
        raise UsageError(f"Cannot tell the format of {path!r}: name it .csv or .parquet.")
    n = con.execute("SELECT count(*) FROM features").fetchone()[0]
    if n == 0:
        raise NothingIndexed("No tracks indexed yet: run audiodb scan DIR first.")
    options = "FORMAT csv, HEADER true" if ext == ".csv" else "FORMAT parquet"
    quoted = path.replace("'", "''")
    con.execute(f"COPY ({query}) TO '{quoted}' ({options})")
    return int(n)
