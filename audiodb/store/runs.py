"""Clustering runs in the library: saving one, finding the latest, and the per-cluster summary.

The computation is in :mod:`audiodb.query.cluster`; here is only SQL over
``cluster_runs``, ``cluster_assignments`` and ``segment_cluster_assignments``.

A run over segments (``audiodb cluster --segments``) has ``cluster_runs.segmentation`` set; a
run over files has it NULL. Every "latest run of a method" here is of runs over files unless it
says segments: :func:`latest_run_id`, :func:`latest_run` and :func:`summary` never see a run over
segments, :func:`latest_segment_runs` and :func:`segment_assignments` see only those.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np

from ..analysis.params import FEATURE_NAMES
from ..errors import NoClusteringRun, NothingIndexed, UsageError
from .clock import utc_now

__all__ = [
    "SUMMARY_COLUMNS",
    "latest_run",
    "latest_run_id",
    "latest_segment_runs",
    "save_run",
    "segment_assignments",
    "segment_keys",
    "summary",
]

_CENT = FEATURE_NAMES.index("spec_cent_mean") + 1  # DuckDB arrays are 1-based
_RMS = FEATURE_NAMES.index("rms_mean") + 1


def latest_run_id(con, method: str, segmentation: str | None = None) -> int | None:
    """The id of the latest run over files of ``method`` (over ``segmentation``'s segments if given), or None."""
    row = con.execute(
        "SELECT max(id) FROM cluster_runs WHERE method = ? AND segmentation IS NOT DISTINCT FROM ?",
        [method, segmentation],
    ).fetchone()
    return row[0] if row else None


def latest_run(con, method: str) -> dict | None:
    """The latest run over files of ``method`` (id, space, parameters, n_clusters, n_noise, created_at), or None."""
    rows = con.execute(
        "SELECT id, space, parameters, n_clusters, n_noise, created_at FROM cluster_runs "
        "WHERE id = (SELECT max(id) FROM cluster_runs WHERE method = ? AND segmentation IS NULL)",
        [method],
    ).fetchall()
    if not rows:
        return None
    row = rows[0]
    keys = ("id", "space", "parameters", "n_clusters", "n_noise", "created_at")
    run = dict(zip(keys, row))
    try:
        run["parameters"] = json.loads(run["parameters"] or "{}")
    except ValueError:
        run["parameters"] = {}
    return run


def save_run(con, run, renumber: Callable[[tuple[np.ndarray, np.ndarray]], np.ndarray] | None = None):
    """Insert ``run`` (a :class:`audiodb.query.cluster.ClusterRun`) in one transaction; returns it.

    ``renumber``, given ``(track_ids, labels)`` of the previous run of the same
    method (when there is one), returns the labels to store instead of
    ``run.labels``; it is called inside the transaction, so two runs saved at
    once cannot both renumber against the same predecessor.

    A run with ``run.segmentation`` set is a run over segments: ``run.track_ids`` and
    ``run.seg_index`` name its segments, its rows go to ``segment_cluster_assignments``, its
    predecessor is the latest run of the method over the same segmentation, and ``renumber``
    is given that run's :func:`segment_keys` instead of track ids.
    """
    import pyarrow as pa

    segmentation = getattr(run, "segmentation", None)
    con.execute("BEGIN TRANSACTION")
    try:
        previous = latest_run_id(con, run.method, segmentation)
        if previous is not None and renumber is not None:
            if segmentation is None:
                prev = con.execute(
                    "SELECT track_id, cluster FROM cluster_assignments WHERE run_id = ?", [previous]
                ).fetchnumpy()
                run.labels = renumber((prev["track_id"], prev["cluster"]))
            else:
                prev = con.execute(
                    "SELECT track_id, seg_index, cluster FROM segment_cluster_assignments WHERE run_id = ?",
                    [previous],
                ).fetchnumpy()
                run.labels = renumber((segment_keys(prev["track_id"], prev["seg_index"]), prev["cluster"]))
        run.created_at = utc_now()
        run.run_id = con.execute(
            "INSERT INTO cluster_runs (method, parameters, feature_set, space, created_at, n_tracks, "
            "n_clusters, n_noise, quality, seconds, segmentation) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "RETURNING id",
            [
                run.method,
                json.dumps(run.parameters, sort_keys=True),
                run.feature_set,
                run.space,
                run.created_at,
                run.n_tracks,
                run.n_clusters,
                run.n_noise,
                run.quality,
                run.seconds,
                segmentation,
            ],
        ).fetchone()[0]
        n = run.n_tracks
        none = pa.nulls(n, pa.float64())
        dist = run.centre_distance if run.centre_distance is not None else np.full(n, np.nan)
        columns = {"track_id": pa.array(run.track_ids, pa.int64())}
        if segmentation is not None:
            columns["seg_index"] = pa.array(run.seg_index, pa.int32())
        batch = pa.table(
            {
                **columns,
                "cluster": pa.array(run.labels, pa.int32()),
                "probability": none if run.probability is None else pa.array(run.probability, pa.float64()),
                "outlier_score": none if run.outlier_score is None else pa.array(run.outlier_score, pa.float64()),
                "centre_distance": pa.array(dist, pa.float64(), from_pandas=True),  # NaN -> NULL
            }
        )
        con.register("new_assignments", batch)
        try:
            if segmentation is None:
                con.execute(
                    "INSERT INTO cluster_assignments SELECT ?, track_id, cluster, probability, outlier_score, "
                    "centre_distance FROM new_assignments",
                    [run.run_id],
                )
            else:
                con.execute(
                    "INSERT INTO segment_cluster_assignments SELECT ?, track_id, seg_index, cluster, probability, "
                    "outlier_score, centre_distance FROM new_assignments",
                    [run.run_id],
                )
        finally:
            con.unregister("new_assignments")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return run


def _runs_for(con, method: str | None, run_id: int | None) -> list[tuple[int, str]]:
    if run_id is not None:
        row = con.execute("SELECT id, method, segmentation FROM cluster_runs WHERE id = ?", [run_id]).fetchone()
        if row is None:
            raise UsageError(f'No clustering run {run_id}: see them with audiodb sql "select * from cluster_runs".')
        if row[2] is not None:
            raise UsageError(
                f"Run {run_id} clustered segments, not files: see it with audiodb summary --segments --run {run_id}."
            )
        if method and row[1] != method:
            raise UsageError(f"Run {run_id} is a {row[1]} run, not {method}.")
        return [row[:2]]
    rows = con.execute(
        "SELECT max(id), method FROM cluster_runs WHERE segmentation IS NULL AND (? IS NULL OR method = ?) "
        "GROUP BY method ORDER BY method DESC",
        [method, method],
    ).fetchall()  # kmeans first, as the notebook
    if not rows:
        if con.execute("SELECT count(*) FROM track_files").fetchone()[0] == 0:
            raise NothingIndexed("No tracks indexed yet: run audiodb scan DIR first.")
        what = f"{method} " if method else ""
        raise NoClusteringRun(
            f"No {what}clustering yet: run audiodb cluster" + (f" --method {method}" if method else "") + " first."
        )
    return rows


SUMMARY_COLUMNS = [
    "method",
    "run_id",
    "cluster",
    "num_tracks",
    "duration_sec_mean",
    "duration_sec_min",
    "duration_sec_max",
    "sample_rate_mean",
    "sample_rate_min",
    "sample_rate_max",
    "spec_cent_mean",
    "rms_mean",
    "central_track",
]


def summary(con, *, method: str | None = None, run_id: int | None = None) -> tuple[list[str], list[tuple]]:
    """Per-cluster summaries of the latest run of each method (or of one run), in SQL.

    As the notebook's: number of tracks, duration mean/min/max, sample rate
    mean/min/max; plus the mean spectral centroid and RMS of the cluster's
    tracks and its most central track (nearest the cluster's centre in the space
    clustered in). HDBSCAN noise is its own row, ``cluster = -1``, last.

    Returns
    -------
    (columns, rows)
    """
    rows: list[tuple] = []
    for rid, _ in _runs_for(con, method, run_id):
        rows += con.execute(
            f"""
            SELECT r.method, r.id AS run_id, a.cluster,
                   count(*) AS num_tracks,
                   avg(t.duration_sec) AS duration_sec_mean,
                   min(t.duration_sec) AS duration_sec_min,
                   max(t.duration_sec) AS duration_sec_max,
                   avg(t.sample_rate) AS sample_rate_mean,
                   min(t.sample_rate) AS sample_rate_min,
                   max(t.sample_rate) AS sample_rate_max,
                   avg(e.vector[{_CENT}]) AS spec_cent_mean,
                   avg(e.vector[{_RMS}]) AS rms_mean,
                   CASE WHEN a.cluster = -1 THEN NULL
                        ELSE arg_min(t.file_name, a.centre_distance) END AS central_track
            FROM cluster_runs r
            JOIN cluster_assignments a ON a.run_id = r.id
            JOIN track_files t ON t.track_id = a.track_id
            LEFT JOIN embeddings e ON e.track_id = a.track_id AND e.feature_set = r.feature_set
            WHERE r.id = ?
            GROUP BY r.method, r.id, a.cluster
            ORDER BY a.cluster = -1, a.cluster""",
            [rid],
        ).fetchall()
    return SUMMARY_COLUMNS, rows


# --------------------------------------------------------------------------- runs over segments


def segment_keys(track_ids: np.ndarray, seg_index: np.ndarray) -> np.ndarray:
    """One int64 per segment, ``track_id * 2**32 + seg_index``: what stable ids match segments by."""
    return (np.asarray(track_ids, dtype=np.int64) << 32) + np.asarray(seg_index, dtype=np.int64)


SEGMENT_RUN_KEYS = (
    "id",
    "method",
    "segmentation",
    "label",
    "space",
    "parameters",
    "n_segments",
    "n_clusters",
    "n_noise",
    "quality",
    "created_at",
)


def latest_segment_runs(
    con, *, method: str | None = None, segmentation: str | None = None, run_id: int | None = None
) -> list[dict]:
    """The latest run over segments of each method and segmentation (those asked for), as dicts.

    Keys :data:`SEGMENT_RUN_KEYS`: ``segmentation`` is the id, ``label`` its WINDOW/HOP,
    ``parameters`` the run's parameters (a dict), ``n_segments`` the segments clustered.
    Ordered by segmentation label, then k-means first. ``run_id`` gives that run alone
    (a UsageError if it is not a run over segments). Nothing asked for exists: an empty list.
    """
    if run_id is not None:
        row = con.execute("SELECT segmentation FROM cluster_runs WHERE id = ?", [run_id]).fetchone()
        if row is None:
            raise UsageError(f'No clustering run {run_id}: see them with audiodb sql "select * from cluster_runs".')
        if row[0] is None:
            raise UsageError(f"Run {run_id} clustered files, not segments: see it with audiodb summary --run {run_id}.")
        where = "r.id = ?"
        args: list = [run_id]
    else:
        where = (
            "r.id IN (SELECT max(id) FROM cluster_runs WHERE segmentation IS NOT NULL GROUP BY method, segmentation)"
            " AND (? IS NULL OR r.method = ?) AND (? IS NULL OR r.segmentation = ?)"
        )
        args = [method, method, segmentation, segmentation]
    rows = con.execute(
        f"""SELECT r.id, r.method, r.segmentation, coalesce(g.label, r.segmentation), r.space, r.parameters,
                   r.n_tracks, r.n_clusters, r.n_noise, r.quality, r.created_at
            FROM cluster_runs r LEFT JOIN segmentations g ON g.id = r.segmentation
            WHERE {where}
            ORDER BY g.window_ms, g.hop_ms, r.segmentation, r.method DESC""",
        args,
    ).fetchall()
    out = []
    for row in rows:
        run = dict(zip(SEGMENT_RUN_KEYS, row))
        try:
            run["parameters"] = json.loads(run["parameters"] or "{}")
        except ValueError:
            run["parameters"] = {}
        out.append(run)
    return out


def segment_assignments(con, run_id: int) -> dict[str, np.ndarray]:
    """A run over segments, one entry per segment still stored, ordered by track, cluster and start.

    Keys ``track_id``, ``seg_index``, ``cluster``, ``start_ms``, ``end_ms``, ``centre_distance``
    (NaN for noise) and ``path`` (as stored).
    """
    got = con.execute(
        """SELECT a.track_id, a.seg_index, a.cluster, s.start_ms, s.end_ms,
                  coalesce(a.centre_distance, 'NaN'::DOUBLE) AS centre_distance, t.path
           FROM segment_cluster_assignments a
           JOIN cluster_runs r ON r.id = a.run_id
           JOIN segments s ON s.track_id = a.track_id AND s.segmentation = r.segmentation
                          AND s.seg_index = a.seg_index
           JOIN track_files t ON t.track_id = a.track_id
           WHERE a.run_id = ?
           ORDER BY a.track_id, a.cluster, s.start_ms""",
        [run_id],
    ).fetchnumpy()
    return {k: np.asarray(v) for k, v in got.items()}
