"""status, failures, sql: looking into the library."""

from __future__ import annotations

import sys

import click

from . import main
from .common import db_option, library
from .output import format_option, print_json, render


@main.command()
@db_option
@format_option
def status(db, fmt):
    """What is in the library: counts, location and size, feature set, failures.

    \b
    audiodb status
    audiodb status --format json
    """
    info = library(db).status()
    if fmt == "json":
        print_json(info)
    elif fmt == "table":
        for key, value in info.items():
            if key != "segmentations":
                click.echo(f"{key:20} {'' if value is None else value}")
        for s in info.get("segmentations", []):
            click.echo(
                f"{'segmentation':20} {s['label']} ({s['id']}): {s['segments']} segments, "
                f"{s['active_segments']} active, {s['files_to_do']} files to do"
            )
    else:
        info = {k: v for k, v in info.items() if k != "segmentations"}  # one row: json and jsonl have them
        render(list(info), [info], fmt)


@main.command()
@db_option
@format_option
def failures(db, fmt):
    """Files that could not be analysed, with the reason and when.

    They are not retried until they change; `audiodb scan --retry-failed` forces it.

    \b
    audiodb failures
    audiodb failures --format csv > failures.csv
    """
    result = library(db).failures()
    render(result.columns, result.rows, fmt)


@main.command()
@click.argument("query")
@click.option("--write", is_flag=True, help="Open the library for writing (default: read-only).")
@db_option
@format_option
def sql(query, write, db, fmt):
    """Run SQL against the library and print the rows.

    Views: tracks, features (the notebook's 180 columns); table embeddings
    holds the raw FLOAT[180] vectors. QUERY - reads the query from standard input.
    Read-only unless --write: without it, only statements that read run
    (SELECT, PRAGMA, CALL, EXPLAIN); COPY, EXPORT, INSTALL, SET and the like
    are refused, and CSV or JSON output is full precision, so redirect it.

    \b
    audiodb sql "select file_name, duration_sec from tracks order by duration_sec desc limit 5"
    audiodb sql "select avg(spec_cent_mean) from features" --format json
    audiodb sql "select * from features" --format csv > features.csv
    audiodb sql - < query.sql
    """
    if query == "-":
        query = sys.stdin.read()
    if not query.strip():
        raise click.UsageError(
            'The query is empty. Give SQL, e.g. audiodb sql "select count(*) from tracks", '
            "or - to read it from standard input."
        )
    result = library(db).sql(query, write=write)
    render(result.columns, result.rows, fmt)
