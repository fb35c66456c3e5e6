"""Evaluation on the user's own annotations: does ``similar --segments`` find moments with the same label?

Labels come from Raven selection tables (tab-separated: ``Begin Time (s)``, ``End Time (s)``, a
label column such as ``Annotation``, ``Species`` or ``Label``, and the file as ``Begin Path``,
``Begin File`` or the table's own name, ``REC.Table.1.selections.txt`` naming ``REC.*``) or from a
CSV of ``path,start,end,label`` (seconds; header optional; relative paths from the CSV's folder).

Each labelled moment of an indexed file is a query, searched exactly as
``similar PATH@START-END --segments`` searches (:class:`audiodb.query.moments.MomentSearch`: its
windows, the query's own moment left out). precision@k is the share of the k moments returned
that overlap another labelled moment with the query's label; per label (mean over its queries)
and over all queries, ``(all)``. ``chance`` is what k windows drawn at random from those searched
would score: the share of the searched windows (the query's own left out) that overlap a moment
with its label. Unlabelled calls count as misses, so precision is a lower bound where the
annotations are not complete.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import re

import numpy as np

from ..analysis.segments import choose_segmentation
from ..errors import NothingIndexed, UsageError
from ..paths import to_stored
from ..store import catalog
from ..store import segments as segment_store
from ..store.connection import LibraryFile
from .moments import MomentSearch, span_windows

__all__ = ["ALL_LABELS", "MOMENT_EVAL_COLUMNS", "LabelledMoment", "MomentEvalReport", "evaluate_moments", "read_labels"]

MOMENT_EVAL_COLUMNS = ("label", "moments", "k", "precision_at_k", "chance")
ALL_LABELS = "(all)"
#: Label columns looked for in a Raven table, in this order (case and spaces ignored).
RAVEN_LABEL_COLUMNS = ("Annotation", "Species", "Label", "Call Type", "Type", "Class", "Sound Type", "Code")
_RAVEN_SUFFIX = re.compile(r"\.Table\.\d+\.selections\.txt$|\.selections\.txt$|\.txt$", re.I)


@dataclasses.dataclass
class LabelledMoment:
    """One annotation: a span of a file with a label, and where it was read."""

    path: str  # as given (absolute), or a file name to look up
    start_ms: int
    end_ms: int
    label: str
    source: str  # FILE:LINE
    by_name: bool = False  # ``path`` is a file name (Begin File, or the table's name)
    track_id: int | None = None


@dataclasses.dataclass
class MomentEvalReport:
    """Rows of :data:`MOMENT_EVAL_COLUMNS`, and what was left out."""

    rows: list[dict]
    segmentation: str = ""
    labelled: int = 0  # annotations read
    unmatched: list[str] = dataclasses.field(default_factory=list)  # "SOURCE: PATH" not in the library
    outside: list[str] = dataclasses.field(default_factory=list)  # SOURCE of spans with no window
    singletons: list[str] = dataclasses.field(default_factory=list)  # labels with one moment: not queried
    #: {label: the most its precision@k can be} for labels with fewer than k + 1 moments (a query
    #: finds at most m - 1 others); labels that can reach 1 are not in it.
    ceilings: dict[str, float] = dataclasses.field(default_factory=dict)


def _norm(name: str) -> str:
    return re.sub(r"[\s_]+", "", name).lower()


def _seconds(text: str, where: str) -> int:
    try:
        value = float(str(text).strip())
    except ValueError:
        raise UsageError(f"{where}: {text!r} is not a time in seconds.") from None
    if not np.isfinite(value) or value < 0:
        raise UsageError(f"{where}: {text!r} is not a time in seconds (from the file's start).")
    return round(value * 1000)


def _read_raven(path: str, text: str, label_column: str | None) -> list[LabelledMoment]:
    rows = list(csv.reader(text.splitlines(), delimiter="\t"))
    header = [h.strip() for h in rows[0]]
    col = {_norm(h): i for i, h in enumerate(header)}

    def find(*names):
        return next((col[_norm(n)] for n in names if _norm(n) in col), None)

    begin, end = find("Begin Time (s)"), find("End Time (s)")
    if begin is None or end is None:
        raise UsageError(f"{path}: a Raven selection table needs 'Begin Time (s)' and 'End Time (s)' columns.")
    lab = find(label_column) if label_column else find(*RAVEN_LABEL_COLUMNS)
    if lab is None:
        wanted = repr(label_column) if label_column else "none of " + ", ".join(RAVEN_LABEL_COLUMNS)
        raise UsageError(
            f"{path}: no label column ({wanted}); its columns are {', '.join(header)}. "
            "Name the column with --label-column."
        )
    offset, begin_path, begin_file = find("File Offset (s)"), find("Begin Path"), find("Begin File")
    selection, view = find("Selection"), find("View")
    base = os.path.dirname(os.path.abspath(path))
    table_name = _RAVEN_SUFFIX.sub("", os.path.basename(path))
    out, seen = [], set()
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        where = f"{path}:{line}"

        def cell(i, row=row):
            return row[i].strip() if i is not None and i < len(row) else ""

        if selection is not None and cell(selection):  # one selection, several views: once
            key = cell(selection)
            if key in seen:
                continue
            seen.add(key)
        elif view is not None and cell(view) and not cell(view).lower().startswith("spectrogram"):
            continue
        a, b = _seconds(cell(begin), where), _seconds(cell(end), where)
        if offset is not None and cell(offset):  # Begin Time counts from a file list's start
            a, b = _seconds(cell(offset), where), _seconds(cell(offset), where) + (b - a)
        label = cell(lab)
        if not label:
            continue
        if begin_path is not None and cell(begin_path):
            target, by_name = os.path.join(base, os.path.expanduser(cell(begin_path))), False
        elif begin_file is not None and cell(begin_file):
            target, by_name = cell(begin_file), True
        else:
            target, by_name = table_name, True
        out.append(LabelledMoment(target, a, b, label, where, by_name))
    return out


def _read_csv(path: str, text: str) -> list[LabelledMoment]:
    base = os.path.dirname(os.path.abspath(path))
    out = []
    for line, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or not any(c.strip() for c in row):
            continue
        if len(row) < 4:
            raise UsageError(f"{path}:{line}: expected path,start,end,label (got {len(row)} columns).")
        p, a, b, label = (c.strip() for c in row[:4])
        if line == 1:
            try:
                float(a)
            except ValueError:
                continue  # a header
        where = f"{path}:{line}"
        target = os.path.join(base, os.path.expanduser(p))
        out.append(LabelledMoment(target, _seconds(a, where), _seconds(b, where), label, where))
    return out


def read_labels(paths: list[str], *, label_column: str | None = None) -> list[LabelledMoment]:
    """The annotations of each file (a Raven selection table, or a CSV ``path,start,end,label``).

    Raises
    ------
    UsageError
        A file that is missing, empty or neither format, a time that is not seconds, or an
        end not after its start.
    """
    out = []
    for path in paths:
        try:
            with open(path, encoding="utf-8-sig", errors="replace") as f:
                text = f.read()
        except OSError as e:
            raise UsageError(f"Cannot read labels {path}: {e.strerror or e}.") from None
        first = text.splitlines()[0] if text.strip() else ""
        if not first:
            raise UsageError(f"{path} is empty: give a Raven selection table or a CSV of path,start,end,label.")
        got = _read_raven(path, text, label_column) if "\t" in first else _read_csv(path, text)
        for m in got:
            if m.end_ms <= m.start_ms:
                raise UsageError(f"{m.source}: the end ({m.end_ms / 1000:g} s) is not after the start.")
        out += got
    return out


def _resolve(con, moments: list[LabelledMoment]) -> list[str]:
    """Set each moment's track_id; returns "SOURCE: PATH" of those whose file is not indexed."""
    names: dict[str, list[tuple[int, str]]] = {}
    if any(m.by_name for m in moments):
        for tid, path, name in con.execute("SELECT track_id, path, file_name FROM track_files").fetchall():
            names.setdefault(name, []).append((tid, path))
            names.setdefault(os.path.splitext(name)[0], []).append((tid, path))
    unmatched = []
    for m in moments:
        if m.by_name:
            hits = names.get(m.path) or names.get(os.path.basename(m.path)) or []
            if len(hits) > 1:
                folder = to_stored(os.path.dirname(os.path.abspath(m.source.rsplit(":", 1)[0])))
                hits = [h for h in hits if os.path.dirname(h[1]) == folder] or hits
            if len(hits) == 1:
                m.track_id = hits[0][0]
            elif len(hits) > 1:
                raise UsageError(
                    f"{m.source}: {m.path!r} names {len(hits)} indexed files ({hits[0][1]}, {hits[1][1]}, ...); "
                    "give a Begin Path column with the full path."
                )
        else:
            row = catalog.lookup_track(con, m.path)
            m.track_id = None if row is None else row[0]
        if m.track_id is None:
            unmatched.append(f"{m.source}: {m.path}")
    return unmatched


def evaluate_moments(
    file: LibraryFile,
    label_files: list[str],
    *,
    k: int = 5,
    segmentation: str | None = None,
    label_column: str | None = None,
    all_segments: bool = False,
) -> MomentEvalReport:
    """precision@k of moment search against the labels in ``label_files`` (see the module).

    The segmentation is the one named, else the one whose window is closest to the median
    labelled moment's length. ``all_segments`` searches inactive windows too.
    """
    if k < 1:
        raise UsageError("-k must be at least 1.")
    if not label_files:
        raise UsageError(
            "Give the annotations: --labels FILE (a Raven selection table, or a CSV path,start,end,label)."
        )
    moments = read_labels(list(label_files), label_column=label_column)
    if not moments:
        raise UsageError(f"No labelled moments in {', '.join(label_files)}.")
    report = MomentEvalReport(rows=[], labelled=len(moments))
    with file.connect() as con:
        report.unmatched = _resolve(con, moments)
        known = [m for m in moments if m.track_id is not None]
        if not known:
            raise NothingIndexed(
                f"None of the {len(moments)} labelled moments is in an indexed file (first: {report.unmatched[0]}): "
                "scan their folder with audiodb scan DIR --segments calls, or fix the paths."
            )
        length = float(np.median([m.end_ms - m.start_ms for m in known]))
        seg = choose_segmentation(segment_store.registered(con, file.params), segmentation, length)
        stored = segment_store.load_segments(con, seg.id, active_only=not all_segments)
        tracks = sorted({m.track_id for m in known if m.track_id is not None})
        own = segment_store.load_segments(con, seg.id, active_only=False, track_ids=tracks)
    report.segmentation = seg.label
    if len(stored.track_ids) == 0:
        raise NothingIndexed(f"No {'' if all_segments else 'active '}segments of {seg.label} are stored yet.")
    search = MomentSearch(stored, seg)
    counts: dict[str, int] = {}
    for m in known:
        counts[m.label] = counts.get(m.label, 0) + 1
    report.singletons = sorted(label for label, c in counts.items() if c < 2)
    per_query: list[tuple[str, float, float]] = []
    for i, m in enumerate(known):
        if counts[m.label] < 2:
            continue
        tid = m.track_id
        assert tid is not None  # known moments are those in an indexed file
        rows = own.track_ids == tid
        vectors = span_windows(_subset(own, rows), m.start_ms, m.end_ms)
        if vectors is None:
            report.outside.append(m.source)
            continue
        others = [j for j in range(len(known)) if j != i and known[j].label == m.label]
        relevant = np.zeros(len(stored.track_ids), dtype=bool)
        for j in others:
            other = known[j].track_id
            assert other is not None
            relevant |= search.own(other, known[j].start_ms, known[j].end_ms)
        leave_out = search.own(tid, m.start_ms, m.end_ms)
        found = search.search(vectors, k, own=(tid, m.start_ms, m.end_ms))
        hits = 0
        for f in found:
            if any(
                known[j].track_id == f.track_id and known[j].start_ms < f.end_ms and known[j].end_ms > f.start_ms
                for j in others
            ):
                hits += 1
        searched = ~leave_out
        chance = float(relevant[searched].mean()) if searched.any() else 0.0
        per_query.append((m.label, hits / k, chance))
    if not per_query:
        raise UsageError(
            "No label has two labelled moments with windows in the library, so nothing can be evaluated: "
            "a query needs another moment with its label to find."
        )
    labels = sorted({q[0] for q in per_query})
    report.ceilings = {label: round((counts[label] - 1) / k, 4) for label in labels if counts[label] - 1 < k}
    for label in [*labels, ALL_LABELS]:
        qs = [q for q in per_query if label in (ALL_LABELS, q[0])]
        report.rows.append(
            {
                "label": label,
                "moments": len(qs),
                "k": k,
                "precision_at_k": round(float(np.mean([q[1] for q in qs])), 4),
                "chance": round(float(np.mean([q[2] for q in qs])), 4),
            }
        )
    return report


def _subset(matrix, rows: np.ndarray):
    return dataclasses.replace(
        matrix,
        track_ids=matrix.track_ids[rows],
        seg_index=matrix.seg_index[rows],
        start_ms=matrix.start_ms[rows],
        end_ms=matrix.end_ms[rows],
        active=matrix.active[rows],
        vectors=matrix.vectors[rows],
    )
