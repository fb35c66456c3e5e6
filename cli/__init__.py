"""audiodb's command line: thin click commands over the library.

Each command parses its options, calls one library function and prints. Errors
raised by the library (``audiodb.errors``) are turned into a message and exit
status 1 here, once; usage errors exit with 2.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import importlib.machinery
import os
import sys
import threading
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


#: Each command's module, imported when the command is run or listed: ``audiodb scan`` loads
#: neither the query side nor the other commands.
COMMAND_MODULES = {
    "cluster": "cluster",
    "summary": "cluster",
    "export": "cluster",
    "demo": "demo",
    "status": "info",
    "failures": "info",
    "sql": "info",
    "plot": "plot",
    "scan": "scan",
    "similar": "similar",
    "duplicates": "similar",
    "playlist": "similar",
    "eval": "similar",
    "watch": "watch",
}


class _Group(click.Group):
    command_class = _Command

    def invoke(self, ctx):
        return _translated(super().invoke, ctx)  # what the group itself raises

    def list_commands(self, ctx):
        return sorted(set(COMMAND_MODULES) | set(self.commands))

    def get_command(self, ctx, cmd_name):
        if cmd_name not in self.commands and cmd_name in COMMAND_MODULES:
            importlib.import_module(f".{COMMAND_MODULES[cmd_name]}", __name__)  # registers it on ``main``
        return super().get_command(ctx, cmd_name)


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


def _workers_skip_the_console_script() -> None:
    """A scan's ``spawn`` workers run the main script again before they take work (as
    ``__mp_main__``); for the ``audiodb`` console script that imports click and every command,
    0.15-0.3 s of CPU per worker for nothing. multiprocessing leaves a main module alone whose
    spec names a package's ``__main__``: give the console script that spec."""
    script = sys.modules.get("__main__")
    if script is None or getattr(script, "__spec__", None) is not None:
        return  # python -m ...: nothing is run again already
    path = getattr(script, "__file__", None) or ""
    named = os.path.splitext(os.path.basename(path))[0] in ("audiodb", "audiodb-script")
    if named and "run" not in vars(script) and "main" not in vars(script):
        # ``from audiodb.cli import run`` is running: this is the console script, not a user's script.
        script.__spec__ = importlib.machinery.ModuleSpec("audiodb.cli.__main__", None)


_workers_skip_the_console_script()


def run() -> None:
    """The ``audiodb`` console script and ``python -m audiodb.cli``: :func:`main`, then a quick exit.

    Once the command is done, the exit handlers have run and the output is flushed, the process
    ends without tearing the interpreter down (freeing every object of numpy, DuckDB, ... one by
    one): 0.1 s of CPU of a short command. Every connection is closed by then; a thread still
    running (none is) gets the usual exit, which waits for it. ``main`` itself, called from
    Python (click's test runner, a script), exits as usual.
    """
    try:
        main(prog_name="audiodb")
        code = 0
    except SystemExit as e:
        code = e.code
    if not isinstance(code, int):
        if code is not None:
            print(code, file=sys.stderr)
        code = 0 if code is None else 1
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    atexit._run_exitfuncs()  # what the interpreter would run at exit (multiprocessing's, concurrent.futures')
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe: nothing more to say
            stream.flush()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
