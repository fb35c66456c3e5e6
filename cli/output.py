"""One output option for every command that prints rows, and one renderer."""

from __future__ import annotations

import csv
import datetime
import decimal
import io
import json
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
        json.dump([dict(zip(columns, map(_plain, r))) for r in rows], out, indent=2, ensure_ascii=False)
        out.write("\n")
    elif fmt == "jsonl":
        for r in rows:
            out.write(json.dumps(dict(zip(columns, map(_plain, r))), ensure_ascii=False) + "\n")
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
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    cap = max(12, width // max(1, len(columns)) - 2) if sum(widths) + 2 * len(widths) > width else None

    def fit(text: str, w: int) -> str:
        if cap and len(text) > cap:
            text = text[: cap - 1] + "…"
        return text.ljust(min(w, cap) if cap else w)

    buf = io.StringIO()
    buf.write("  ".join(fit(c, w) for c, w in zip(columns, widths)).rstrip() + "\n")
    buf.write("  ".join("-" * (min(w, cap) if cap else w) for w in widths) + "\n")
    for r in cells:
        buf.write("  ".join(fit(v, w) for v, w in zip(r, widths)).rstrip() + "\n")
    out.write(buf.getvalue())


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
