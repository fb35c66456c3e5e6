"""Options and helpers shared by the commands."""

from __future__ import annotations

import os

import click

from audiodb.library import Library


def db_option(f):
    """``--db PATH`` on a command (the same option also works before the command)."""
    return click.option(
        "--db",
        "db",
        type=click.Path(dir_okay=False),
        default=None,
        help="Library file (overrides the one given before the command).",
    )(f)


#: What every note to the user starts with, whoever raises it (a warning, advice, a problem
#: that did not stop the work).
NOTE_PREFIX = "Note: "


def warn(message: str) -> None:
    """A status line on stderr (waiting, written, interrupted), as it is."""
    click.echo(message, err=True)


def note(message: str) -> None:
    """Something the user should know that did not stop the work, on stderr, with the one prefix."""
    click.echo(NOTE_PREFIX + message, err=True)


def library(db: str | None) -> Library:
    ctx = click.get_current_context()
    path = db or (ctx.find_root().obj or {}).get("db")
    return Library(path, on_wait=warn)


def pin_blas_to_one_thread() -> None:
    """For scan and watch, before numpy loads: this process plans and writes, and analyses (a few
    short files) with one BLAS thread as the workers do, so BLAS starts no thread pool here (0.03-0.05 s
    of a short scan). A count set in the environment is kept; the workers get one thread whatever it is."""
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ.setdefault(name, "1")
