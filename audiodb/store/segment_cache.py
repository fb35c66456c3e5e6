"""The searched segments of a segmentation as memory-mapped numpy files beside the library.

Reading a million 220-float vectors out of DuckDB costs seconds per query (decompressing
880 MB; ordering them costs more), while the matrix-vector product a query needs takes a
quarter of a second. So :func:`cached_segments` keeps what a search reads in a folder beside
the library file (``LIBRARY.duckdb.segcache/``): the rows' ids and times (``.npz``), the float32
matrix (``.npy``, memory-mapped: nothing is read until the product touches it) and, per metric,
the z-score statistics and row norms :class:`audiodb.query.space.Space` would compute.

The files are named by a *content version*: the count and an order-free sum of hashes of every
selected row's key, times and activity statistics (``track_id``, ``seg_index``, ``start_ms``,
``end_ms``, ``rms_db``, ``snr_db``, ``active_fraction``, ``active``), which one scan of those
scalar columns gives (0.2 s at a million rows). A file re-analysed, added, removed or given
another segmentation changes it (a window's statistics are computed from the same frames as its
vector), and the next search rebuilds the cache and deletes the files of older versions.

The cache is only ever a copy: when the folder cannot be written (a read-only library), or a
file in it is unreadable, the rows are read from DuckDB as before.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import tempfile
from collections.abc import Callable

import numpy as np

from .vectors import arrow_values, segment_scan_arrow

__all__ = ["cache_dir", "cached_segments", "content_version", "read_segments"]

_SCALARS = "track_id, seg_index, start_ms, end_ms, rms_db, snr_db, active_fraction, active"


def cache_dir(db_path: str | os.PathLike) -> str:
    """The cache folder of the library file ``db_path``."""
    return os.fspath(db_path) + ".segcache"


def _where(active_only: bool) -> str:
    return "segmentation = ?" + (" AND active" if active_only else "")


def content_version(con, seg_id: str, *, active_only: bool) -> str:
    """The content version of the rows a search of ``seg_id`` reads (see the module)."""
    n, total = con.execute(
        f"SELECT count(*), coalesce(sum(hash({_SCALARS})), 0) FROM segments WHERE {_where(active_only)}", [seg_id]
    ).fetchone()
    return f"{n}-{int(total):x}"


def read_segments(con, seg_id: str, dims: int, *, active_only: bool) -> dict[str, np.ndarray]:
    """The rows of ``seg_id`` from DuckDB as arrays in (track_id, seg_index) order.

    One unordered scan (:func:`audiodb.store.vectors.segment_scan_arrow`), ordered in numpy.
    """
    cur = con.cursor()
    try:
        tab = segment_scan_arrow(cur, seg_id, active_only=active_only)
    finally:
        cur.close()
    n = tab.num_rows

    def col(name, dtype):
        return arrow_values(tab.column(name).chunks[0], dtype) if n else np.empty(0, dtype)

    track_ids, seg_index = col("track_id", np.int64), col("seg_index", np.int32)
    order = np.lexsort((seg_index, track_ids))
    vectors = (
        arrow_values(tab.column("vector").chunks[0].flatten(), np.float32).reshape(n, dims)
        if n
        else np.empty((0, dims), np.float32)
    )
    return {
        "track_ids": track_ids[order],
        "seg_index": seg_index[order],
        "start_ms": col("start_ms", np.int32).astype(np.int64)[order],
        "end_ms": col("end_ms", np.int32).astype(np.int64)[order],
        "active": col("active", np.uint8)[order].astype(bool),
        "vectors": np.ascontiguousarray(vectors[order]),
    }


def _stem(seg_id: str, active_only: bool) -> str:
    return f"{seg_id}-{'active' if active_only else 'all'}"


def _save(path: str, write) -> None:
    """``write(f)`` into a temporary file beside ``path``, then renamed to it (readers see whole files)."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def cached_segments(
    db_path: str | os.PathLike, con, seg_id: str, dims: int, *, active_only: bool, stats=None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None, Callable[[dict[str, np.ndarray]], None]]:
    """``(rows, stats, keep_stats)``: the rows :func:`read_segments` gives, from the cache when it
    is current (the vectors memory-mapped), else read and cached.

    ``stats`` names the cached statistics to return (a string such as the metric's name, or
    None); the second item is the saved dict of arrays, or None when there are none yet, and
    ``keep_stats(dict)`` saves them for the next search.
    """
    version = content_version(con, seg_id, active_only=active_only)
    folder = cache_dir(db_path)
    stem = os.path.join(folder, _stem(seg_id, active_only))
    rows_path, vec_path = f"{stem}-{version}.npz", f"{stem}-{version}.npy"
    stats_path = f"{stem}-{version}-{hashlib.blake2b(str(stats).encode(), digest_size=6).hexdigest()}.stats.npz"
    rows = None
    try:
        with np.load(rows_path) as z:
            rows = {k: z[k] for k in z.files}
        rows["vectors"] = np.load(vec_path, mmap_mode="r")
        if rows["vectors"].shape != (len(rows["track_ids"]), dims):
            rows = None
    except (OSError, ValueError, KeyError):
        rows = None
    if rows is None:
        rows = read_segments(con, seg_id, dims, active_only=active_only)
        try:
            os.makedirs(folder, exist_ok=True)
            for old in glob.glob(glob.escape(stem) + "-*"):
                with contextlib.suppress(OSError):
                    os.remove(old)
            _save(vec_path, lambda f: np.save(f, rows["vectors"]))
            others = {k: v for k, v in rows.items() if k != "vectors"}
            _save(rows_path, lambda f: np.savez(f, **others))  # type: ignore[arg-type]
        except OSError:  # a read-only place: search without a cache
            pass
    saved = None
    if stats is not None:
        try:
            with np.load(stats_path) as z:
                saved = {k: z[k] for k in z.files}
        except (OSError, ValueError):
            saved = None

    def keep_stats(values: dict[str, np.ndarray]) -> None:
        with contextlib.suppress(OSError):
            if os.path.isfile(vec_path):
                _save(stats_path, lambda f: np.savez(f, **values))  # type: ignore[arg-type]

    return rows, saved, keep_stats
