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
    default="kmeans",
    show_default=True,
    metavar="kmeans|hdbscan|COLUMN",
    help="Colour by the latest k-means or HDBSCAN run, or by a column of tracks (duration_sec, folder, codec, ...).",
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
@click.option("--open", "open_page", is_flag=True, help="Open the page in your browser.")
@db_option
def plot(projection, color, output, features, open_page, db):
    """Write a map of the library as one HTML page that works offline.

    Each point is a track; hover for its name, duration and clusters; click to
    play it and list its nearest neighbours; search by name.

    \b
    audiodb cluster --method both && audiodb plot -o map.html
    audiodb plot --projection umap --color hdbscan -o umap.html --open
    audiodb plot --color duration_sec -o durations.html
    audiodb plot --features extended -o map.html     # neighbours as audiodb similar ranks them
    """
    output = output or f"audiodb-{projection}-{color}.html"
    if projection == "umap" and sys.stderr.isatty():  # what it is doing, while it works (a terminal only)
        warn("Projecting with UMAP (the first run on this machine compiles it, ~20 s)…")
    result = library(db).plot(output, projection=projection, color=color, features=features)
    for line in result.notes:
        note(line)
    click.echo(
        f"Wrote a map of {result.n_points} tracks to {result.path} ({human_size(result.size_bytes)}, "
        f"{result.seconds:.1f} s). Open it in a browser: {result.path.as_uri()}"
    )
    if open_page:
        click.launch(str(result.path))
