"""scan: index folders incrementally."""

from __future__ import annotations

import sys

import click

from . import main
from .common import db_option, library, note, pin_blas_to_one_thread, warn
from .output import format_option, print_json, render


class Progress:
    """A progress bar on a terminal's stderr; nothing otherwise."""

    def __init__(self):
        self.bar = None
        self.enabled = sys.stderr.isatty()

    def __call__(self, done: int, total: int, path: str) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            self.bar = click.progressbar(length=total, label="Analysing", file=sys.stderr, show_pos=True, show_eta=True)
            self.bar.__enter__()
        self.bar.update(done - self.bar.pos)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@main.command()
@click.argument("folders", nargs=-1, required=True, type=click.Path())
@click.option(
    "-w",
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes for analysis. Default: all cores.",
)
@click.option("--dry-run", is_flag=True, help="Print what would change; write nothing.")
@click.option("--retry-failed", is_flag=True, help="Retry files that failed before, even if unchanged.")
@click.option(
    "--scheduler",
    metavar="tcp://HOST:PORT",
    default=None,
    help="Analyse on this Dask cluster (workers must see the same paths). Needs audiodb[dask].",
)
@click.option("-v", "--verbose", is_flag=True, help="Name each file skipped (unsupported type, not audio) and why.")
@click.option(
    "--segments",
    metavar="WINDOW/HOP|calls|song|soundscape",
    default=None,
    help="Also cut every file into windows (seconds, e.g. 1.0/0.5) and index each; registered, so every "
    "later scan and watch keeps it current. Presets: calls 1.0/0.5, song 3.0/1.5, soundscape 60/60.",
)
@db_option
@format_option
def scan(folders, workers, dry_run, retry_failed, scheduler, verbose, segments, db, fmt):
    """Index audio under FOLDERS; a second scan does only what changed.

    New files are analysed, changed files re-analysed, moved files re-linked
    (matched by content hash), deleted files removed. Files that cannot be
    decoded are recorded (see `audiodb failures`) and skipped.

    \b
    audiodb scan ~/Music
    audiodb scan ~/Music ~/Recordings --workers 2
    audiodb scan ~/Music --dry-run
    audiodb scan ~/Music --format json    # {"added": 3, "updated": 0, ...}
    audiodb scan ~/Music --verbose        # also names the files skipped
    audiodb scan /archive --scheduler tcp://10.0.0.5:8786
    audiodb scan ~/Recordings --segments calls   # windows of 1 s every 0.5 s
    """
    pin_blas_to_one_thread()
    lib = library(db)
    progress = Progress()
    saved = []  # changes written so far, to say what Ctrl-C kept
    try:
        report = lib.scan(
            folders,
            workers=workers,
            dry_run=dry_run,
            retry_failed=retry_failed,
            progress=progress,
            scheduler=scheduler,
            on_change=saved.append,
            segments=segments,
        )
    except KeyboardInterrupt:
        progress.close()
        files = sum(c.kind in ("added", "updated", "failed") for c in saved)
        other = len(saved) - files
        extra = f" and {other} moves or removals" if other else ""
        warn(
            f"Interrupted: {files} analysed files{extra} were saved to {lib.path}. Nothing is lost: "
            "the next `audiodb scan` of the same folders continues with the rest."
        )
        sys.exit(130)
    finally:
        progress.close()
    for problem in report.problems:
        note(problem)
    if verbose:
        for path, why in report.skipped_files:
            warn(f"skipped: {path}: {why}")
    counts = report.counts()
    if fmt == "json":
        obj = dict(counts, skipped=report.skipped)
        if dry_run:
            obj["plan"] = [c.as_dict() for c in report.changes]
        print_json(obj)
        return
    if dry_run or fmt != "table":
        rows = [(c.kind, c.old_path or "", c.path, c.reason or "") for c in report.changes]
        if rows or fmt != "table":
            render(["change", "from", "path", "reason"], rows, fmt)
        if fmt != "table":
            return
    failed = [c for c in report.changes if c.kind == "failed"]
    for c in failed[:20]:
        warn(f"failed: {c.path}: {c.reason}")
    if len(failed) > 20:
        warn(f"... and {len(failed) - 20} more: see `audiodb failures`")
    verb = "Would change" if dry_run else "Indexed"
    retagged = f" ({report.retagged} only retagged: tags re-read, not re-analysed)" if report.retagged else ""
    summary = ", ".join(f"{v} {k}" + (retagged if k == "updated" else "") for k, v in counts.items())
    if report.skipped:
        summary += f", {report.skipped} skipped" + ("" if verbose else " (--verbose names them)")
    if report.segments_only:
        summary += f", {report.segments_only} given their segments (vectors kept)"
    extra = f"; {report.skipped_failures} known failures not retried" if report.skipped_failures else ""
    click.echo(f"{verb}: {summary}{extra} ({report.seconds:.1f} s) -> {lib.path}")
    if failed:
        click.echo("See why with: audiodb failures")
