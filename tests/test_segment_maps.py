"""Maps and exports of segments (#14 item 5): plot --segments, export --segments, --raven.

The recordings are test_segments.py's: wind-like noise with whistles, hoots and rattles at known
times. Until ``audiodb cluster --segments`` is on main, the clustering the map and the exports
read is a run written into ``cluster_runs`` / ``segment_cluster_assignments`` by SQL here
(:func:`insert_run`): each active window's cluster is the kind of call it overlaps, so every
check knows what each window's cluster must be.
"""

from __future__ import annotations

import csv
import html
import io
import json
import pathlib
import re
import shutil

import duckdb
import numpy as np
import pytest
from audio import write_audio
from click.testing import CliRunner
from test_plot import CHROMIUM_FLAGS, chromium, decode, needs_chromium, page_data
from test_segments import SR, overlaps, recording

import audiodb.maps.segments as segment_maps
from audiodb import Library
from audiodb.cli import main
from audiodb.query.moments import RAVEN_COLUMNS
from audiodb.store.segment_export import RAVEN_EXPORT_COLUMNS, raven_table_names

KINDS = ("whistle", "hoot", "rattle")


def _run(*args, ok=True):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False, prog_name="audiodb")
    if ok and result.exit_code != 0:
        raise AssertionError(f"audiodb {' '.join(map(str, args))} exited {result.exit_code}:\n{result.output}")
    return result


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """site0, site1, site2 in a/ and another site0.flac (other audio) in b/, scanned with ``calls``.

    Returns (lib, events by path)."""
    root = tmp_path_factory.mktemp("segmaps")
    events = {}
    for folder, k, seed in (("a", 0, 0), ("a", 1, 0), ("a", 2, 0), ("b", 0, 1)):
        (root / "rec" / folder).mkdir(parents=True, exist_ok=True)
        y, ev = recording(k, seed=seed)
        path = root / "rec" / folder / f"site{k}.flac"
        write_audio(path, y, SR)
        events[str(path)] = ev
    lib = Library(root / "lib.duckdb")
    assert lib.scan([root / "rec"], segments="calls", workers=2).added == 4
    return lib, events


def truth(events, path, start, end) -> int:
    """The kind (index in KINDS) of the call a window overlaps most; 3 for none."""
    best, kind = 0.0, 3
    for name, a, b in events[path]:
        if overlaps(start, end, a, b):
            o = min(end, b) - max(start, a)
            if o > best:
                best, kind = o, KINDS.index(name)
    return kind


def insert_run(db, events, method="kmeans") -> dict[tuple[str, float], int]:
    """A clustering run over the active ``calls`` windows, written by SQL: cluster = truth().

    Returns {(path, start_sec): cluster} of the windows in the run."""
    with duckdb.connect(str(db)) as con:
        seg_id = con.execute("SELECT id FROM segmentations").fetchone()[0]
        rows = con.execute(
            "SELECT track_id, path, seg_index, start_sec, end_sec FROM segment_features "
            "WHERE segmentation = ? AND active ORDER BY path, seg_index",
            [seg_id],
        ).fetchall()
        labels = {(p, float(s)): truth(events, p, float(s), float(e)) for _, p, _, s, e in rows}
        run_id = con.execute(
            """INSERT INTO cluster_runs (method, parameters, feature_set, space, created_at, n_tracks,
                                         n_clusters, n_noise, segmentation)
               SELECT ?, '{"k": 4}', feature_set, 'scaled', now()::TIMESTAMP, ?, 4, 0, id FROM segmentations
               RETURNING id""",
            [method, len(rows)],
        ).fetchone()[0]
        for t, p, i, s, _ in rows:
            con.execute(
                "INSERT INTO segment_cluster_assignments VALUES (?, ?, ?, ?, NULL, NULL, 0.0)",
                [run_id, t, i, labels[(p, float(s))]],
            )
    return labels


@pytest.fixture(scope="module")
def clustered(recordings, tmp_path_factory):
    """A copy of the library with a k-means run over its segments (see insert_run)."""
    lib, events = recordings
    db = tmp_path_factory.mktemp("clustered") / "lib.duckdb"
    shutil.copy(lib.path, db)
    return Library(db), events, insert_run(db, events)


def _segments(lib) -> list[tuple]:
    return lib.sql(
        "SELECT path, start_sec, end_sec, rms_db, snr_db, active_fraction, active, mel_mean_0, onset_std "
        "FROM segment_features ORDER BY path, start_ms"
    ).rows


# --------------------------------------------------------------------------- export --segments


def test_export_segments_as_csv_and_parquet(clustered, tmp_path):
    lib, events, labels = clustered
    out = tmp_path / "segments.csv"
    result = _run("--db", lib.path, "export", out, "--segments")
    stored = _segments(lib)
    assert f"Wrote {len(stored)} segments of 1.0/0.5 to {out}" in result.output
    table = list(csv.DictReader(out.open(newline="")))
    names = lib.sql("SELECT feature_names FROM segmentations").rows[0][0]
    assert list(table[0]) == [
        "path",
        "start_sec",
        "end_sec",
        "rms_db",
        "snr_db",
        "active_fraction",
        "active",
        *names,
        "cluster_kmeans",
    ]
    assert len(names) == 220 and len(table) == len(stored) == 4 * 47  # 24 s in 1 s windows every 0.5 s
    for row, s in zip(table, stored):
        assert (row["path"], float(row["start_sec"]), float(row["end_sec"])) == s[:3]
        assert float(row["snr_db"]) == pytest.approx(s[4], rel=1e-6)
        assert row["active"] == str(s[6]).lower()
        assert float(row["mel_mean_0"]) == pytest.approx(s[7], rel=1e-6)
        assert float(row["onset_std"]) == pytest.approx(s[8], rel=1e-6, abs=1e-9)
        # The run's cluster where the window is in it (the active ones), empty elsewhere.
        want = labels.get((s[0], float(s[1])))
        assert row["cluster_kmeans"] == ("" if want is None else str(want))
    assert {int(r["cluster_kmeans"]) for r in table if r["cluster_kmeans"]} == {0, 1, 2}

    parquet = tmp_path / "segments.parquet"
    _run("--db", lib.path, "export", parquet, "--segments")
    with duckdb.connect() as con:
        back = con.execute(
            f"SELECT path, start_sec, end_sec, active, cluster_kmeans FROM '{parquet}' ORDER BY path, start_sec"
        ).fetchall()
    assert [(p, a, b, act) for p, a, b, act, _ in back] == [(s[0], s[1], s[2], s[6]) for s in stored]
    assert [c for *_, c in back] == [labels.get((s[0], float(s[1]))) for s in stored]


def test_export_segments_without_a_run_has_no_cluster_column(recordings, tmp_path):
    lib, _ = recordings
    out = tmp_path / "s.csv"
    assert lib.export_segments(out) == {"segmentation": "1.0/0.5", "segments": 4 * 47}
    header = out.read_text().splitlines()[0].split(",")
    assert header[:7] == ["path", "start_sec", "end_sec", "rms_db", "snr_db", "active_fraction", "active"]
    assert not [h for h in header if h.startswith("cluster")]


def _read_raven(path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8")), delimiter="\t"))


def test_export_raven_writes_one_table_per_recording(clustered, tmp_path):
    lib, events, labels = clustered
    out = tmp_path / "tables"
    result = _run("--db", lib.path, "export", out, "--segments", "--raven")
    active = lib.sql(
        "SELECT path, start_sec, end_sec, snr_db FROM segment_features WHERE active ORDER BY path, start_ms"
    )
    assert f"Wrote 4 Raven selection tables ({len(active)} active 1.0/0.5 segments) to {out}" in result.output
    # Equal file names in different folders: each table is named by its path below the common folder.
    assert sorted(p.name for p in out.iterdir()) == [
        "a__site0.flac.Table.1.selections.txt",
        "a__site1.flac.Table.1.selections.txt",
        "a__site2.flac.Table.1.selections.txt",
        "b__site0.flac.Table.1.selections.txt",
    ]
    found_kinds = set()
    for path in events:
        folder, name = path.split("/")[-2:]
        table = _read_raven(out / f"{folder}__{name}.Table.1.selections.txt")
        assert list(table[0]) == [*RAVEN_COLUMNS[:-1], "SNR (dB)", "Cluster"] == list(RAVEN_EXPORT_COLUMNS)
        mine = [r for r in active.rows if r[0] == path]
        # Its active windows, in time order, numbered from 1, parsed back to the same moments.
        assert [(r["Begin Path"], float(r["Begin Time (s)"]), float(r["End Time (s)"])) for r in table] == [
            (p, float(s), float(e)) for p, s, e, _ in mine
        ]
        assert [int(r["Selection"]) for r in table] == list(range(1, len(mine) + 1))
        assert all(float(r["File Offset (s)"]) == float(r["Begin Time (s)"]) for r in table)
        assert {(r["View"], r["Channel"], r["Low Freq (Hz)"], r["High Freq (Hz)"]) for r in table} == {
            ("Spectrogram 1", "1", "0.0", "11025.0")
        }
        assert [float(r["SNR (dB)"]) for r in table] == pytest.approx([m[3] for m in mine], abs=0.006)
        assert [int(r["Cluster"]) for r in table] == [labels[(path, float(r["Begin Time (s)"]))] for r in table]
        # Every call of the recording is in its table, under its kind's cluster.
        for kind, a, b in events[path]:
            hits = [r for r in table if overlaps(float(r["Begin Time (s)"]), float(r["End Time (s)"]), a, b)]
            assert KINDS.index(kind) in {int(r["Cluster"]) for r in hits}, (path, kind, a)
            found_kinds.add(kind)
    assert found_kinds == set(KINDS)


def test_export_raven_without_a_run_leaves_cluster_empty(recordings, tmp_path):
    lib, _ = recordings
    result = lib.export_segments(tmp_path / "t", raven=True)
    assert len(result["tables"]) == 4
    for t in result["tables"]:
        rows = _read_raven(pathlib.Path(t["table"]))
        assert len(rows) == t["selections"] > 0
        assert {r["Cluster"] for r in rows} == {""}


def test_raven_table_names_never_clash():
    names = raven_table_names(["/r/a/x.wav", "/r/b/x.wav", "/r/a__x.wav", "/r/a/x.flac"])
    assert names == {
        "/r/a/x.wav": "a__x.wav.Table.1.selections.txt",
        "/r/b/x.wav": "b__x.wav.Table.1.selections.txt",
        "/r/a__x.wav": "a__x.wav.2.Table.1.selections.txt",
        "/r/a/x.flac": "a__x.flac.Table.1.selections.txt",
    }
    assert raven_table_names(["/r/one/dawn.wav"]) == {"/r/one/dawn.wav": "dawn.wav.Table.1.selections.txt"}


def test_file_export_is_unchanged_and_misuse_is_a_clear_error(recordings, tmp_path):
    lib, _ = recordings
    out = tmp_path / "files.csv"
    assert "Wrote 4 tracks to" in _run("--db", lib.path, "export", out).output
    header = out.read_text().splitlines()[0].split(",")
    assert header[:4] == ["file_name", "file_path", "duration_sec", "sample_rate"]
    assert header[-2:] == ["cluster_kmeans", "cluster_hdbscan"] and len(header) == 4 + 180 + 2
    for args, message in (
        ((tmp_path,), "is a folder: give the .csv or .parquet file to write"),
        ((tmp_path / "t", "--raven"), "--raven and --segmentation need --segments"),
        ((tmp_path / "s.txt", "--segments"), "name it .csv or .parquet (or give a folder and --raven)"),
        ((tmp_path / "s.csv", "--segments", "--segmentation", "song"), "No segmentation 'song' is registered"),
        ((out, "--segments", "--raven"), "is a file: --raven writes one table per recording into a folder"),
    ):
        result = _run("--db", lib.path, "export", *args, ok=False)
        assert result.exit_code != 0 and message in result.output, result.output
    assert not (tmp_path / "t").exists() and not (tmp_path / "s.txt").exists()
    assert out.read_text().splitlines()[0].split(",") == header  # the file given by mistake is kept


# --------------------------------------------------------------------------- plot --segments


@pytest.fixture(scope="module")
def segment_page(clustered, tmp_path_factory):
    lib, _, _ = clustered
    out = tmp_path_factory.mktemp("segpage") / "moments.html"
    result = _run("--db", lib.path, "plot", "--segments", "-o", out)
    return out, result


def test_segment_map_is_a_point_per_active_segment_coloured_by_its_cluster(clustered, segment_page):
    lib, events, labels = clustered
    out, result = segment_page
    active = lib.sql(
        "SELECT path, start_ms, end_ms FROM segment_features WHERE active ORDER BY track_id, seg_index"
    ).rows
    assert f"Wrote a map of {len(active)} segments" in result.output
    data = page_data(out.read_text(encoding="utf-8"))
    assert data["n"] == len(active)
    assert data["title"] == "PCA Projection of Segments — Colored by k-means Cluster"
    assert data["notes"][0].startswith(
        f"{len(active)} active segments of 1.0/0.5 (window 1 s, hop 0.5 s), from 4 files"
    )
    paths = [data["folders"][f] + "/" + name for f, name in zip(decode(data["folder_index"]), data["names"])]
    start, end = decode(data["moments"]["start_ms"]), decode(data["moments"]["end_ms"])
    assert list(zip(paths, start.tolist(), end.tolist())) == active
    # Colours are the run's clusters: each point's legend entry is its window's cluster.
    codes = decode(data["color"]["codes"])
    legend = [c["name"] for c in data["color"]["categories"]]
    got = [int(legend[c]) for c in codes]
    assert got == [labels[(p, s / 1000)] for p, s, _ in active]
    assert decode(data["clusters"]["kmeans"]).tolist() == got


def test_segment_map_neighbours_leave_out_the_moment_itself(clustered, segment_page):
    lib, events, labels = clustered
    data = page_data(segment_page[0].read_text(encoding="utf-8"))
    n, k = data["n"], data["k"]
    assert k == 5
    nb = decode(data["neighbours"]).reshape(n, k)
    fi, start, end = (
        decode(data["folder_index"]),
        decode(data["moments"]["start_ms"]),
        decode(data["moments"]["end_ms"]),
    )
    names = data["names"]
    same_kind = 0
    for i in range(n):
        for j in nb[i]:
            own = fi[j] == fi[i] and names[j] == names[i] and start[j] < end[i] and end[j] > start[i]
            assert j != i and not own
        path = data["folders"][fi[i]] + "/" + names[i]
        c = labels[(path, start[i] / 1000)]
        same_kind += sum(labels[(data["folders"][fi[j]] + "/" + names[j], start[j] / 1000)] == c for j in nb[i][:1])
    # The nearest moment of a call is mostly a call of its kind (the space similar --segments ranks in).
    assert same_kind / n > 0.8, same_kind / n


def test_segment_map_without_a_run_colours_by_file_and_samples_above_the_limit(recordings, tmp_path, monkeypatch):
    lib, _ = recordings
    out = tmp_path / "m.html"
    result = lib.plot(out, segments=True)
    data = page_data(out.read_text(encoding="utf-8"))
    assert result.color == "File" and data["title"].endswith("Colored by File")
    assert [c["name"] for c in data["color"]["categories"]] == [
        "a/site0.flac",
        "a/site1.flac",
        "a/site2.flac",
        "b/site0.flac",
    ]
    assert any("no clustering of the 1.0/0.5 segments yet" in t for t in data["notes"])
    total = data["n"]
    monkeypatch.setattr(segment_maps, "MAX_POINTS", 40)
    lib.plot(out, segments=True)
    data = page_data(out.read_text(encoding="utf-8"))
    assert data["n"] == 40
    assert data["notes"][0].startswith(f"40 of the {total} active segments of 1.0/0.5, a uniform random sample")
    # A uniform sample: drawn from every file, in (file, time) order, no window twice.
    pairs = list(
        zip(decode(data["folder_index"]).tolist(), data["names"], decode(data["moments"]["start_ms"]).tolist())
    )
    assert len(set(pairs)) == 40 and len({(f, n) for f, n, _ in pairs}) == 4


def test_segment_map_misuse_is_a_clear_error(recordings, tmp_path):
    lib, _ = recordings
    for args, message in (
        (("--color", "hdbscan"), "No HDBSCAN clustering of the 1.0/0.5 segments yet: run audiodb cluster --segments"),
        (("--color", "folder"), "choose kmeans, hdbscan or file"),
        (("--features", "extended"), "--features is for maps of files"),
        (("--segmentation", "song"), "No segmentation 'song' is registered"),
    ):
        result = _run("--db", lib.path, "plot", "--segments", "-o", tmp_path / "x.html", *args, ok=False)
        assert result.exit_code != 0 and message in result.output, result.output
    result = _run("--db", lib.path, "plot", "--segmentation", "calls", "-o", tmp_path / "x.html", ok=False)
    assert "--segmentation needs --segments" in result.output
    assert not (tmp_path / "x.html").exists()


# --------------------------------------------------------------------------- in a real browser

_PROBE = """<script>
(async function () {
  const out = {errors: []};
  const wait = (ms) => new Promise((r) => setTimeout(r, ms));
  for (let i = 0; i < 400 && document.body.dataset.ready !== "1"; i++) await wait(25);
  try {
    const map = window.audiodbMap, gd = map.gd, target = TARGET;
    out.status = JSON.parse(document.getElementById("audiodb-status").textContent);
    out.legend = Array.from(gd.querySelectorAll(".legendtext"), (e) => e.textContent);
    let curve = -1, point = -1;
    map.members.forEach((m, ci) => {
      const p = Array.prototype.indexOf.call(m, target);
      if (p >= 0 && curve < 0) { curve = ci; point = p; }
    });
    const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
    const drag = gd.querySelector(".nsewdrag"), box = drag.getBoundingClientRect();
    const at = {clientX: box.left + xa.l2p(gd.data[curve].x[point]), clientY: box.top + ya.l2p(gd.data[curve].y[point]),
                bubbles: true, cancelable: true, view: window};
    drag.dispatchEvent(new MouseEvent("mousemove", at));
    await wait(100);
    out.hover = Array.from(gd.querySelectorAll(".hoverlayer .hovertext"), (e) => e.textContent);
    drag.dispatchEvent(new MouseEvent("mousedown", {...at, buttons: 1}));
    drag.dispatchEvent(new MouseEvent("mouseup", at));
    drag.dispatchEvent(new MouseEvent("click", at));
    await wait(50);
    out.now_name = document.getElementById("now-name").textContent;
    out.now_info = document.getElementById("now-info").textContent;
    out.neighbours = Array.from(document.querySelectorAll("#neighbours button"), (b) => b.textContent);
    const player = document.getElementById("player");
    out.src = player.src;
    out.audio = await Promise.race([
      new Promise((resolve) => {
        if (player.readyState >= 1) resolve("loaded");
        player.addEventListener("loadedmetadata", () => resolve("loaded"));
        player.addEventListener("error", () => resolve("error " + (player.error && player.error.code)));
      }),
      wait(8000).then(() => "no loadedmetadata"),
    ]);
    if (out.audio === "loaded") {
      await wait(200);
      out.start_time = player.currentTime;
      // Played past its end, the page pauses it: from just before the end.
      player.currentTime = Number(player.dataset.end) - 0.05;
      out.play = await Promise.race([
        player.play().then(() => "playing", (e) => "refused: " + e),
        wait(3000).then(() => "no answer within 3 s"),
      ]);
      for (let i = 0; i < 120 && !player.paused; i++) await wait(25);
      out.paused_at = player.currentTime;
      out.paused = player.paused;
    }
  } catch (e) {
    out.errors.push(String((e && e.stack) || e));
  }
  const pre = document.createElement("pre");
  pre.id = "probe-result";
  pre.hidden = true;
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>"""


def secs(ms) -> str:
    """As the page writes a time: 12500 -> 12.5, 12000 -> 12.0, 12345 -> 12.345."""
    t = f"{ms / 1000:.3f}".rstrip("0")
    return t + "0" if t.endswith(".") else t


def _probe(page_path, tmp_path, target: int) -> dict:
    page = page_path.read_text(encoding="utf-8")
    body, end = page.rsplit("</body>", 1)
    copy = tmp_path / ("probed-" + page_path.name)
    copy.write_text(body + _PROBE.replace("TARGET", str(target)) + "</body>" + end, encoding="utf-8")
    for _attempt in range(2):
        run = chromium(tmp_path, "--autoplay-policy=no-user-gesture-required", "--dump-dom", copy.as_uri())
        m = re.search(r'<pre id="probe-result"[^>]*>(.*?)</pre>', run.stdout, re.DOTALL)
        if m:
            return json.loads(html.unescape(m.group(1)))
    raise AssertionError(f"the probe did not report (chromium exit {run.returncode}):\n{run.stderr[-3000:]}")


@pytest.mark.slow
@pytest.mark.browser
@needs_chromium
def test_segment_map_in_a_real_browser(clustered, segment_page, tmp_path):
    assert "--mute-audio" in CHROMIUM_FLAGS
    lib, events, labels = clustered
    out, _ = segment_page
    data = page_data(out.read_text(encoding="utf-8"))
    start, end = decode(data["moments"]["start_ms"]), decode(data["moments"]["end_ms"])
    target = int(np.flatnonzero(start > 0)[0])  # a window after the file's start
    name = data["names"][target]
    span = f"{secs(start[target])}–{secs(end[target])} s"
    found = _probe(out, tmp_path, target)
    assert found["errors"] == [], found["errors"]
    assert found["status"]["points"] == data["n"] and found["status"]["renderer"] == "scattergl"
    assert found["legend"] == ["0", "1", "2"] + (["3"] if "3" in found["legend"] else [])
    assert any(f"at {span} (1.0/0.5)" in h and "k-means cluster:" in h for h in found["hover"]), found["hover"]
    assert found["now_name"] == f"{name} @ {span}"
    # A click plays that moment only: the file with a media fragment from its start to its end.
    assert found["src"].endswith(f"/{name}#t={start[target] / 1000:g},{end[target] / 1000:g}"), found["src"]
    nb = decode(data["neighbours"]).reshape(data["n"], data["k"])[target]
    assert found["neighbours"] == [f"{data['names'][j]} @ {secs(start[j])}–{secs(end[j])} s" for j in nb]
    # Whether the media element loads the file within headless Chromium's virtual time is a race
    # of the harness (see test_plot); when it did, it started at the window and stopped at its end.
    if found["audio"] == "loaded":
        assert found["start_time"] == pytest.approx(start[target] / 1000, abs=0.05)  # the fragment's start
        # Headless Chromium without a sound card mostly never starts playing; when it does, the
        # page pauses the moment at its end.
        if found["play"] == "playing":
            assert found["paused"] and found["paused_at"] == pytest.approx(end[target] / 1000, abs=0.3)
    else:
        assert found["audio"] == "no loadedmetadata", found["audio"]


def test_raven_tables_carry_the_call_types_of_a_real_cluster_run(recordings, tmp_path):
    """End to end with the real command: cluster --segments, then export --raven: each table's
    Cluster column is the run's cluster of each window (as the segment_clusters view has it), and
    the planted call types come out as clusters."""
    from sklearn.metrics import adjusted_rand_score

    lib, events = recordings
    db = tmp_path / "lib.duckdb"
    shutil.copy(lib.path, db)
    _run("--db", db, "cluster", "--segments", "--method", "kmeans", "--k", "3")
    out = tmp_path / "tables"
    _run("--db", db, "export", out, "--segments", "--raven")
    view = {
        (p, float(s)): c
        for p, s, c in Library(db)
        .sql("SELECT path, start_sec, cluster FROM segment_clusters WHERE method = 'kmeans'")
        .rows
    }
    got, want = [], []
    for path in events:
        folder, name = path.split("/")[-2:]
        for r in _read_raven(out / f"{folder}__{name}.Table.1.selections.txt"):
            start, end = float(r["Begin Time (s)"]), float(r["End Time (s)"])
            assert int(r["Cluster"]) == view[(path, start)]
            kind = truth(events, path, start, end)
            if kind < 3:  # windows over a call
                got.append(int(r["Cluster"]))
                want.append(kind)
    assert len(got) > 10 and adjusted_rand_score(want, got) >= 0.8
