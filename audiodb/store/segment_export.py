"""Segments out of the library: a table of every window (CSV or Parquet), Raven Pro selection
tables (one per recording), and what a map of segments reads (the latest segment clusterings).

Functions of an open connection; the SQL about exporting segments lives here (the rest of the
segments' SQL is :mod:`audiodb.store.segments`).
"""

from __future__ import annotations

import os
import pathlib

import numpy as np

from ..analysis.params import FeatureParams
from ..analysis.segments import SegmentParams, choose_segmentation
from ..errors import AudiodbError, NothingIndexed, UsageError
from . import runs as runs_store
from . import segments as segment_store

__all__ = [
    "RAVEN_EXPORT_COLUMNS",
    "RAVEN_SUFFIX",
    "export_segments",
    "export_segments_raven",
    "latest_segment_runs",
    "pick_segmentation",
    "raven_table_names",
    "segment_cluster_labels",
    "segment_export_query",
]

#: The columns of each recording's Raven table: ``similar --format raven``'s without
#: ``Distance`` (there is no query here), then the window's dB above the noise floor and its cluster.
RAVEN_SELECTION_COLUMNS = (
    "Selection",
    "View",
    "Channel",
    "Begin Time (s)",
    "End Time (s)",
    "Low Freq (Hz)",
    "High Freq (Hz)",
    "Begin Path",
    "File Offset (s)",
)
RAVEN_EXPORT_COLUMNS = (*RAVEN_SELECTION_COLUMNS, "SNR (dB)", "Cluster")

#: Raven's own name for a saved selection table ends so.
RAVEN_SUFFIX = ".Table.1.selections.txt"

#: Cluster labels of segments not in a run, in the arrays of :func:`segment_cluster_labels`.
NO_CLUSTER = np.iinfo(np.int32).min


def pick_segmentation(con, base: FeatureParams, name: str | None = None) -> SegmentParams:
    """The registered segmentation ``name`` names (label such as ``1.0/0.5``, id or preset),
    or the earliest registered one when ``name`` is None
    (:func:`audiodb.analysis.segments.choose_segmentation`).

    Raises
    ------
    NothingIndexed
        No segmentation is registered.
    UsageError
        ``name`` names none of them.
    """
    return choose_segmentation(segment_store.registered(con, base), name, None)


def latest_segment_runs(con, seg_id: str) -> dict[str, dict]:
    """The latest clustering run over segments of ``seg_id`` of each method, oldest first:
    ``{method: run}`` (:func:`audiodb.store.runs.latest_segment_runs`' dicts)."""
    runs = sorted(runs_store.latest_segment_runs(con, segmentation=seg_id), key=lambda r: r["id"])
    return {r["method"]: r for r in runs}


def segment_cluster_labels(con, seg_id: str, track_ids: np.ndarray, seg_index: np.ndarray) -> dict[str, np.ndarray]:
    """Per method with a run over ``seg_id``: the latest run's cluster of each (track, window)
    given (int32; -1 noise; :data:`NO_CLUSTER` where the window is not in the run)."""
    import pyarrow as pa

    out = {}
    keys = pa.table(
        {
            "row": pa.array(np.arange(len(track_ids), dtype=np.int64)),
            "track_id": pa.array(np.asarray(track_ids, np.int64)),
            "seg_index": pa.array(np.asarray(seg_index, np.int32)),
        }
    )
    cur = con.cursor()
    try:
        cur.register("segment_keys", keys)
        for method in latest_segment_runs(cur, seg_id):
            rows = cur.execute(
                """SELECT k.row, c.cluster FROM segment_keys k
                   JOIN segment_clusters c ON c.track_id = k.track_id AND c.seg_index = k.seg_index
                   WHERE c.segmentation = ? AND c.method = ?""",
                [seg_id, method],
            ).fetchnumpy()
            labels = np.full(len(track_ids), NO_CLUSTER, dtype=np.int32)
            labels[np.asarray(rows["row"], np.int64)] = np.asarray(rows["cluster"], np.int32)
            out[method] = labels
    finally:
        cur.close()
    return out


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def segment_export_query(con, seg: SegmentParams, *, active_only: bool = False) -> str:
    """One SELECT of the segments of ``seg``: path, start_sec, end_sec, rms_db, snr_db,
    active_fraction, active, the segmentation's named features, then ``cluster_<method>``
    of each method's latest run over ``seg`` (NULL where a window is not in it); in (path, start) order."""
    features = ", ".join(f"f.{_quoted(n)}" for n in seg.feature_names())
    runs = latest_segment_runs(con, seg.id)
    joins, clusters = [], []
    for i, (method, run) in enumerate(runs.items()):
        joins.append(
            f"LEFT JOIN segment_cluster_assignments a{i} ON a{i}.run_id = {int(run['id'])} "
            f"AND a{i}.track_id = f.track_id AND a{i}.seg_index = f.seg_index"
        )
        clusters.append(f"a{i}.cluster AS {_quoted('cluster_' + method)}")
    seg_literal = "'" + seg.id.replace("'", "''") + "'"
    return f"""
        SELECT f.path, f.start_sec, f.end_sec, f.rms_db, f.snr_db, f.active_fraction, f.active,
               {features}{", " if clusters else ""}{", ".join(clusters)}
        FROM segment_features f
        {" ".join(joins)}
        WHERE f.segmentation = {seg_literal}{" AND f.active" if active_only else ""}
        ORDER BY f.path, f.start_ms"""


def export_segments(con, path: str | os.PathLike, seg: SegmentParams) -> int:
    """Write every window of ``seg`` (:func:`segment_export_query`) as CSV (``.csv``) or Parquet
    (``.parquet``); returns the number of windows written."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".csv", ".parquet"):
        raise UsageError(
            f"Cannot tell the format of {path!r}: name it .csv or .parquet (or give a folder and --raven)."
        )
    n = con.execute("SELECT count(*) FROM segments WHERE segmentation = ?", [seg.id]).fetchone()[0]
    if n == 0:
        raise NothingIndexed(f"No segments of {seg.label} are stored yet: run audiodb scan DIR.")
    options = "FORMAT csv, HEADER true" if ext == ".csv" else "FORMAT parquet"
    quoted = path.replace("'", "''")
    con.execute(f"COPY ({segment_export_query(con, seg)}) TO '{quoted}' ({options})")
    return int(n)


def raven_table_names(paths: list[str]) -> dict[str, str]:
    """The table file name of each recording: its path relative to the recordings' common
    folder, folders joined by ``__``, then :data:`RAVEN_SUFFIX` (``site1/dawn.flac`` ->
    ``site1__dawn.flac.Table.1.selections.txt``), so equal names in different folders do not clash."""
    if not paths:
        return {}
    folders = [os.path.dirname(p) for p in paths]
    try:
        common = os.path.commonpath(folders)
    except ValueError:  # different drives
        common = ""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for p in paths:
        rel = os.path.relpath(p, common) if common else p.lstrip(os.sep)
        base = rel.replace(os.sep, "__")
        name, i = base + RAVEN_SUFFIX, 1
        while name in taken:  # only a name that already has '__' in it can meet another
            i += 1
            name = f"{base}.{i}{RAVEN_SUFFIX}"
        taken.add(name)
        out[p] = name
    return out


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value).replace("\t", " ").replace("\n", " ")


def export_segments_raven(
    con, folder: str | os.PathLike, seg: SegmentParams, *, high_freq_hz: float = 11025.0
) -> list[dict]:
    """Write one Raven Pro selection table per recording into ``folder`` (made if missing).

    Each table holds the recording's active windows of ``seg``, one selection per window in
    time order, numbered from 1, with :data:`RAVEN_EXPORT_COLUMNS`; ``Cluster`` is the window's
    cluster in the latest run over ``seg`` (of any method; empty where none). ``Begin Path`` is
    the recording's path as the library stores it (as ``similar --format raven`` writes it). A
    recording without active windows gets a table with its header only. Names:
    :func:`raven_table_names`. Each table is written to a temporary file and renamed into place.

    Returns
    -------
    list of dict
        Per recording: ``path``, ``table`` (the file written), ``selections``.
    """
    out_dir = pathlib.Path(folder).expanduser().absolute()
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{out_dir} is a file: --raven writes one table per recording into a folder.")
    runs = latest_segment_runs(con, seg.id)
    latest = max(runs.values(), key=lambda r: r["id"]) if runs else None
    files = con.execute(
        """SELECT t.track_id, t.path FROM track_files t
           WHERE EXISTS (SELECT 1 FROM segments s WHERE s.track_id = t.track_id AND s.segmentation = ?)
           ORDER BY t.path""",
        [seg.id],
    ).fetchall()
    if not files:
        raise NothingIndexed(f"No segments of {seg.label} are stored yet: run audiodb scan DIR.")
    join = (
        f"LEFT JOIN segment_cluster_assignments a ON a.run_id = {int(latest['id'])} "
        "AND a.track_id = s.track_id AND a.seg_index = s.seg_index"
        if latest
        else ""
    )
    cluster = "a.cluster" if latest else "NULL::INTEGER"
    rows = con.execute(
        f"""SELECT s.track_id, s.start_ms, s.end_ms, s.snr_db, {cluster} FROM segments s {join}
            WHERE s.segmentation = ? AND s.active ORDER BY s.track_id, s.start_ms""",
        [seg.id],
    ).fetchall()
    by_track: dict[int, list[tuple]] = {}
    for r in rows:
        by_track.setdefault(r[0], []).append(r)
    names = raven_table_names([p for _, p in files])
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise AudiodbError(f"Cannot make {out_dir}: {e.strerror or e}. Choose another folder.") from None
    written = []
    for track_id, path in files:
        lines = ["\t".join(RAVEN_EXPORT_COLUMNS)]
        for i, (_, start_ms, end_ms, snr_db, c) in enumerate(by_track.get(track_id, []), 1):
            cells = (
                i,
                "Spectrogram 1",
                1,
                start_ms / 1000.0,
                end_ms / 1000.0,
                0.0,
                float(high_freq_hz),
                path,
                start_ms / 1000.0,
                round(float(snr_db), 2),
                c,
            )
            lines.append("\t".join(_cell(v) for v in cells))
        target = out_dir / names[path]
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
            os.replace(tmp, target)
        except OSError as e:
            raise AudiodbError(f"Cannot write {target}: {e.strerror or e}. Choose another folder.") from None
        finally:
            if tmp.exists():
                tmp.unlink()
        written.append({"path": path, "table": str(target), "selections": len(lines) - 1})
    return written
