"""One output option for every command that prints rows, and one renderer."""

from __future__ import annotations

import csv
import datetime
import decimal
import io
import json
import math
import os
import shutil
import sys

import click

FORMATS = ("table", "csv", "json", "jsonl")


def format_option(fn=None, *, extra: tuple[str, ...] = ()):
    """``--format table|csv|json|jsonl`` (``-f``); table is the default."""

    def deco(f):
        return click.option(
            "-f",
            "--format",
            "fmt",
            type=click.Choice(FORMATS + extra, case_sensitive=False),
            default="table",
            show_default=True,
            help="Output format: a readable table, or csv / json (one array) / jsonl for scripts.",
        )(f)

    return deco(fn) if fn else deco


def _plain(value):
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat(sep=" ") if isinstance(value, datetime.datetime) else value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.hex()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def json_value(value):
    """``value`` as JSON can hold it: a NaN or an infinity is null (JSON has no such numbers, and
    ``json.dumps`` would write a bare ``NaN`` that strict parsers reject)."""
    value = _plain(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: json_value(v) for k, v in value.items()}
    return value


def dumps(value, **kwargs) -> str:
    """``json.dumps`` of ``value`` as :func:`json_value` makes it (non-ASCII kept as it is)."""
    return json.dumps(json_value(value), ensure_ascii=False, allow_nan=False, **kwargs)


def _cell(value, *, short: bool = False) -> str:
    """A value as CSV text (full precision: ``float(text) == value``) or, ``short``, for the table."""
    if isinstance(value, decimal.Decimal) and not short:
        return str(value)  # exact, as DuckDB holds it
    value = _plain(value)
    if value is None:
        return ""
    if isinstance(value, float):
        # repr is the shortest text that reads back as the same double. A FLOAT (float32)
        # column arrives as the double it converts to exactly, so its repr round-trips too
        # (float32(float(text)) == the stored value as well).
        return f"{value:.6g}" if short else repr(value)
    if isinstance(value, list):
        return json.dumps(value)
    return str(value)


def render(columns: list[str], rows: list, fmt: str = "table", *, file=None) -> None:
    """Print ``rows`` (tuples or dicts) with ``columns`` in ``fmt``."""
    out = file or sys.stdout
    rows = [tuple(r[c] for c in columns) if isinstance(r, dict) else tuple(r) for r in rows]
    fmt = fmt.lower()
    if fmt == "json":
        out.write(dumps([dict(zip(columns, r)) for r in rows], indent=2) + "\n")
    elif fmt == "jsonl":
        for r in rows:
            out.write(dumps(dict(zip(columns, r))) + "\n")
    elif fmt == "csv":
        w = csv.writer(out, lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            w.writerow([_cell(v) for v in r])
    else:
        _table(columns, [[_cell(v, short=True) for v in r] for r in rows], out)


def _table(columns: list[str], cells: list[list[str]], out) -> None:
    if not columns:
        return
    width = shutil.get_terminal_size((160, 20)).columns
    widths = fit_widths(columns, cells, width)
    paths = [is_path_column(c) for c in columns]

    buf = io.StringIO()
    buf.write("  ".join(cut(c, w).ljust(w) for c, w in zip(columns, widths)).rstrip() + "\n")
    buf.write("  ".join("-" * w for w in widths) + "\n")
    for r in cells:
        buf.write("  ".join(cut(v, w, path=p).ljust(w) for v, w, p in zip(r, widths, paths)).rstrip() + "\n")
    out.write(buf.getvalue())


def fit_widths(columns: list[str], cells: list[list[str]], width: int) -> list[int]:
    """Column widths for a table ``width`` characters wide (two spaces between columns).

    Every column is as wide as its widest cell when they fit. Otherwise the widest
    columns are narrowed, all to one width (the widest that fits), never below the
    column's header (or 8 characters, when the header is shorter): headers and
    short values stay whole, and only long values (paths, names) are cut.
    """
    natural = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    room = width - 2 * (len(columns) - 1)
    if sum(natural) <= room:
        return natural
    floor = [min(n, max(len(c), 8)) for n, c in zip(natural, columns)]
    if sum(floor) >= room:
        return floor
    lo, hi = 1, max(natural)  # the largest cap with sum(max(floor, min(natural, cap))) <= room
    while lo < hi:
        cap = (lo + hi + 1) // 2
        if sum(max(f, min(n, cap)) for f, n in zip(floor, natural)) <= room:
            lo = cap
        else:
            hi = cap - 1
    return [max(f, min(n, lo)) for f, n in zip(floor, natural)]


def is_path_column(name: str) -> bool:
    """Whether a column holds paths (cut at the start in a table): path, file, folder, db_path..."""
    name = name.lower()
    return name in ("file", "folder", "file_name", "root") or name.endswith("path")


def cut(text: str, width: int, *, path: bool = False) -> str:
    """``text`` in at most ``width`` characters, marked with ``…`` where it was cut: a ``path``
    loses its start (``…/album/song.flac``: the file name carries the meaning), other text its end."""
    if len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    if path:
        return "…" + text[len(text) - width + 1 :]
    return text[: width - 1] + "…"


def track_rows(rows: list[dict], columns: list[str]) -> tuple[list[str], list[dict]]:
    """The table view of similar / playlist / duplicates rows: ``path`` becomes ``file``, the
    path relative to the folder that holds every listed file (their library's root, or
    nearer), and ``artist``, ``title``, ``album`` become one ``track`` column, ``artist – title``
    (shown only when some row has tags); columns empty in every row (clusters before any
    ``audiodb cluster`` run) are left out. JSON and CSV keep the rows as they are."""
    from audiodb.query.neighbours import WORD_KEYS, display_name

    paths = [r["path"] for r in rows if r.get("path")]
    root = ""
    if paths:
        try:
            root = os.path.commonpath([os.path.dirname(p) for p in paths])
        except ValueError:  # relative and absolute, or different drives
            root = ""
    names = [display_name(r) for r in rows]
    out_columns = []
    for c in columns:
        if c == "path":
            if any(names):
                out_columns.append("track")
            out_columns.append("file")
        elif c not in WORD_KEYS and (not rows or any(r.get(c) is not None for r in rows)):
            out_columns.append(c)
    out = []
    for r, name in zip(rows, names):
        row = {c: r.get(c) for c in columns if c not in WORD_KEYS}
        path = r.get("path")
        row["file"] = os.path.relpath(path, root) if path and root else path
        row["track"] = name or ""
        out.append(row)
    return out_columns, out


def print_json(obj, *, file=None) -> None:
    out = file or sys.stdout
    out.write(json.dumps(_plain(obj), ensure_ascii=False) + "\n")


def human_size(n: int) -> str:
    """``5.1 MB`` and the like."""
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover
