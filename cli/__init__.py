"""audiodb's command line: thin click commands over the library.

Each command parses its options, calls one library function and prints. Errors
raised by the library (``audiodb.errors``) are turned into a message and exit
status 1 here, once; usage errors exit with 2.
"""

from __future__ import annotations

import sys
import warnings

import click

from audiodb.errors import AudiodbError, AudiodbWarning, UsageError

from .common import note


def _show_warning(message, category, filename, lineno, file=None, line=None):
    if issubclass(category, AudiodbWarning):
        note(str(message))
    else:
        _default_showwarning(message, category, filename, lineno, file, line)


_default_showwarning = warnings.showwarning
warnings.showwarning = _show_warning


def _translated(invoke, ctx):
    """audiodb's errors as click's: a UsageError with ``ctx``'s usage line (exit 2), any other
    AudiodbError as a message (exit 1)."""
    try:
        return invoke(ctx)
    except UsageError as e:
        raise click.UsageError(str(e), ctx) from None
    except AudiodbError as e:
        raise click.ClickException(str(e)) from None


class _Command(click.Command):
    """Every command converts the library's errors itself, so a usage error prints the
    command's own usage line (``Usage: audiodb scan [OPTIONS] ...``), not the group's."""

    def invoke(self, ctx):
        return _translated(super().invoke, ctx)


class _Group(click.Group):
    command_class = _Command

    def invoke(self, ctx):
        return _translated(super().invoke, ctx)  # what the group itself raises


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="audiodb")
@click.option(
    "--db",
    "db",
    type=click.Path(dir_okay=False),
    envvar="AUDIODB_DB",
    help="Library file. Default: $AUDIODB_DB, else library.duckdb in your data folder.",
)
@click.pass_context
def main(ctx, db):
    """audiodb: an embedding database for audio, in one DuckDB file.

    \b
    audiodb demo ~/audiodb-demo         # write a small sample library
    audiodb scan ~/Music                # index (again: only what changed)
    audiodb status                      # what is in the library
    audiodb sql "select * from tracks limit 5"
    """
    ctx.ensure_object(dict)
    ctx.obj["db"] = db


# Each module registers its commands on ``main``; one line per command group.
from . import cluster, demo, info, plot, scan, similar, watch  # noqa: E402, F401

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
