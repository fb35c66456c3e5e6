"""cluster, summary, export: the notebook's clustering, kept in the library."""

from __future__ import annotations

import os
import sys

import click

from . import main
from .common import db_option, library, note, warn
from .output import format_option, render

RUN_COLUMNS = ["run_id", "method", "space", "parameters", "n_tracks", "n_clusters", "n_noise", "quality", "seconds"]


class _K(click.ParamType):
    name = "K|auto"

    def convert(self, value, param, ctx):
        if isinstance(value, int) or str(value).lower() == "auto":
            return value if isinstance(value, int) else "auto"
        try:
            k = int(value)
        except ValueError:
            self.fail(f"{value!r} is not a number or 'auto'", param, ctx)
        if k < 1:
            self.fail(f"k must be at least 1 (got {k})", param, ctx)
        return k


@main.command()
@click.option(
    "-m",
    "--method",
    type=click.Choice(["kmeans", "hdbscan", "both"]),
    default="both",
    show_default=True,
    help="k-means (every track in one of k clusters), HDBSCAN (dense groups, the rest noise), or both.",
)
@click.option(
    "-k",
    "--k",
    "k",
    type=_K(),
    default="auto",
    show_default=True,
    help="k-means clusters; 'auto' tries 2..10 (up to 2·√tracks, at most 30, on a larger library) "
    "and keeps the best silhouette.",
)
@click.option("--min-cluster-size", type=int, default=4, show_default=True, help="HDBSCAN: smallest group.")
@click.option(
    "--min-samples",
    type=int,
    default=2,
    show_default=True,
    help="HDBSCAN: neighbours a track needs to be in a dense region.",
)
@click.option(
    "--space",
    type=click.Choice(["scaled", "pca", "umap"]),
    default=None,
    help="Cluster the z-scored features as they are (scaled), or reduced first with PCA or UMAP. "
    "Default: scaled for k-means, umap for HDBSCAN.",
)
@click.option(
    "--dims",
    type=click.IntRange(min=1),
    default=None,
    help="Components for --space pca (default 10) or umap (default 5).",
)
@click.option(
    "--features",
    type=click.Choice(["notebook", "extended"]),
    default="notebook",
    show_default=True,
    help="The notebook's 180 features, or those plus the second feature set (contrast, chroma, "
    "onset, tempo), each group weighted alike, as `audiodb similar` ranks.",
)
@click.option(
    "--segments",
    is_flag=True,
    help="Cluster moments, not files: the active windows of a segmentation (call types), in the space "
    "similar --segments searches.",
)
@click.option(
    "--segmentation",
    metavar="WINDOW/HOP",
    default=None,
    help="With --segments: which registered segmentation (default: the first registered).",
)
@db_option
@format_option
def cluster(method, k, min_cluster_size, min_samples, space, dims, features, segments, segmentation, db, fmt):
    """Cluster the tracks as the notebook does, and keep the run.

    Features are z-scored; k-means uses random_state 42 and n_init 10; HDBSCAN
    min_cluster_size 4, min_samples 2, eom, noise labelled -1. Each run is kept
    (tables cluster_runs, cluster_assignments); the view `clusters` shows the
    latest run of each method. Cluster ids follow the previous run's by overlap.

    \b
    audiodb cluster                          # k-means (k by silhouette) and HDBSCAN
    audiodb cluster --method kmeans --k 4
    audiodb cluster --method hdbscan --min-cluster-size 3 --space pca --dims 5
    audiodb cluster --method kmeans --k 12 --features extended
    audiodb sql "select cluster, count(*) from clusters where method = 'hdbscan' group by 1"
    audiodb cluster --segments --method kmeans      # call types: view segment_clusters
    """
    lib = library(db)
    methods = ["kmeans", "hdbscan"] if method == "both" else [method]
    on_stage = warn if sys.stderr.isatty() else None  # what it is doing, while it works (a terminal only)
    if segmentation and not segments:
        raise click.UsageError("--segmentation needs --segments.")
    if segments and features != "notebook":
        raise click.UsageError("--features is for files; --segments clusters the segment features.")
    options = dict(
        k=k, min_cluster_size=min_cluster_size, min_samples=min_samples, space=space, dims=dims, on_stage=on_stage
    )
    runs = [
        lib.cluster_segments(m, segmentation=segmentation, **options)
        if segments
        else lib.cluster(m, features=features, **options)
        for m in methods
    ]
    for run in runs:
        for line in run.advice:
            note(line)
    if fmt != "table":
        render(RUN_COLUMNS, [run.as_row() for run in runs], fmt)
        return
    for run in runs:
        if run.k_scores:
            click.echo("k-means silhouette by k (higher is better):")
            render(["k", "silhouette"], [(kk, round(v, 4)) for kk, v in run.k_scores.items()], "table")
        click.echo(_describe(run))


def _describe(run) -> str:
    p = run.parameters
    what = (
        f"k={p['k']}" + (" (auto)" if p.get("k_requested") == "auto" else "")
        if run.method == "kmeans"
        else f"min_cluster_size={p['min_cluster_size']}, min_samples={p['min_samples']}"
    )
    sizes = ", ".join(f"{c}: {n}" for c, n in run.sizes().items() if c != -1)
    noise = f", {run.n_noise} noise" if run.method == "hdbscan" else ""
    quality = "" if run.quality is None else f", silhouette {run.quality:.3f}"
    if run.segmentation is not None:
        return (
            f"{run.method} run {run.run_id} over segments {p.get('segmentation')} ({what}; {run.space} space, "
            f"{p['dims']} dims): {run.n_tracks} active segments in {run.n_clusters} clusters{noise}{quality} "
            f"({run.seconds:.1f} s)\n  sizes: {sizes or 'none'}\n"
            "  audiodb summary --segments lists each cluster's moments."
        )
    return (
        f"{run.method} run {run.run_id} ({what}; {p.get('features', 'notebook')} features, "
        f"{run.space} space, {p['dims']} dims): "
        f"{run.n_tracks} tracks in {run.n_clusters} clusters{noise}{quality} ({run.seconds:.1f} s)\n"
        f"  sizes: {sizes or 'none'}"
    )


@main.command()
@click.option(
    "-m",
    "--method",
    type=click.Choice(["kmeans", "hdbscan"]),
    default=None,
    help="Only this method's latest run (default: the latest run of each).",
)
@click.option("--run", "run_id", type=int, default=None, help="One run by id (see table cluster_runs).")
@click.option(
    "--segments",
    is_flag=True,
    help="Clusters of moments (cluster --segments): moments, total seconds, files, and the three moments "
    "nearest each cluster's centre as PATH@START-END.",
)
@click.option(
    "--segmentation",
    metavar="WINDOW/HOP",
    default=None,
    help="With --segments: only the runs over this segmentation.",
)
@db_option
@format_option
def summary(method, run_id, segments, segmentation, db, fmt):
    """Per-cluster summaries, as the notebook's: tracks, duration and sample rate.

    One row per cluster of the latest k-means and HDBSCAN runs: number of
    tracks, duration mean/min/max, sample rate mean/min/max, mean spectral
    centroid and RMS, and the most central track. HDBSCAN noise is the row
    with cluster -1.

    \b
    audiodb summary
    audiodb summary --method hdbscan --format csv > hdbscan.csv
    audiodb summary --run 3
    audiodb summary --segments        # call types; listen: audiodb similar PATH@START-END --segments
    """
    if segmentation and not segments:
        raise click.UsageError("--segmentation needs --segments.")
    if segments:
        result = library(db).segment_summary(method=method, segmentation=segmentation, run=run_id)
        if fmt == "table":
            _segment_table(result)
            return
    else:
        result = library(db).summary(method=method, run=run_id)
    rows = result.rows if fmt != "table" else [tuple(map(_short, r)) for r in result.rows]
    render(result.columns, rows, fmt)


def _segment_table(result) -> None:
    """Counts as a table, then each cluster's central moments whole, one a line (to copy into similar)."""
    central = [i for i, c in enumerate(result.columns) if c.startswith("central_")]
    keep = [i for i in range(len(result.columns)) if i not in central]
    render([result.columns[i] for i in keep], [tuple(_short(r[i]) for i in keep) for r in result.rows], "table")
    click.echo("\nMoments nearest each cluster's centre (listen, or: audiodb similar 'PATH@START-END' --segments):")
    for r in result.rows:
        row = dict(zip(result.columns, r))
        for i in central:
            if r[i]:
                click.echo(f"  {row['method']} {row['cluster']}: {r[i]}")


def _short(value):
    """Fewer digits for reading (a table); csv and json keep them all."""
    if isinstance(value, float):
        return round(value, 4 if abs(value) < 1 else 1)
    return value


@main.command()
@click.argument("file", type=click.Path(writable=True))
@click.option(
    "--features",
    type=click.Choice(["notebook", "extended"]),
    default="notebook",
    show_default=True,
    help="The notebook's columns, or those plus the second feature set's 42 (contrast, chroma, "
    "onset, tempo: the extended_features view's columns) after the 180 features.",
)
@click.option(
    "--segments",
    is_flag=True,
    help="Every segment instead: path, start_sec, end_sec, activity, the named features, a cluster "
    "column per method of the latest segment runs.",
)
@click.option(
    "--raven",
    is_flag=True,
    help="With --segments: FILE is a folder; one Raven Pro selection table per recording (its active "
    "segments, with their cluster).",
)
@click.option(
    "--segmentation",
    default=None,
    metavar="LABEL",
    help="With --segments: which registered segmentation (1.0/0.5, calls, ...).  [default: the first registered]",
)
@db_option
def export(file, features, segments, raven, segmentation, db):
    """Write the notebook's CSV: file_name, file_path, duration_sec, sample_rate,
    the 180 features, cluster_kmeans and cluster_hdbscan (latest runs).

    A FILE ending in .parquet gets the same columns as Parquet.

    \b
    audiodb export acoustic_embeddings_with_clusters.csv
    audiodb export library.parquet
    audiodb export library.csv --features extended
    audiodb export segments.parquet --segments
    audiodb export raven-tables/ --segments --raven
    """
    if segments:
        export_segments(file, raven, segmentation, features, db)
        return
    if raven or segmentation:
        raise click.UsageError("--raven and --segmentation need --segments.")
    if os.path.isdir(file):
        raise click.UsageError(f"{file} is a folder: give the .csv or .parquet file to write.")
    n = library(db).export(file, features=features)
    click.echo(f"Wrote {n} tracks to {file}")


def export_segments(file, raven, segmentation, features, db):
    """``export --segments [--raven]``: a table of segments, or a folder of Raven tables."""
    if features != "notebook":
        raise click.UsageError("--features is for files; --segments writes the segment features.")
    result = library(db).export_segments(file, raven=raven, segmentation=segmentation)
    if raven:
        tables = result["tables"]
        n = sum(t["selections"] for t in tables)
        click.echo(
            f"Wrote {len(tables)} Raven selection tables ({n} active {result['segmentation']} segments) to {file}"
        )
    else:
        click.echo(f"Wrote {result['segments']} segments of {result['segmentation']} to {file}")
