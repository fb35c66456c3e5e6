"""watch: index folders, then keep the index current."""

from __future__ import annotations

import signal
import sys

import click

from . import main
from .common import db_option, library, pin_blas_to_one_thread, warn
from .output import dumps
from .scan import Progress


@main.command()
@click.argument("folders", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option(
    "--settle",
    type=click.FloatRange(min=0),
    default=3.0,
    show_default=True,
    help="Seconds a file must stay unchanged before it is read.",
)
@click.option(
    "--reconcile",
    type=click.FloatRange(min=1),
    default=300.0,
    show_default=True,
    help="Seconds between full reconcile scans, which catch what events miss.",
)
@click.option(
    "--poll",
    type=click.FloatRange(min=0.1),
    default=None,
    help="Poll every SECONDS instead of using inotify (for NFS, SMB, SSHFS).",
)
@click.option(
    "-w",
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes for analysis. Default: all cores.",
)
@click.option("-q", "--quiet", is_flag=True, help="Print no line per change.")
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(["text", "jsonl"]),
    default="text",
    show_default=True,
    help="text: one line per change on stderr; jsonl: one JSON object per change on stdout.",
)
@db_option
def watch(folders, settle, reconcile, poll, workers, quiet, fmt, db):
    """Index FOLDERS, then follow changes until Ctrl-C or SIGTERM.

    Starts with the same catch-up as `audiodb scan`, then indexes files once
    they have settled. Other audiodb commands keep working meanwhile.

    \b
    audiodb watch ~/Music
    audiodb watch ~/Music --format jsonl > changes.jsonl
    audiodb watch /mnt/nas/recordings --poll 30 --reconcile 900
    """
    pin_blas_to_one_thread()
    caught_up = False

    def on_change(change):
        if fmt == "jsonl":
            click.echo(dumps(change.as_dict()))
            sys.stdout.flush()
        elif not quiet and (caught_up or change.kind == "failed"):
            if change.kind == "moved":
                warn(f"moved {change.old_path} -> {change.path}")
            elif change.kind == "failed":
                warn(f"failed {change.path}: {change.reason}")
            else:
                warn(f"{change.kind} {change.path}")

    lib = library(db)
    progress = Progress()
    watcher = lib.watcher(
        folders, workers=workers, settle=settle, reconcile=reconcile, poll=poll, on_change=on_change, on_notice=warn
    )

    def on_catch_up(report):
        nonlocal caught_up
        caught_up = True
        progress.close()
        if not quiet:
            warn(
                "Caught up: "
                + ", ".join(f"{v} {k}" for k, v in report.counts().items())
                + f" ({report.seconds:.1f} s). Watching {', '.join(watcher.roots)} (Ctrl-C to stop)."
            )

    def on_term(signum, frame):
        watcher.stop()

    signal.signal(signal.SIGTERM, on_term)
    try:
        watcher.run(catch_up_progress=progress, on_catch_up=on_catch_up)
    except KeyboardInterrupt:
        watcher.stop()
        watcher.close()
    finally:
        progress.close()
    if not quiet:
        warn("Stopped.")
