"""Options and helpers shared by the commands."""

from __future__ import annotations

import click

from audiodb.library import Library


def db_option(f):
    """``--db PATH`` on a command (the same option also works before the command)."""
    return click.option("--db", "db", type=click.Path(dir_okay=False), default=None,
                        help="Library file (overrides the one given before the command).")(f)


def warn(message: str) -> None:
    click.echo(message, err=True)


def library(db: str | None) -> Library:
    ctx = click.get_current_context()
    path = db or (ctx.find_root().obj or {}).get("db")
    return Library(path, on_wait=warn)
