"""Call types (#14 items 4 and 6): cluster --segments, summary --segments, eval --segments --labels.

The recordings are test_segments.py's: wind-like noise with whistles, hoots and rattles placed at
known times, so every window's call type is known.
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from audio import write_audio
from conftest import rows, run_audiodb
from sklearn.metrics import adjusted_rand_score
from test_segments import PLACEMENT, SR, background, call, overlaps, recording

from audiodb import Library
from audiodb.errors import NoClusteringRun, NothingIndexed, UsageError
from audiodb.query import segment_clusters
from audiodb.query.kchoice import k_auto_range
from audiodb.query.moment_eval import read_labels
from audiodb.store.runs import latest_run, latest_segment_runs


def _write_recordings(folder, ks=tuple(PLACEMENT)) -> dict[str, list[tuple[str, float, float]]]:
    folder.mkdir(exist_ok=True)
    events = {}
    for k in ks:
        y, ev = recording(k)
        path = folder / f"site{k}.flac"
        write_audio(path, y, SR)
        events[str(path)] = ev
    return events


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    """Three recordings indexed with the ``calls`` segmentation, clustered both ways."""
    root = tmp_path_factory.mktemp("calltypes")
    events = _write_recordings(root / "recordings")
    lib = Library(root / "lib.duckdb")
    assert lib.scan([root / "recordings"], segments="calls", workers=1).added == 3
    runs = {m: lib.cluster_segments(m) for m in ("kmeans", "hdbscan")}
    return lib, events, runs


def kind_of(events, path, start, end) -> str | None:
    """The call type a span overlaps most (None: background only)."""
    best = max(
        ((min(end, b) - max(start, a), kind) for kind, a, b in events[path] if overlaps(start, end, a, b)),
        default=None,
    )
    return best and best[1]


def window_rows(lib, method=None):
    q = (
        "SELECT c.path, c.start_sec, c.end_sec, c.cluster, c.method, c.run_id FROM segment_clusters c "
        "WHERE ? IS NULL OR c.method = ? ORDER BY c.path, c.start_sec"
    )
    return rows(lib.path, q, method, method)


@pytest.mark.parametrize("method", ["kmeans", "hdbscan"])
def test_cluster_segments_separates_the_call_types(field, method):
    lib, events, runs = field
    run = runs[method]
    assert run.segmentation is not None and run.run_id is not None
    got = window_rows(lib, method)
    (seg,) = lib.segmentations()
    assert len(got) == seg["active_segments"] == run.n_tracks  # active windows only, each once
    truth = [kind_of(events, p, a, b) or "none" for p, a, b, *_ in got]
    labels = [c for *_, c, _, _ in got]
    ari = adjusted_rand_score(truth, labels)
    assert ari >= 0.8, (method, ari)
    # Background windows are not clustered (inactive); windows holding a whole call are.
    clustered = {(p, a) for p, a, *_ in got}
    every = rows(lib.path, "SELECT path, start_sec, end_sec FROM segment_features ORDER BY path, start_sec")
    for p, a, b in every:
        whole = [k for k, x, y in events[p] if a <= x and y <= b]
        if whole:
            assert (p, a) in clustered, (p, a, b, whole)
        if kind_of(events, p, a, b) is None:
            assert (p, a) not in clustered, (p, a, b)
    stored = rows(lib.path, "SELECT segmentation, n_tracks FROM cluster_runs WHERE id = ?", run.run_id)
    assert stored == [(run.segmentation, run.n_tracks)]


def test_summary_lists_three_moments_inside_each_cluster(field, tmp_path):
    lib, events, runs = field
    result = lib.segment_summary(method="kmeans")
    assert result.columns[:8] == [
        "method",
        "run_id",
        "segmentation",
        "cluster",
        "moments",
        "segments",
        "total_sec",
        "files",
    ]
    windows = window_rows(lib, "kmeans")
    summary = result.dicts()
    assert {r["cluster"] for r in summary} == {c for *_, c, _, _ in windows}
    assert sum(r["segments"] for r in summary) == len(windows)
    for r in summary:
        mine = [(p, a, b) for p, a, b, c, *_ in windows if c == r["cluster"]]
        assert r["files"] == len({p for p, *_ in mine})
        assert r["moments"] <= r["segments"] == len(mine)
        spans = [r[f"central_{i}"] for i in (1, 2, 3)]
        assert all(spans) and len(set(spans)) == 3
        kinds = {kind_of(events, p, a, b) for p, a, b in mine}
        for span in spans:
            path, _, times = span.rpartition("@")
            start, end = map(float, times.split("-"))
            inside = [(a, b) for p, a, b in mine if p == path and a >= start and b <= end]
            assert inside and min(a for a, _ in inside) == start and max(b for _, b in inside) == end, span
            assert kind_of(events, path, start, end) in kinds
        # total_sec counts overlapping windows once: the union of the cluster's windows
        union = 0.0
        for path in {p for p, *_ in mine}:
            spans_p = sorted((a, b) for p, a, b in mine if p == path)
            lo, hi = spans_p[0]
            for a, b in spans_p[1:]:
                if a > hi:
                    union, lo = union + hi - lo, a
                hi = max(hi, b)
            union += hi - lo
        assert r["total_sec"] == pytest.approx(union)
    # A central moment pasted into similar --segments finds moments of its call type.
    first = summary[0]
    path, _, times = first["central_1"].rpartition("@")
    kind = kind_of(events, path, *map(float, times.split("-")))
    found = lib.similar_moments(first["central_1"], n=3)
    assert [kind_of(events, m["path"], m["start_sec"], m["end_sec"]) for m in found] == [kind] * 3
    # the CLI: a table of counts, then the central moments whole, one a line
    out = run_audiodb("--db", lib.path, "summary", "--segments", "--method", "kmeans", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert first["central_1"] in out.stdout.splitlines()[len(summary) + 4]
    as_csv = run_audiodb("--db", lib.path, "summary", "--segments", "--format", "csv", cwd=tmp_path)
    got = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert {r["method"] for r in got} == {"kmeans", "hdbscan"}
    assert [r["central_1"] for r in got if r["method"] == "kmeans"] == [r["central_1"] for r in summary]


def _raven(path, header, lines):
    path.write_text("\t".join(header) + "\n" + "".join("\t".join(map(str, r)) + "\n" for r in lines), encoding="utf-8")
    return path


def test_eval_on_a_raven_table_and_a_csv(field, tmp_path):
    lib, events, _ = field
    paths = sorted(events)
    tables = []
    # site0: a table naming the file in Begin Path, with a Waveform and a Spectrogram row per selection
    header = [
        "Selection",
        "View",
        "Channel",
        "Begin Time (s)",
        "End Time (s)",
        "Low Freq (Hz)",
        "High Freq (Hz)",
        "Begin Path",
        "Annotation",
    ]
    lines = []
    for i, (kind, a, b) in enumerate(events[paths[0]], start=1):
        for view in ("Waveform 1", "Spectrogram 1"):
            lines.append([i, view, 1, f"{a:.3f}", f"{b:.3f}", 0, 11025, paths[0], kind])
    tables.append(_raven(tmp_path / "site0.Table.1.selections.txt", header, lines))
    # site1 and site2: no path column, the table's name names the recording; labels in "Species"
    for path in paths[1:]:
        name = path.rsplit("/", 1)[1].rsplit(".", 1)[0]
        lines = [[i, "Spectrogram 1", 1, a, b, kind] for i, (kind, a, b) in enumerate(events[path], start=1)]
        tables.append(
            _raven(
                tmp_path / f"{name}.Table.1.selections.txt",
                ["Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Species"],
                lines,
            )
        )
    labelled = read_labels([str(t) for t in tables])
    assert len(labelled) == sum(len(ev) for ev in events.values())  # views read once
    report = lib.evaluate_moments([str(t) for t in tables], k=3)
    by_label = {r["label"]: r for r in report.rows}
    assert set(by_label) == {"whistle", "hoot", "rattle", "(all)"}
    assert by_label["(all)"]["moments"] == len(labelled) and not report.unmatched
    for r in report.rows:
        assert 0 < r["chance"] < 0.6
        assert r["precision_at_k"] > r["chance"] + 0.3, r
    assert report.ceilings == {}  # five or more moments a label: each can reach 1 at k = 3
    assert lib.evaluate_moments([str(t) for t in tables], k=5).ceilings == {"hoot": 0.8, "rattle": 0.8}
    # The same annotations as a CSV of path,start,end,label (with a header, paths relative to it)
    sheet = tmp_path / "labels.csv"
    with open(sheet, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "start", "end", "label"])
        for path, ev in events.items():
            for kind, a, b in ev:
                w.writerow([path, a, b, kind])
        w.writerow([str(tmp_path / "not-indexed.flac"), 1, 2, "hoot"])
    again = lib.evaluate_moments(str(sheet), k=3)
    assert again.rows == report.rows
    assert len(again.unmatched) == 1 and "not-indexed.flac" in again.unmatched[0]
    # The CLI, both formats at once (several --labels)
    out = run_audiodb(
        "--db", lib.path, "eval", "--segments", "--labels", tables[0], "--labels", tables[1], "-k", "3",
        "--format", "json", cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got[-1]["label"] == "(all)" and got[-1]["precision_at_k"] > got[-1]["chance"]
    assert "chance" in out.stderr


def test_eval_labels_bad_input_is_a_clear_error(field, tmp_path):
    lib, events, _ = field
    no_label = _raven(tmp_path / "x.txt", ["Selection", "Begin Time (s)", "End Time (s)", "Notes"], [[1, 1, 2, "?"]])
    with pytest.raises(UsageError, match="--label-column"):
        lib.evaluate_moments(str(no_label))
    lonely = _raven(
        tmp_path / "site0.Table.1.selections.txt",
        ["Selection", "Begin Time (s)", "End Time (s)", "Label"],
        [[1, 2.0, 2.7, "whistle"]],
    )
    with pytest.raises(UsageError, match="two labelled moments"):
        lib.evaluate_moments(str(lonely))
    bad = tmp_path / "bad.csv"
    bad.write_text(f"{sorted(events)[0]},3,x,hoot\n")
    with pytest.raises(UsageError, match="bad.csv:1"):
        lib.evaluate_moments(str(bad))
    out = run_audiodb("--db", lib.path, "eval", "--labels", str(bad), cwd=tmp_path)
    assert out.returncode != 0 and "--segments" in out.stderr


def test_ids_stay_and_file_runs_are_untouched(tmp_path):
    """A second run after a change keeps each call type's id; runs over files ignore runs over segments."""
    rec = tmp_path / "recordings"
    events = _write_recordings(rec)
    lib = Library(tmp_path / "lib.duckdb")
    lib.scan([rec], segments="calls", workers=1)
    files_before = lib.cluster("kmeans", k=2)
    export_before = tmp_path / "before.csv"
    lib.export(export_before)
    summary_before = lib.summary().rows

    first = lib.cluster_segments("kmeans", k=3)

    def ids_by_kind():
        got = window_rows(lib, "kmeans")
        out: dict[str, set[int]] = {}
        for p, a, b, c, *_ in got:
            kind = kind_of(events, p, a, b)
            if kind:
                out.setdefault(kind, set()).add(c)
        return {kind: ids.pop() for kind, ids in out.items() if len(ids) == 1}

    before = ids_by_kind()
    assert len(before) == 3 and len(set(before.values())) == 3
    assert before["whistle"] == 0  # the largest type, numbered first
    # A small change that makes hoots the largest type: a new recording of eight hoots.
    rng = np.random.default_rng(5)
    y = background(24.0, rng)
    hoots = []
    for i in range(8):
        c = call("hoot", rng) * 0.25
        at = 1.0 + 2.8 * i
        y[int(at * SR) : int(at * SR) + len(c)] += c
        hoots.append(("hoot", at, at + len(c) / SR))
    write_audio(rec / "hoots.flac", y.astype(np.float32), SR)
    events[str(rec / "hoots.flac")] = hoots
    assert lib.scan([rec], workers=1).added == 1
    second = lib.cluster_segments("kmeans", k=3)
    assert second.run_id > first.run_id and second.n_tracks > first.n_tracks
    assert ids_by_kind() == before  # hoots are now the largest cluster and keep their id

    # Runs over files: the latest file run is still the one before; summary, export and the
    # clusters view are the file run's; a new file run renumbers against it, not a segment run.
    with lib.connect() as con:
        assert latest_run(con, "kmeans")["id"] == files_before.run_id
        assert [r["id"] for r in latest_segment_runs(con)] == [second.run_id]
        assert [r["id"] for r in latest_segment_runs(con, method="hdbscan")] == []
    # (central_track left out: in a cluster of two tracks both are equally central)
    assert [r[:-1] for r in lib.summary().rows] == [r[:-1] for r in summary_before]
    export_after = tmp_path / "after.csv"
    lib.export(export_after)
    clusters_of = lambda f: {r["file_path"]: r["cluster_kmeans"] for r in csv.DictReader(open(f))}  # noqa: E731
    after = clusters_of(export_after)
    assert after.pop(str(rec / "hoots.flac")) == ""  # the new file is in no file run yet
    assert after == clusters_of(export_before) and set(after.values()) == {"0", "1"}
    assert rows(lib.path, "SELECT DISTINCT run_id FROM clusters") == [(files_before.run_id,)]
    with pytest.raises(UsageError, match="segments"):
        lib.summary(run=second.run_id)
    with pytest.raises(UsageError, match="files"):
        lib.segment_summary(run=files_before.run_id)
    with pytest.raises(NoClusteringRun, match="cluster --segments"):
        lib.segment_summary(method="hdbscan")
    files_again = lib.cluster("kmeans", k=2)
    # matched to the file run (ids 0, 1; a new cluster 2); against a segment run (ids 0..2, no
    # track keys in common) every cluster would get a fresh id from 3
    assert 0 in files_again.labels and files_again.labels.max() <= 2


def test_cluster_segments_needs_segments(tmp_path, music_dir):
    lib = Library(tmp_path / "plain.duckdb")
    lib.scan([music_dir], workers=1)
    with pytest.raises(NothingIndexed, match="--segments"):
        lib.cluster_segments("kmeans")
    out = run_audiodb("--db", lib.path, "cluster", "--segmentation", "calls", cwd=tmp_path)
    assert out.returncode != 0 and "--segments" in out.stderr


def test_k_auto_on_a_sample_and_a_removed_file_loses_its_assignments(tmp_path, monkeypatch):
    rec = tmp_path / "recordings"
    events = _write_recordings(rec, ks=(0, 1))
    lib = Library(tmp_path / "lib.duckdb")
    lib.scan([rec], segments="calls", workers=1)
    # Many segments: --k auto chooses k on a sample (here 24 of the ~35 active windows).
    monkeypatch.setattr(segment_clusters, "K_SAMPLE", 24)
    run = lib.cluster_segments("kmeans")
    assert run.parameters["k_sample"] == 24 and run.parameters["k_requested"] == "auto"
    assert run.parameters["k"] == 3 and set(run.k_scores) == set(k_auto_range(run.n_tracks))
    got = window_rows(lib, "kmeans")
    truth = [kind_of(events, p, a, b) or "none" for p, a, b, *_ in got]
    assert adjusted_rand_score(truth, [c for *_, c, _, _ in got]) >= 0.8
    gone = rows(lib.path, "SELECT track_id FROM track_files WHERE file_name = 'site1.flac'")[0][0]
    assert gone in run.track_ids
    (rec / "site1.flac").unlink()
    assert lib.scan([rec], workers=1).removed == 1
    q = "SELECT count(*) FROM segment_cluster_assignments WHERE track_id = ?"
    assert rows(lib.path, q, gone) == [(0,)]
    assert rows(lib.path, "SELECT count(DISTINCT path) FROM segment_clusters") == [(1,)]
