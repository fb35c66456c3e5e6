"""The notebook's CSV (or the same columns as Parquet), written by DuckDB."""

from __future__ import annotations

import os

from ..analysis.params import FEATURE_NAMES
from ..errors import NothingIndexed, UsageError

__all__ = ["export", "export_query"]


def export_query() -> str:
    """The notebook's CSV as one SELECT: file_name, file_path, duration_sec, sample_rate,
    the 180 features, cluster_kmeans, cluster_hdbscan (latest runs; NULL where none)."""
    features = ", ".join(f"f.{name}" for name in FEATURE_NAMES)
    return f"""
        SELECT t.file_name, t.path AS file_path, t.duration_sec, t.sample_rate, {features},
               k.cluster AS cluster_kmeans, h.cluster AS cluster_hdbscan
        FROM track_files t
        JOIN features f USING (track_id)
        LEFT JOIN clusters k ON k.track_id = t.track_id AND k.method = 'kmeans'
        LEFT JOIN clusters h ON h.track_id = t.track_id AND h.method = 'hdbscan'
        ORDER BY t.path"""


def export(con, path: str | os.PathLike) -> int:
    """Write the notebook's CSV (``.csv``) or the same columns as Parquet (``.parquet``).

    Returns the number of tracks written.
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".csv", ".parquet"):
        raise UsageError(f"Cannot tell the format of {path!r}: name it .csv or .parquet.")
    n = con.execute("SELECT count(*) FROM features").fetchone()[0]
    if n == 0:
        raise NothingIndexed("No tracks indexed yet: run audiodb scan DIR first.")
    options = "FORMAT csv, HEADER true" if ext == ".csv" else "FORMAT parquet"
    quoted = path.replace("'", "''")
    con.execute(f"COPY ({export_query()}) TO '{quoted}' ({options})")
    return int(n)
