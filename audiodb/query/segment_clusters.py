"""Call types: clustering the active segments of a segmentation, and what each cluster holds.

``audiodb cluster --segments`` clusters the active windows of one registered segmentation as
:mod:`audiodb.query.cluster` clusters files (the same :func:`~audiodb.query.cluster.cluster_vectors`:
k-means with ``--k N|auto``, HDBSCAN in a reduced space), in the space ``similar --segments``
searches: each of the segment features z-scored over the active segments, feature groups
weighted alike (:func:`audiodb.query.space.group_scale`). Inactive (quiet) windows are not
clustered. A run is stored with its segmentation (``cluster_runs.segmentation``), one row per
segment in ``segment_cluster_assignments``; cluster ids follow the previous run of the same
method over the same segmentation by overlap of segments (``track_id``, ``seg_index``), as
for files.

``audiodb summary --segments`` gives, per cluster, its moments (windows of one file in the
cluster that overlap or touch, merged), their total length, the files, and the three moments
nearest the cluster's centre (by their best window) as ``PATH@START-END`` in seconds, which
``similar --segments`` takes as a query.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..analysis.segments import choose_segmentation
from ..errors import NoClusteringRun, NothingIndexed, UsageError
from ..store import segments as segment_store
from ..store.connection import LibraryFile
from ..store.runs import latest_segment_runs, save_run, segment_assignments, segment_keys
from .cluster import ClusterRun, cluster_vectors, reduce
from .cluster_ids import match_ids
from .kchoice import edge_note, k_auto_range, silhouette
from .space import group_scale, standardize

__all__ = ["SEGMENT_SUMMARY_COLUMNS", "cluster_segments", "moment_span", "segment_summary"]

#: The columns of :func:`segment_summary` rows.
SEGMENT_SUMMARY_COLUMNS = (
    "method",
    "run_id",
    "segmentation",
    "cluster",
    "moments",
    "segments",
    "total_sec",
    "files",
    "central_1",
    "central_2",
    "central_3",
)
CENTRAL = 3  # moments listed per cluster
SEED = 42
#: Above this many active segments, ``--k auto`` chooses k on a seeded sample of this many, each
#: candidate fitted with :data:`K_STARTS` starts; the chosen k is then fitted on every segment as
#: for files (10 starts). The files' way (every candidate with 10 starts on up to 20,000 rows)
#: took 99 s for 5,000 segments (k 2..30) on the test machine; call libraries hold far more.
K_SAMPLE = 3000
K_STARTS = 3


def _in_segment_words(line: str) -> str:
    """cluster_vectors' lines speak of tracks; here they are active segments."""
    return line.replace(" tracks", " segments").replace(" track ", " segment ")


def cluster_segments(
    file: LibraryFile,
    *,
    method: str,
    segmentation: str | None = None,
    on_stage: Callable[[str], None] | None = None,
    **options,
) -> ClusterRun:
    """Cluster the active segments of one segmentation and store the run.

    Parameters
    ----------
    method : {'kmeans', 'hdbscan'}
    segmentation : str, optional
        A registered segmentation (``1.0/0.5``, a preset name or its id); default the only
        one, or the first registered.
    on_stage : callable, optional
        Called with a line as each stage starts.
    options
        Those of :func:`audiodb.query.cluster.cluster_vectors` (``k``, ``min_cluster_size``,
        ``min_samples``, ``space``, ``dims``).

    Returns
    -------
    ClusterRun
        With ``segmentation``, ``track_ids`` and ``seg_index`` per clustered segment, stored
        (``run_id`` set), ids matched to the previous run of ``method`` over the segmentation.

    Raises
    ------
    NothingIndexed
        No segmentation registered, or none of its segments active.
    UsageError
        Options that cannot work with this many segments.
    """
    with file.connect() as con:
        seg = choose_segmentation(segment_store.registered(con, file.params), segmentation, None)
        stored = segment_store.load_segments(con, seg.id, active_only=True)
        total = con.execute("SELECT count(*) FROM segments WHERE segmentation = ?", [seg.id]).fetchall()[0][0]
    n = len(stored.track_ids)
    if n == 0:
        if total:
            raise NothingIndexed(
                f"None of the {total} segments of {seg.label} is active (all quiet), so there is nothing to "
                "cluster: check audiodb status, or register a segmentation with longer windows."
            )
        raise NothingIndexed(f"No segments of {seg.label} are stored yet: run audiodb scan DIR.")
    k = options.get("k", "auto")
    if method == "kmeans" and k != "auto" and isinstance(k, int) and k > n:
        raise UsageError(f"k={k} is more than the {n} active segments of {seg.label}; choose --k {n} or less.")
    if method == "kmeans" and k == "auto" and n < 3:
        raise UsageError(f"--k auto needs at least 3 active segments ({seg.label} has {n}); give --k 1 or 2.")
    if method == "hdbscan" and options.get("min_cluster_size", 4) > n:
        raise UsageError(
            f"--min-cluster-size {options.get('min_cluster_size', 4)} is more than the {n} active segments "
            f"of {seg.label}; choose {max(2, n // 2)} or less."
        )
    say = None if on_stage is None else (lambda line: on_stage(_in_segment_words(line)))
    if say is not None:
        say(f"{method}: {n} active segments of {seg.label} (of {total})…")
    weights = group_scale(seg.feature_names())
    chosen = None
    if method == "kmeans" and k == "auto" and n > K_SAMPLE:
        chosen = _choose_k_on_sample(stored.vectors, weights, options.get("space"), options.get("dims"), say)
        options = {**options, "k": chosen[0]}
    run = cluster_vectors(stored.vectors, method=method, weights=weights, on_stage=say, **options)
    if chosen is not None:
        k_best, scores, ks = chosen
        run.k_scores = scores
        run.parameters.update(
            k_requested="auto",
            k_scores={str(key): round(v, 4) for key, v in scores.items()},
            k_sample=K_SAMPLE,
            k_sample_starts=K_STARTS,
        )
        note = edge_note(k_best, ks, n)
        if note:
            run.advice.append(note)
    run.advice = [_in_segment_words(line) for line in run.advice]
    run.parameters.update(features="segments", segmentation=seg.label, active_only=True)
    run.track_ids, run.seg_index = stored.track_ids, stored.seg_index
    run.segmentation, run.feature_set = seg.id, seg.id
    keys = segment_keys(stored.track_ids, stored.seg_index)
    with file.connect(read_only=False) as con:
        return save_run(con, run, renumber=lambda previous: match_ids(run.labels, previous, track_ids=keys))


def _choose_k_on_sample(X, weights, space, dims, say) -> tuple[int, dict[int, float], range]:
    """``--k auto`` over many segments: the best silhouette among :func:`k_auto_range` on a sample."""
    from sklearn.cluster import KMeans

    n = len(X)
    ks = k_auto_range(n)
    pick = np.sort(np.random.default_rng(SEED).choice(n, K_SAMPLE, replace=False))
    Y, _ = reduce(standardize(X)[pick] * weights, space or "scaled", dims=dims)
    if say is not None:
        say(f"kmeans: choosing k among {ks.start}..{ks.stop - 1} by silhouette on {K_SAMPLE} of {n} segments…")
    scores = {}
    for k in ks:
        labels = KMeans(n_clusters=k, random_state=SEED, n_init=K_STARTS).fit_predict(Y)
        score = silhouette(Y, labels)
        scores[k] = -1.0 if score is None else score
    best = max(scores, key=lambda k: (scores[k], -k))
    return best, scores, ks


def moment_span(path: str, start_ms: int, end_ms: int) -> str:
    """``PATH@START-END`` in seconds (at most 3 decimals, no trailing zeros), as similar --segments reads it."""
    return f"{path}@{_sec(start_ms)}-{_sec(end_ms)}"


def _sec(ms: int) -> str:
    return f"{int(ms) / 1000:.3f}".rstrip("0").rstrip(".")


def _moments(a: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Windows (sorted by track, cluster, start) merged into moments: overlapping or touching
    windows of one file in one cluster. Per moment: track, cluster, start, end, path and the
    best (smallest) centre distance of its windows."""
    n = len(a["track_id"])
    if n == 0:
        return {k: np.empty(0) for k in ("track_id", "cluster", "start_ms", "end_ms", "best", "path")}
    track, cluster = a["track_id"].astype(np.int64), a["cluster"].astype(np.int64)
    start, end = a["start_ms"].astype(np.int64), a["end_ms"].astype(np.int64)
    new_group = np.ones(n, dtype=bool)
    new_group[1:] = (track[1:] != track[:-1]) | (cluster[1:] != cluster[:-1])
    group = np.cumsum(new_group) - 1
    # The latest end so far within each group: groups are offset so one running maximum serves all.
    reach = np.maximum.accumulate((group << 32) + end) - (group << 32)
    new = new_group.copy()
    new[1:] |= start[1:] > reach[:-1]
    first = np.flatnonzero(new)
    last = np.append(first[1:], n) - 1
    dist = np.where(np.isnan(a["centre_distance"]), np.inf, a["centre_distance"])
    return {
        "track_id": track[first],
        "cluster": cluster[first],
        "start_ms": start[first],
        "end_ms": reach[last],
        "best": np.minimum.reduceat(dist, first),
        "path": a["path"][first],
    }


def segment_summary(
    con, *, method: str | None = None, segmentation: str | None = None, run_id: int | None = None
) -> tuple[list[str], list[tuple]]:
    """Per cluster of the latest run over segments of each method (or of one run).

    Rows of :data:`SEGMENT_SUMMARY_COLUMNS`: ``moments`` (stretches of one file in the
    cluster, windows merged), ``segments`` (windows), ``total_sec`` (the moments' length,
    overlaps counted once), ``files``, and ``central_1..3``: the moments nearest the cluster's
    centre, as ``PATH@START-END``; none for HDBSCAN noise (``cluster = -1``, last).

    Raises
    ------
    NoClusteringRun
        No run over segments (of that method or segmentation) yet.
    """
    seg_id = None
    if segmentation is not None:
        seg_id = choose_segmentation(segment_store.registered(con), segmentation, None).id
    runs = latest_segment_runs(con, method=method, segmentation=seg_id, run_id=run_id)
    if not runs:
        what = " ".join(x for x in (method, segmentation) if x)
        raise NoClusteringRun(
            f"No clustering of segments{' (' + what + ')' if what else ''} yet: run audiodb cluster --segments"
            + (f" --method {method}" if method else "")
            + (f" --segmentation {segmentation}" if segmentation else "")
            + " first."
        )
    rows: list[tuple] = []
    for run in runs:
        a = segment_assignments(con, run["id"])
        m = _moments(a)
        for c in sorted(set(a["cluster"].tolist()), key=lambda c: (c == -1, c)):
            here = np.flatnonzero(m["cluster"] == c)
            central: list[str | None] = [None] * CENTRAL
            if c != -1:
                best = here[np.lexsort((m["start_ms"][here], m["track_id"][here], m["best"][here]))][:CENTRAL]
                for i, j in enumerate(best):
                    central[i] = moment_span(str(m["path"][j]), m["start_ms"][j], m["end_ms"][j])
            rows.append(
                (
                    run["method"],
                    run["id"],
                    run["label"],
                    int(c),
                    len(here),
                    int(np.sum(a["cluster"] == c)),
                    float(np.sum(m["end_ms"][here] - m["start_ms"][here]) / 1000.0),
                    len(np.unique(m["track_id"][here])),
                    *central,
                )
            )
    return list(SEGMENT_SUMMARY_COLUMNS), rows
