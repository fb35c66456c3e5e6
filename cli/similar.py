"""similar, duplicates, playlist, eval: what sounds like what."""

from __future__ import annotations

import os
import sys

import click

from audiodb.paths import m3u_entry
from audiodb.query.duplicates import DUPLICATE_THRESHOLD
from audiodb.query.evaluate import ALL_LABELS, EVAL_COLUMNS, FILTERED_COLUMNS
from audiodb.query.moment_eval import MOMENT_EVAL_COLUMNS
from audiodb.query.moments import MOMENT_COLUMNS, RAVEN_COLUMNS, raven_rows
from audiodb.query.neighbours import SAME_KINDS, SIMILAR_COLUMNS
from audiodb.query.playlist import PLAYLIST_COLUMNS
from audiodb.query.space import DEFAULT_METRIC, METRICS

from . import main
from .common import db_option, library, note, warn
from .output import dumps, format_option, render, track_rows

_metric_option = click.option(
    "-m",
    "--metric",
    type=click.Choice(METRICS),
    default=None,
    show_default=DEFAULT_METRIC,
    help="Distance: notebook (z-score euclidean, the notebook's space), cosine (on z-scores), "
    "blocks (z-scores, each feature group weighted equally), extended (as blocks, adding "
    "spectral contrast, chroma, onset and tempo).",
)
_where_option = click.option(
    "--where",
    metavar="SQL",
    default=None,
    help='Only tracks meeting this SQL condition on the tracks view, e.g. "duration_sec > 60".',
)


def write_m3u(rows: list[dict], out) -> None:
    """An extended M3U playlist of ``rows`` (dicts with path and duration_sec, paths as stored):
    absolute paths, UTF-8, one line each; a name with a newline or other control character, or
    bytes that are not UTF-8, is written as a ``file://`` URI with percent-escapes."""
    out.write("#EXTM3U\n")
    for r in rows:
        seconds = r.get("duration_sec")
        title = " ".join(os.path.splitext(os.path.basename(r["path"]))[0].split())  # one line
        out.write(f"#EXTINF:{-1 if seconds is None else round(seconds)},{title}\n{m3u_entry(r['path'])}\n")


def _show(rows: list[dict], columns, fmt: str) -> None:
    if fmt == "m3u":
        write_m3u(rows, sys.stdout)
    elif fmt == "table":
        render(*track_rows(rows, list(columns)), fmt)
    else:
        render(list(columns), rows, fmt)


@main.command()
@click.argument("track")
@click.option("-n", "n", type=click.IntRange(min=1), default=10, show_default=True, help="How many tracks.")
@_metric_option
@_where_option
@click.option("--exclude-folder", is_flag=True, help="Leave out tracks from the query's own folder.")
@click.option(
    "--exclude-same",
    type=click.Choice(SAME_KINDS),
    default=None,
    help="Leave out tracks with the query's artist, album or folder (tracks without the tag are kept).",
)
@click.option(
    "--segments",
    is_flag=True,
    help="Find moments, not files: TRACK is an audio clip or PATH@START-END (seconds) of an indexed file.",
)
@click.option("--all-segments", is_flag=True, help="With --segments: search inactive (quiet) windows too.")
@click.option(
    "--segmentation",
    metavar="WINDOW/HOP",
    default=None,
    help="With --segments: which registered segmentation (default: the one whose window is closest "
    "to the query's length).",
)
@db_option
@format_option(extra=("m3u", "raven"))
def similar(track, n, metric, where, exclude_folder, exclude_same, segments, all_segments, segmentation, db, fmt):
    """Tracks that sound like TRACK, nearest first (the track itself left out).

    TRACK is a path (indexed, or any audio file: it is analysed and not
    added) or a track id. With --segments, moments of files that sound like
    the clip TRACK or the moment PATH@START-END, merged across adjacent windows,
    the query's own moment left out; --format raven writes a Raven Pro selection table.

    \b
    audiodb similar ~/Music/song.flac
    audiodb similar 42 -n 5 --format json
    audiodb similar clip.wav --where "duration_sec > 60" --exclude-folder
    audiodb similar song.mp3 --exclude-same artist
    audiodb similar song.mp3 -n 30 --format m3u > like-song.m3u
    audiodb similar call.wav --segments -n 20
    audiodb similar ~/rec/dawn.flac@12.5-13.5 --segments --format raven > hits.txt
    """
    lib = library(db)
    if segments:
        if metric or exclude_folder or exclude_same or fmt == "m3u":
            raise click.UsageError(
                "--segments takes neither --metric, --exclude-folder, --exclude-same nor --format m3u."
            )
        rows = lib.similar_moments(track, n=n, segmentation=segmentation, all_segments=all_segments, where=where)
        if fmt == "raven":
            write_raven(rows, sys.stdout)
        else:
            render(list(MOMENT_COLUMNS), rows, fmt)
        return
    if fmt == "raven" or all_segments or segmentation:
        raise click.UsageError("--format raven, --all-segments and --segmentation need --segments.")
    rows = lib.similar(track, n=n, metric=metric, where=where, exclude_folder=exclude_folder, exclude_same=exclude_same)
    _show(rows, SIMILAR_COLUMNS, fmt)


def write_raven(rows: list[dict], out) -> None:
    """A Raven Pro selection table of moments: tab-separated, a header line, one selection a line."""
    table = raven_rows(rows)
    out.write("\t".join(RAVEN_COLUMNS) + "\n")
    for r in table:
        out.write("\t".join(_raven_cell(r[c]) for c in RAVEN_COLUMNS) + "\n")


def _raven_cell(value) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value).replace("\t", " ").replace("\n", " ")


@main.command()
@click.option(
    "--threshold",
    type=click.FloatRange(min=0, min_open=True),
    default=DUPLICATE_THRESHOLD,
    show_default=True,
    help="Largest RMS z-score difference for one recording (clips of 0.5-10 s: 10 times it, then their audio "
    "decides). Transcodes measured up to 0.040; "
    "different recordings from 0.071.",
)
@_where_option
@db_option
@format_option
def duplicates(threshold, where, db, fmt):
    """Groups of files that hold the same recording (a wav and its mp3, a renamed copy).

    Most certain groups first; in each group the best copy (lossless, then
    largest) comes first and distance is to it.

    \b
    audiodb duplicates
    audiodb duplicates --threshold 0.2 --format json   # [[{"path": ...}, ...], ...]
    """
    groups = library(db).duplicates(threshold=threshold, where=where)
    columns = ["group", "distance", "duration_sec", "codec", "track_id", "path", "artist", "title", "album"]
    if fmt == "json":
        click.echo(dumps(groups, indent=2))
    elif fmt == "jsonl":
        for group in groups:
            click.echo(dumps(group))
    elif fmt == "table":
        render(*track_rows([m for g in groups for m in g], columns), fmt)
    else:
        render(columns, [m for g in groups for m in g], fmt)
    if fmt == "table":
        copies = sum(len(g) - 1 for g in groups)
        warn(f"{len(groups)} groups, {copies} redundant files.")


@main.command()
@click.argument("seeds", nargs=-1, required=True)
@click.option(
    "-n", "n", type=click.IntRange(min=1), default=20, show_default=True, help="Tracks in the playlist, seeds included."
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write the playlist to this M3U file (absolute paths, UTF-8).",
)
@click.option("--smooth", is_flag=True, help="Order so each next track is the nearest to the last.")
@click.option("--no-seeds", is_flag=True, help="Leave the seeds out of the playlist.")
@click.option(
    "--max-per-artist",
    type=click.IntRange(min=1),
    default=None,
    help="At most N tracks by one artist (seeds counted; tracks without an artist tag are not limited).",
)
@click.option(
    "--max-per-album",
    type=click.IntRange(min=1),
    default=None,
    help="At most N tracks from one album (seeds counted; tracks without an album tag are not limited).",
)
@_metric_option
@_where_option
@db_option
@format_option(extra=("m3u",))
def playlist(seeds, n, output, smooth, no_seeds, max_per_artist, max_per_album, metric, where, db, fmt):
    """A playlist of tracks near the SEEDS (paths or track ids), without repeats or duplicates.

    \b
    audiodb playlist ~/Music/a.flac ~/Music/b.mp3 -n 20 -o mix.m3u
    audiodb playlist 42 --smooth --format m3u > mix.m3u
    audiodb playlist 42 --max-per-artist 2
    """
    rows = library(db).playlist(
        list(seeds),
        n=n,
        metric=metric,
        smooth=smooth,
        include_seeds=not no_seeds,
        where=where,
        max_per_artist=max_per_artist,
        max_per_album=max_per_album,
    )
    if output:
        with open(output, "w", encoding="utf-8") as f:
            write_m3u(rows, f)
        warn(f"Wrote {len(rows)} tracks to {output}")
    _show(rows, PLAYLIST_COLUMNS, fmt)


def ceiling_note(ceilings: dict[str, float], k: int) -> str:
    """Which labels have too few tracks for precision@k to reach 1, and the most it can be."""
    by_ceiling: dict[float, list[str]] = {}
    for label, ceiling in ceilings.items():
        if label != ALL_LABELS:
            by_ceiling.setdefault(ceiling, []).append(label)
    parts = []
    for ceiling, labels in sorted(by_ceiling.items()):
        named = ", ".join(labels[:8]) + (f" and {len(labels) - 8} more" if len(labels) > 8 else "")
        parts.append(f"at most {ceiling:g} for {named}")
    n = sum(len(v) for v in by_ceiling.values())
    small = min(round(c * k) for c in by_ceiling)  # the fewest tracks of a label, less one
    return (
        f"{n} label{'s' if n != 1 else ''} with fewer than k + 1 = {k + 1} tracks cannot reach "
        f"precision_at_k 1 (a label with m tracks finds at most m - 1 of its own among k = {k}): "
        + "; ".join(parts)
        + f"; {ALL_LABELS} at most {ceilings[ALL_LABELS]:g}. With -k {small} every label can reach 1."
    )


@main.command(name="eval")
@click.option(
    "--label-from",
    "label_from",
    default="folder",
    show_default=True,
    metavar="folder|tag:NAME|CSV",
    help="Labels: each track's folder; a tag (tag:genre, tag:artist, any tag column or a key of "
    "the tags JSON); or a CSV of path,label.",
)
@click.option(
    "--filter-same",
    type=click.Choice(SAME_KINDS),
    default=None,
    help="Also rank without the neighbours that share the query's artist, album or folder (Musly's "
    "artist filter) and show those figures beside the plain ones.",
)
@click.option(
    "-m",
    "--metric",
    type=click.Choice((*METRICS, "all")),
    default=None,
    show_default=DEFAULT_METRIC,
    help="Metric to evaluate, or all of them.",
)
@click.option("-k", "k", type=click.IntRange(min=1), default=5, show_default=True, help="Neighbours per query.")
@click.option("--summary", is_flag=True, help="Only the overall figures, one row per metric.")
@click.option(
    "--segments",
    is_flag=True,
    help="Evaluate moment search (similar --segments) on annotations given with --labels.",
)
@click.option(
    "--labels",
    "label_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    metavar="FILE",
    help="With --segments: a Raven selection table (Begin Time (s), End Time (s), a label column such as "
    "Annotation, Species or Label, Begin Path or the file's name), or a CSV of path,start,end,label "
    "(seconds). Repeat for several.",
)
@click.option(
    "--label-column",
    default=None,
    help="With --segments: the Raven column that holds the label (default: Annotation, Species, Label, ...).",
)
@click.option(
    "--segmentation",
    metavar="WINDOW/HOP",
    default=None,
    help="With --segments: which registered segmentation (default: the window closest to the labelled moments).",
)
@db_option
@format_option
def eval_(label_from, metric, k, summary, filter_same, segments, label_files, label_column, segmentation, db, fmt):
    """Check that "similar" means something: leave-one-out k-NN on labelled tracks.

    Each labelled track asks for its k nearest other labelled tracks;
    precision_at_k is the share with its label, accuracy_1nn the share of
    tracks whose nearest neighbour has it. Per label and over all, "(all)".

    \b
    audiodb eval --label-from folder --metric all --summary
    audiodb eval --label-from labels.csv -k 10 --format json
    audiodb eval --label-from tag:genre --filter-same artist
    audiodb eval --segments --labels site1.Table.1.selections.txt --labels site2.Table.1.selections.txt
    """
    if segments or label_files or label_column or segmentation:
        _eval_moments(segments, label_files, label_column, segmentation, metric, filter_same, k, summary, db, fmt)
        return
    metrics = METRICS if metric == "all" else (metric,)
    report = library(db).evaluate(label_from, metrics=metrics, k=k, filter_same=filter_same)
    if report.unmatched:
        note(
            f"{len(report.unmatched)} paths in {label_from} are not in the library "
            f"(first: {report.unmatched[0]}); they were left out."
        )
    if report.singletons:
        note(
            f"{len(report.singletons)} labels have one track only and were not queried: "
            + ", ".join(report.singletons[:5])
            + ("..." if len(report.singletons) > 5 else "")
        )
    if report.ceilings:
        note(ceiling_note(report.ceilings, report.rows[0]["k"]))
    if report.unlabelled and label_from.startswith("tag:"):
        note(f"{report.unlabelled} tracks have no {label_from[4:]} tag and were left out.")
    if filter_same:
        note(filter_note(filter_same, report.unfiltered))
    rows = [r for r in report.rows if r["label"] == "(all)"] if summary else report.rows
    render(list(EVAL_COLUMNS) + (list(FILTERED_COLUMNS) if filter_same else []), rows, fmt)


def _eval_moments(segments, label_files, label_column, segmentation, metric, filter_same, k, summary, db, fmt):
    """eval --segments: each labelled moment a query; precision@k against moments with its label."""
    if not segments:
        raise click.UsageError("--labels, --label-column and --segmentation need --segments.")
    if not label_files:
        raise click.UsageError("eval --segments needs --labels FILE (a Raven selection table or a CSV).")
    if metric or filter_same:
        raise click.UsageError("eval --segments takes neither --metric nor --filter-same.")
    report = library(db).evaluate_moments(list(label_files), k=k, segmentation=segmentation, label_column=label_column)
    if report.unmatched:
        note(
            f"{len(report.unmatched)} labelled moments are in files not in the library (first: "
            f"{report.unmatched[0]}); they were left out."
        )
    if report.outside:
        note(
            f"{len(report.outside)} labelled moments have no {report.segmentation} window (first: {report.outside[0]})."
        )
    if report.singletons:
        note(
            f"{len(report.singletons)} labels have one moment only and were not queried: "
            + ", ".join(report.singletons[:5])
            + ("..." if len(report.singletons) > 5 else "")
        )
    if report.ceilings:
        note(
            f"Labels with fewer than k + 1 = {k + 1} moments cannot reach precision_at_k 1: "
            + ", ".join(f"{label} at most {c:g}" for label, c in sorted(report.ceilings.items()))
            + "."
        )
    note(
        f"Segmentation {report.segmentation}. precision_at_k: share of the k moments found that overlap another "
        "moment with the query's label; chance: what k windows drawn at random would score."
    )
    rows = [r for r in report.rows if r["label"] == ALL_LABELS] if summary else report.rows
    render(list(MOMENT_EVAL_COLUMNS), rows, fmt)


def filter_note(kind: str, unfiltered: int) -> str:
    """What the *_filtered columns of eval are."""
    text = (
        f"precision_at_k_filtered and accuracy_1nn_filtered rank each track without the tracks of its own {kind}"
        " (same-" + kind + " neighbours make label figures look better than the space is)."
    )
    if unfiltered:
        text += f" {unfiltered} queried tracks have no {kind}, so nothing was left out for them."
    return text
