"""demo: write a small sample library to try audiodb on."""

from __future__ import annotations

import click

from . import main


@main.command()
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("-n", "--per-kind", default=4, show_default=True, help="Sounds of each kind.")
@click.option("--seed", default=0, show_default=True, help="Random seed.")
def demo(folder, per_kind, seed):
    """Write a small library of synthesized sounds (tones, chords, noise, chirps, drums,
    bird-like and speech-like sounds) in several formats, to try audiodb without audio.

    \b
    audiodb demo ~/audiodb-demo && audiodb scan ~/audiodb-demo
    """
    from audiodb.demo import write_demo_library

    paths = write_demo_library(folder, n_per_kind=per_kind, seed=seed)
    click.echo(f"Wrote {len(paths)} files to {folder}. Next: audiodb scan {folder}")
