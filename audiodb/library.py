"""``Library``: one audiodb file and what can be asked of it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from .analysis.params import NOTEBOOK, FeatureParams
from .index.plan import ScanReport
from .index.scan import scan_file
from .store import connection, migrate, readonly, tracks
from .store import segments as segment_store

__all__ = ["Library", "QueryResult"]


class QueryResult:
    """Rows of a query: ``columns`` (names) and ``rows`` (tuples)."""

    def __init__(self, columns: list[str], rows: list[tuple]):
        self.columns, self.rows = columns, rows

    def dicts(self) -> list[dict]:
        return [dict(zip(self.columns, r)) for r in self.rows]

    def __len__(self) -> int:
        return len(self.rows)


class Library:
    """An audiodb library file.

    >>> lib = Library("music.duckdb")          # or Library() for $AUDIODB_DB / the default
    >>> report = lib.scan(["~/Music"])
    >>> lib.sql("select count(*) from tracks").rows

    Every method opens the file, does its work and closes it again, so other
    processes (a watcher, a notebook) can use it in between.
    """

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        *,
        params: FeatureParams = NOTEBOOK,
        on_wait: Callable[[str], None] | None = None,
    ):
        self.file = connection.LibraryFile(connection.resolve_path(path), params, on_wait)
        self.path: Path = self.file.path
        self.params = params
        self.extended = self.file.extended  # the second feature set, computed with it
        self.on_wait = on_wait

    def __repr__(self) -> str:
        return f"Library({str(self.path)!r})"

    def connect(self, *, read_only: bool = True):
        """Context manager yielding a DuckDB connection (read-only by default)."""
        return self.file.connect(read_only=read_only)

    def scan(self, roots: Iterable[str | os.PathLike], **kwargs) -> ScanReport:
        """Index ``roots`` incrementally; see :func:`audiodb.scan` for options."""
        roots = [os.path.expanduser(os.fspath(r)) for r in roots]
        return scan_file(self.file, roots, **kwargs)

    def watcher(self, roots: Iterable[str | os.PathLike], **options):
        """A :class:`audiodb.index.watch.Watcher` of ``roots`` for this library: ``run()`` indexes
        them, then follows their changes until ``stop()``. Options: ``workers``, ``settle``,
        ``reconcile``, ``poll``, ``on_change``, ``on_notice``."""
        from .index.watch import Watcher

        return Watcher(self.file, roots, **options)

    def sql(self, query: str, params: list | None = None, *, write: bool = False) -> QueryResult:
        """Run SQL; read-only unless ``write``. Returns columns and rows."""
        return QueryResult(*readonly.run_sql(self.file, query, params, write=write))

    def status(self) -> dict:
        """Counts, location and size, the feature set, and failures."""
        with self.connect() as con:
            counts = tracks.status_counts(con, self.params, self.extended)
            segmentations = segment_store.segment_counts(con)
            version = migrate.schema_version(con)
            size = self.path.stat().st_size
        return {
            "db_path": str(self.path),
            "db_size_bytes": size,
            "schema_version": version,
            "tracks": counts["tracks"],
            "embedded": counts["embedded"],
            "stale": counts["stale"],
            "extended_stale": counts["extended_stale"],
            "failures": counts["failures"],
            "total_duration_sec": counts["total_duration_sec"],
            "feature_set": self.params.id,
            "feature_dims": self.params.dims,
            "extended_feature_set": self.extended.id,
            "extended_dims": self.extended.dims,
            "folders": counts["folders"],
            "tagged": counts["tagged"],
            "recorded": counts["recorded"],
            "tag_errors": counts["tag_errors"],
            "last_indexed_at": counts["last_indexed_at"],
            "segmentations": segmentations,
        }

    # --- segments (see audiodb.analysis.segments, audiodb.query.moments) ---

    def register_segmentation(self, segments) -> dict:
        """Register a segmentation (``'1.0/0.5'``, ``'calls'``, ``'song'``, ``'soundscape'`` or a
        :class:`~audiodb.analysis.segments.SegmentParams`) without scanning; the next scan computes
        it. ``scan(..., segments=...)`` does both. Returns its row of :meth:`segmentations`."""
        from .index.scan import as_segmentation, register_segmentation

        seg = as_segmentation(segments, self.file)
        register_segmentation(self.file, seg)
        return next(s for s in self.segmentations() if s["id"] == seg.id)

    def segmentations(self) -> list[dict]:
        """Each registered segmentation: id, label, window_ms, hop_ms, segments, active_segments,
        files_to_do."""
        if not self.path.exists():
            return []
        with self.connect() as con:
            return segment_store.segment_counts(con)

    def similar_moments(self, query: str, **kwargs) -> list[dict]:
        """Moments nearest to ``query`` (an audio clip, or ``PATH@START-END`` of an indexed file);
        see :func:`audiodb.query.moments.similar_moments`."""
        from .query.moments import similar_moments

        return similar_moments(self.file, query, **kwargs)

    def cluster_segments(self, method: str = "kmeans", **options):
        """Cluster the active segments of a segmentation (call types) and keep the run; returns a
        :class:`audiodb.query.cluster.ClusterRun` with ``segmentation`` and ``seg_index`` set.

        Options: ``segmentation`` (``'1.0/0.5'``, a preset or an id; default the first registered)
        and those of :meth:`cluster` but ``features``. See
        :func:`audiodb.query.segment_clusters.cluster_segments`.
        """
        from .query.segment_clusters import cluster_segments

        return cluster_segments(self.file, method=method, **options)

    def segment_summary(
        self, *, method: str | None = None, segmentation: str | None = None, run: int | None = None
    ) -> QueryResult:
        """Per cluster of the latest run over segments of each method (or of run ``run``): moments,
        segments, total seconds, files and the three moments nearest its centre as ``PATH@START-END``."""
        from .query.segment_clusters import segment_summary

        with self.connect() as con:
            return QueryResult(*segment_summary(con, method=method, segmentation=segmentation, run_id=run))

    def evaluate_moments(self, labels, **kwargs):
        """precision@k of ``similar_moments`` against annotations (Raven selection tables or CSVs of
        ``path,start,end,label``); see :func:`audiodb.query.moment_eval.evaluate_moments`."""
        from .query.moment_eval import evaluate_moments

        labels = [labels] if isinstance(labels, (str, os.PathLike)) else list(labels)
        return evaluate_moments(self.file, [os.fspath(p) for p in labels], **kwargs)

    def failures(self) -> QueryResult:
        """Files that could not be analysed: path, reason, when."""
        return self.sql(tracks.FAILURES_QUERY)

    def similar(self, track: str, **kwargs) -> list[dict]:
        """Tracks nearest to ``track`` (path or id); see :func:`audiodb.query.neighbours.similar`."""
        from .query.neighbours import similar

        return similar(self.file, track, **kwargs)

    def duplicates(self, **kwargs) -> list[list[dict]]:
        """Groups of files holding one recording; see :func:`audiodb.query.duplicates.duplicates`."""
        from .query.duplicates import duplicates

        return duplicates(self.file, **kwargs)

    def playlist(self, seeds: list[str], **kwargs) -> list[dict]:
        """Tracks near ``seeds``, no repeats; see :func:`audiodb.query.playlist.playlist`."""
        from .query.playlist import playlist

        return playlist(self.file, seeds, **kwargs)

    def evaluate(self, label_from: str = "folder", **kwargs):
        """Leave-one-out k-NN figures per label; see :func:`audiodb.query.evaluate.evaluate`."""
        from .query.evaluate import evaluate

        return evaluate(self.file, label_from, **kwargs)

    # --- clustering (see audiodb.query.cluster) ---

    def cluster(self, method: str = "kmeans", **options):
        """Cluster the library and keep the run; returns a :class:`audiodb.query.cluster.ClusterRun`.

        ``method`` is ``'kmeans'`` (options ``k``: int or ``'auto'``) or ``'hdbscan'``
        (``min_cluster_size``, ``min_samples``); both take ``space`` (``'scaled'``,
        ``'pca'``, ``'umap'``), ``dims`` and ``features`` (``'notebook'``, the default, or
        ``'extended'``). See :func:`audiodb.query.cluster.cluster_library`.
        """
        from .query.cluster import cluster_library

        return cluster_library(self.file, method=method, **options)

    def plot(
        self,
        output: str | os.PathLike,
        *,
        projection: str = "pca",
        color: str | None = None,
        features: str = "notebook",
        segments: bool = False,
        segmentation: str | None = None,
    ):
        """Write the map of the library as one HTML page; returns a :class:`audiodb.maps.write.PlotResult`.

        ``projection`` is ``'pca'`` or ``'umap'``; ``color`` ``'kmeans'`` (the default), ``'hdbscan'`` or
        a column of ``tracks``; ``features`` ``'notebook'`` or ``'extended'``. See
        :func:`audiodb.maps.write.plot_library`. With ``segments``, a point per active segment of
        ``segmentation`` (default: the first registered), coloured by its latest segment clustering
        (by default; ``color`` ``'kmeans'`` or ``'hdbscan'``: that method's) or by file
        (``'file'``); see :func:`audiodb.maps.segments.plot_segments`.
        """
        if segments:
            from .maps.segments import plot_segments

            return plot_segments(
                self.file, projection=projection, color=color, output=output, segmentation=segmentation
            )
        from .maps.write import plot_library

        return plot_library(self.file, projection=projection, color=color or "kmeans", output=output, features=features)

    def summary(self, *, method: str | None = None, run: int | None = None) -> QueryResult:
        """Per-cluster summaries of the latest run of each method (or of run ``run``)."""
        from .store.runs import summary

        with self.connect() as con:
            return QueryResult(*summary(con, method=method, run_id=run))

    def export(self, path: str | os.PathLike, *, features: str = "notebook") -> int:
        """Write the notebook's CSV (or ``.parquet``); returns the number of tracks.

        ``features="extended"`` adds the second feature set's 42 columns (the
        ``extended_features`` view's) after the notebook's 180.
        """
        from .store.export import export

        with self.connect() as con:
            return export(con, os.path.expanduser(os.fspath(path)), features=features)

    def export_segments(self, path: str | os.PathLike, *, raven: bool = False, segmentation: str | None = None) -> dict:
        """Write the segments of ``segmentation`` (default: the first registered).

        ``path`` ending in ``.csv`` or ``.parquet``: every window (path, start_sec, end_sec,
        rms_db, snr_db, active_fraction, active, the named features, ``cluster_<method>`` of the
        latest segment runs). With ``raven``, ``path`` is a folder that gets one Raven Pro
        selection table per recording (its active windows, with their cluster). Returns
        ``{'segmentation', 'segments'}`` or ``{'segmentation', 'tables'}`` (per recording: path,
        table, selections). See :mod:`audiodb.store.segment_export`.
        """
        from .store import segment_export

        target = os.path.expanduser(os.fspath(path))
        with self.connect() as con:
            seg = segment_export.pick_segmentation(con, self.params, segmentation)
            if raven:
                tables = segment_export.export_segments_raven(con, target, seg, high_freq_hz=self.params.sr / 2)
                return {"segmentation": seg.label, "tables": tables}
            return {"segmentation": seg.label, "segments": segment_export.export_segments(con, target, seg)}

    def tracks(self, *, arrow: bool | None = None):
        """The ``tracks`` view as a pandas DataFrame (an Arrow table if ``arrow`` or no pandas)."""
        return self._frame("SELECT * FROM tracks ORDER BY track_id", arrow)

    def features(self, *, arrow: bool | None = None):
        """The ``features`` view (track_id, path, the notebook's 180 columns); see :meth:`tracks`."""
        return self._frame("SELECT * FROM features ORDER BY track_id", arrow)

    def clusters(self, *, arrow: bool | None = None):
        """The ``clusters`` view (latest run of each method, one row per track); see :meth:`tracks`."""
        return self._frame("SELECT * FROM clusters ORDER BY method, track_id", arrow)

    def _frame(self, query: str, arrow: bool | None):
        from .store.vectors import query_arrow as _arrow

        with self.connect() as con:
            table = _arrow(con, query)
        if arrow:
            return table
        try:
            import pandas  # noqa: F401
        except ImportError:
            if arrow is False:
                from .errors import MissingDependency

                raise MissingDependency("pandas is not installed: pip install pandas, or pass arrow=True.") from None
            return table
        return table.to_pandas()
