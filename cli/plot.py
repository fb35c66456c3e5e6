"""plot: the notebook's PCA and UMAP maps, as pages to open in a browser."""

from __future__ import annotations

import sys

import click

from . import main
from .common import db_option, library, note, warn
from .output import human_size


@main.command()
@click.option(
    "-p",
    "--projection",
    type=click.Choice(["pca", "umap"]),
    default="pca",
    show_default=True,
    help="PCA (with the explained variance of each axis) or UMAP (the notebook's settings).",
)
@click.option(
    "-c",
    "--color",
    "color",
    default=None,
    metavar="kmeans|hdbscan|COLUMN",
    help="Colour by the latest k-means or HDBSCAN run, or by a column of tracks (duration_sec, folder, codec, ...). "
    "[default: kmeans; with --segments the latest run over the segments, else by file (--color file)]",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="The page to write.  [default: audiodb-PROJECTION-COLOR.html]",
)
@click.option(
    "--features",
    type=click.Choice(["notebook", "extended"]),
    default="notebook",
    show_default=True,
    help="Map the notebook's 180 features, or those plus the second feature set (contrast, chroma, "
    "onset, tempo), each group weighted alike: the space audiodb similar ranks in.",
)
@click.option(
    "--segments",
    is_flag=True,
    help="A point per active segment (moments of recordings, at most 20,000: a uniform sample above); "
    "a click plays that moment.",
)
@click.option(
    "--segmentation",
    default=None,
    metavar="LABEL",
    help="With --segments: which registered segmentation (1.0/0.5, calls, ...).  [default: the first registered]",
)
@click.option("--open", "open_page", is_flag=True, help="Open the page in your browser.")
@db_option
def plot(projection, color, output, features, segments, segmentation, open_page, db):
    """Write a map of the library as one HTML page that works offline.

    Each point is a track; hover for its name, duration and clusters; click to
    play it and list its nearest neighbours; search by name.

    \b
    audiodb cluster --method both && audiodb plot -o map.html
    audiodb plot --projection umap --color hdbscan -o umap.html --open
    audiodb plot --color duration_sec -o durations.html
    audiodb plot --features extended -o map.html     # neighbours as audiodb similar ranks them
    audiodb plot --segments -o moments.html          # a point per active segment (call)
    """
    if segments and features != "notebook":
        raise click.UsageError("--features is for maps of files; a map of --segments uses the segment features.")
    if segmentation and not segments:
        raise click.UsageError("--segmentation needs --segments.")
    output = output or f"audiodb-{'segments-' if segments else ''}{projection}-{color or 'kmeans'}.html"
    if projection == "umap" and sys.stderr.isatty():  # what it is doing, while it works (a terminal only)
        warn("Projecting with UMAP (compiled on its first run on this machine)…")
    if segments:
        result = library(db).plot(output, projection=projection, color=color, segments=True, segmentation=segmentation)
    else:
        result = library(db).plot(output, projection=projection, color=color or "kmeans", features=features)
    for line in result.notes:
        note(line)
    click.echo(
        f"Wrote a map of {result.n_points} {'segments' if segments else 'tracks'} to {result.path} "
        f"({human_size(result.size_bytes)}, "
        f"{result.seconds:.1f} s). Open it in a browser: {result.path.as_uri()}"
    )
    if open_page:
        click.launch(str(result.path))
