"""Segmentations and their segments in the library: registering, writing, counting, reading.

Functions of an open connection; the only module that speaks SQL about segments. A file's
segments are written by :func:`replace_segments` inside the transaction that writes the file
(:func:`audiodb.store.tracks.write_results`), so a kill leaves a file with all its segments of
a segmentation or none.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING

from ..analysis.params import FeatureParams, SegmentParams
from ..paths import to_stored
from .catalog import has_rows
from .clock import utc_now

if TYPE_CHECKING:  # numpy is loaded by what writes or reads segments, not by importing this
    import numpy as np

__all__ = [
    "SegmentMatrix",
    "delete_segments",
    "load_segments",
    "missing_segmentations",
    "register_segmentation",
    "registered",
    "replace_segments",
    "segment_counts",
    "segments_of",
]

_COLUMNS = ("seg_index", "start_ms", "end_ms", "rms_db", "snr_db", "active_fraction", "active")


def _has_table(con) -> bool:
    q = "SELECT count(*) FROM information_schema.tables WHERE table_name = 'segmentations'"
    return bool(con.execute(q).fetchall()[0][0])


def register_segmentation(con, seg: SegmentParams) -> bool:
    """Register ``seg`` (once); True if it was new."""
    if con.execute("SELECT count(*) FROM segmentations WHERE id = ?", [seg.id]).fetchall()[0][0]:
        return False
    con.execute(
        "INSERT INTO segmentations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            seg.id,
            seg.label,
            seg.window_ms,
            seg.hop_ms,
            seg.base.id,
            seg.dims,
            seg.as_json(),
            seg.feature_names(),
            utc_now(),
        ],
    )
    return True


def _from_json(blob: str) -> SegmentParams:
    d = json.loads(blob)
    d["base"] = FeatureParams(**d["base"])
    return SegmentParams(**d)


def registered(con, base: FeatureParams | None = None) -> list[SegmentParams]:
    """The registered segmentations (of feature set ``base`` when given), oldest first."""
    if not _has_table(con):
        return []
    rows = con.execute("SELECT params FROM segmentations ORDER BY registered_at, id").fetchall()
    out = [_from_json(r[0]) for r in rows]
    return [s for s in out if base is None or s.base == base]


def missing_segmentations(con, seg_ids: list[str]) -> dict[int, list[str]]:
    """Tracks lacking segments of some of ``seg_ids``: track_id -> the ids it lacks."""
    if not seg_ids:
        return {}
    rows = con.execute(
        """SELECT t.track_id, list(g.id ORDER BY g.id)
           FROM track_files t CROSS JOIN (SELECT unnest(?::VARCHAR[]) AS id) g
           WHERE NOT EXISTS (SELECT 1 FROM segments s WHERE s.track_id = t.track_id AND s.segmentation = g.id)
           GROUP BY t.track_id""",
        [seg_ids],
    ).fetchall()
    return {int(t): list(ids) for t, ids in rows}


def delete_segments(con, track_ids: list[int], seg_ids: list[str] | None = None) -> None:
    """The segments of ``track_ids`` (of ``seg_ids`` only, when given) gone."""
    if not track_ids:
        return
    if seg_ids is None:
        con.execute("DELETE FROM segments WHERE list_contains(?, track_id)", [track_ids])
    else:
        con.execute(
            "DELETE FROM segments WHERE list_contains(?, track_id) AND list_contains(?, segmentation)",
            [track_ids, seg_ids],
        )


def replace_segments(con, results: list[dict], *, all_of_track: bool) -> None:
    """Write the ``segments`` of each result (path -> its :class:`SegmentRows` by segmentation id).

    Inside the caller's transaction, after the file's track row is written. The track's
    earlier segments are deleted first: all of them with ``all_of_track`` (a re-analysed
    file), else only those of the segmentations computed (a segments-only pass).
    """
    if not results or not (any(r.get("segments") for r in results) or has_rows(con, "segments")):
        return  # nothing to write, nothing to delete (a scan without segmentations: 4 ms a batch less)
    import numpy as np

    paths = [to_stored(r["path"]) for r in results]
    ids = dict(con.execute("SELECT path, track_id FROM track_files WHERE list_contains(?, path)", [paths]).fetchall())
    if all_of_track:  # a re-analysed file's earlier segments are stale, whatever it brings
        delete_segments(con, sorted(ids.values()))
    pairs = [(r, p) for r, p in zip(results, paths) if r.get("segments")]
    if not pairs:
        return
    cols: dict[str, list] = {k: [] for k in ("track_id", "segmentation", *_COLUMNS)}
    vectors = []
    by_seg: dict[str, list[int]] = {}
    dims = None
    for r, p in pairs:
        tid = ids.get(p)
        if tid is None:
            continue
        for seg_id, rows in r["segments"].items():
            by_seg.setdefault(seg_id, []).append(tid)
            n = len(rows["seg_index"])
            cols["track_id"].append(np.full(n, tid, np.int64))
            cols["segmentation"].extend([seg_id] * n)
            for k in _COLUMNS:
                cols[k].append(np.asarray(rows[k]))
            vectors.append(np.asarray(rows["vectors"], np.float32))
            dims = vectors[-1].shape[1] if vectors[-1].ndim == 2 else dims
    if not all_of_track:
        for seg_id, tids in by_seg.items():
            delete_segments(con, tids, [seg_id])
    if not vectors or dims is None:
        return
    import pyarrow as pa  # only when there are segments to write: a plain scan never loads it

    flat = np.concatenate([v.reshape(-1) for v in vectors])
    table = pa.table(
        {
            "track_id": pa.array(np.concatenate(cols["track_id"]), pa.int64()),
            "segmentation": pa.array(cols["segmentation"], pa.string()),
            "seg_index": pa.array(np.concatenate(cols["seg_index"]).astype(np.int32)),
            "start_ms": pa.array(np.concatenate(cols["start_ms"]).astype(np.int32)),
            "end_ms": pa.array(np.concatenate(cols["end_ms"]).astype(np.int32)),
            "rms_db": pa.array(np.concatenate(cols["rms_db"]).astype(np.float32)),
            "snr_db": pa.array(np.concatenate(cols["snr_db"]).astype(np.float32)),
            "active_fraction": pa.array(np.concatenate(cols["active_fraction"]).astype(np.float32)),
            "active": pa.array(np.concatenate(cols["active"]).astype(bool)),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), dims),
        }
    )
    con.register("segment_batch", table)
    try:
        con.execute(
            f"""INSERT INTO segments SELECT track_id, segmentation, seg_index, start_ms, end_ms, rms_db, snr_db,
                       active_fraction, active, vector::FLOAT[{dims}] FROM segment_batch"""
        )
    finally:
        try:
            con.unregister("segment_batch")
        except Exception:  # an aborted transaction: the original error is the one to report
            pass


def segment_counts(con) -> list[dict]:
    """Per registered segmentation: its label and id, segments, active segments, files still to do."""
    if not _has_table(con):
        return []
    rows = con.execute(
        """SELECT g.id, g.label, g.window_ms, g.hop_ms,
                  (SELECT count(*) FROM segments s WHERE s.segmentation = g.id),
                  (SELECT count(*) FROM segments s WHERE s.segmentation = g.id AND s.active),
                  (SELECT count(*) FROM track_files t WHERE NOT EXISTS
                      (SELECT 1 FROM segments s WHERE s.segmentation = g.id AND s.track_id = t.track_id))
           FROM segmentations g ORDER BY g.registered_at, g.id"""
    ).fetchall()
    keys = ("id", "label", "window_ms", "hop_ms", "segments", "active_segments", "files_to_do")
    return [dict(zip(keys, r)) for r in rows]


@dataclasses.dataclass
class SegmentMatrix:
    """Segments of one segmentation as arrays (rows in (track_id, seg_index) order)."""

    track_ids: np.ndarray  # (n,) int64
    seg_index: np.ndarray  # (n,) int32
    start_ms: np.ndarray  # (n,) int64
    end_ms: np.ndarray  # (n,) int64
    active: np.ndarray  # (n,) bool
    vectors: np.ndarray  # (n, d) float32


def load_segments(con, seg_id: str, *, active_only: bool = True, track_ids: list[int] | None = None) -> SegmentMatrix:
    """The segments of ``seg_id`` (the active ones unless ``active_only`` is false), through Arrow."""
    import numpy as np

    from .vectors import arrow_values, segment_arrow

    cur = con.cursor()
    try:
        dims = cur.execute("SELECT dims FROM segmentations WHERE id = ?", [seg_id]).fetchall()[0][0]
        tab = segment_arrow(cur, seg_id, active_only=active_only, track_ids=track_ids)
    finally:
        cur.close()
    n = tab.num_rows

    def col(name, dtype):
        c = tab.column(name)
        return arrow_values(c.chunks[0], dtype).copy() if n else np.empty(0, dtype)

    vec = tab.column("vector")
    vectors = (
        arrow_values(vec.chunks[0].flatten(), np.float32).reshape(n, dims).copy()
        if n
        else np.empty((0, dims), np.float32)
    )
    active = np.asarray(tab.column("active").to_pylist(), dtype=bool) if n else np.empty(0, bool)
    return SegmentMatrix(
        col("track_id", np.int64),
        col("seg_index", np.int32),
        col("start_ms", np.int32).astype(np.int64),
        col("end_ms", np.int32).astype(np.int64),
        active,
        vectors,
    )


def segments_of(con, track_id: int, seg_id: str) -> list[tuple]:
    """``(seg_index, start_ms, end_ms, rms_db, snr_db, active_fraction, active)`` of one track, in order."""
    return con.execute(
        "SELECT seg_index, start_ms, end_ms, rms_db, snr_db, active_fraction, active FROM segments "
        "WHERE track_id = ? AND segmentation = ? ORDER BY seg_index",
        [track_id, seg_id],
    ).fetchall()
