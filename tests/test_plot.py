"""audiodb plot: the notebook's maps as self-contained pages, checked in a real browser."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.parse

import numpy as np
import pytest
from audio import music_like, write_audio
from click.testing import CliRunner

import audiodb
from audiodb.cli import main
from audiodb.maps.coloring import MISSING_COLOR, PALETTE, Coloring
from audiodb.maps.page import build_page
from audiodb.maps.projection import nearest_neighbours, project

XSS = "<img src=x onerror=alert(1)>.oga"
ODD_FOLDER = "odd #1 & co"  # '#' and '&' must be percent-encoded in the audio element's URL

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Headless on a machine without a GPU or a network: software WebGL (SwiftShader, which
# Chromium now wants asked for explicitly), nothing phoning home.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--enable-unsafe-swiftshader",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--mute-audio",
    "--window-size=1200,800",
    "--virtual-time-budget=20000",
]
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium; .ci/run installs it)"
)


def _run(*args, ok=True):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False, prog_name="audiodb")
    if ok and result.exit_code != 0:
        raise AssertionError(f"audiodb {' '.join(map(str, args))} exited {result.exit_code}:\n{result.output}")
    return result


def page_data(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="audiodb-data">(.*?)</script>', page, re.DOTALL)
    assert m, "no data block in the page"
    return json.loads(m.group(1))


def decode(typed: dict) -> np.ndarray:
    import base64

    return np.frombuffer(base64.b64decode(typed["b"]), dtype=np.dtype(typed["t"]).newbyteorder("<"))


@pytest.fixture(scope="module")
def mapped(tmp_path_factory):
    """A demo library (7 kinds x 3) plus a file named like markup in an awkward folder,
    indexed and clustered with k-means; returns (db, root, xss_path)."""
    from audiodb.demo import write_demo_library

    base = tmp_path_factory.mktemp("mapped")
    root, db = base / "audio", base / "lib.duckdb"
    write_demo_library(root, n_per_kind=3)
    (root / ODD_FOLDER).mkdir()
    xss = write_audio(root / ODD_FOLDER / XSS, music_like(3.0, 22050, seed=9), 22050)
    _run("--db", db, "scan", root, "--workers", "2")
    _run("--db", db, "cluster", "--method", "kmeans", "--k", "7")
    return db, root, xss


@pytest.fixture(scope="module")
def pca_page(mapped, tmp_path_factory):
    db, _, _ = mapped
    out = tmp_path_factory.mktemp("pages") / "pca-kmeans.html"
    result = _run("--db", db, "plot", "--projection", "pca", "--color", "kmeans", "-o", out)
    return out, result


def _features(db):
    rows = audiodb.Library(db).sql("select * from features order by path")
    X = np.array([r[2:] for r in rows.rows], dtype=np.float64)
    return [r[1] for r in rows.rows], X


@pytest.mark.slow
def test_pca_page_is_the_notebooks_map(mapped, pca_page):
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    db, root, _ = mapped
    out, result = pca_page
    paths, X = _features(db)
    pca = PCA(n_components=2, random_state=42).fit(StandardScaler().fit_transform(X))
    r1, r2 = pca.explained_variance_ratio_
    assert f"Explained variance by PC1 and PC2: {r1:.4f} {r2:.4f}" in result.output
    assert "Wrote a map of 22 tracks" in result.output
    page = out.read_text(encoding="utf-8")
    data = page_data(page)
    assert data["n"] == 22 and len(data["names"]) == 22
    assert data["axes"] == [f"PC1 ({r1:.1%} of variance)", f"PC2 ({r2:.1%} of variance)"]
    assert data["title"] == "PCA Projection of Acoustic Embeddings — Colored by k-means Cluster"
    # Positions are the notebook's PCA (up to the sign of each component).
    Y = pca.transform(StandardScaler().fit_transform(X))
    for axis, key in enumerate("xy"):
        got = decode(data[key]).astype(np.float64)
        assert min(np.abs(got - Y[:, axis]).max(), np.abs(got + Y[:, axis]).max()) < 1e-3
    # Discrete colours: the 7 k-means clusters, Dark24 by cluster id.
    cats = data["color"]["categories"]
    assert [c["name"] for c in cats] == [str(i) for i in range(7)]
    assert [c["color"] for c in cats] == list(PALETTE[:7])
    assert data["color"]["title"] == "k-means cluster"
    # Nearest neighbours: 5 per track, in the z-scored space (checked against sklearn).
    from sklearn.neighbors import NearestNeighbors

    Z = StandardScaler().fit_transform(X)
    expected = NearestNeighbors(n_neighbors=6).fit(Z).kneighbors(Z, return_distance=False)[:, 1:]
    assert data["k"] == 5
    assert np.array_equal(decode(data["neighbours"]).reshape(22, 5), expected)
    # Paths: folder + name give back each track's path; the folder URL is percent-encoded.
    folders, index = data["folders"], decode(data["folder_index"])
    assert [os.path.join(folders[f], n) for f, n in zip(index, data["names"])] == paths
    odd = folders.index(str(root / ODD_FOLDER))
    assert data["folder_urls"][odd] == (root / ODD_FOLDER).as_uri() + "/"
    assert "%23" in data["folder_urls"][odd] and "#" not in data["folder_urls"][odd]


@pytest.mark.slow
def test_extended_features_map_lists_the_neighbours_similar_gives(mapped, tmp_path):
    """--features extended: the page's neighbours are `audiodb similar`'s (default metric) top 5."""
    db, _, _ = mapped
    out = tmp_path / "extended.html"
    result = _run("--db", db, "plot", "--features", "extended", "-o", out)
    data = page_data(out.read_text(encoding="utf-8"))
    assert data["n"] == 22 and "z-scored 222 features" in result.output
    assert any("audiodb similar's default" in note for note in data["notes"])
    paths = _features(db)[0]
    neighbours = decode(data["neighbours"]).reshape(22, 5)
    for i in (0, 7, 21):
        hits = json.loads(_run("--db", db, "similar", paths[i], "-n", "5", "--format", "json").output)
        assert [paths[j] for j in neighbours[i]] == [h["path"] for h in hits]
    _run("--db", db, "plot", "-o", tmp_path / "nb.html")
    notebook = decode(page_data((tmp_path / "nb.html").read_text(encoding="utf-8"))["neighbours"]).reshape(22, 5)
    assert not np.array_equal(notebook, neighbours)  # a different space, so some lists differ


def test_extended_map_leaves_out_tracks_without_the_second_set(mapped, tmp_path):
    import shutil

    import duckdb

    db = tmp_path / "old.duckdb"
    shutil.copy(mapped[0], db)
    with duckdb.connect(str(db)) as con:
        con.execute("DELETE FROM extended_embeddings WHERE track_id IN (SELECT min(track_id) FROM track_files)")
    for color in ("kmeans", "folder"):
        out = tmp_path / f"{color}.html"
        result = _run("--db", db, "plot", "--features", "extended", "--color", color, "-o", out)
        data = page_data(out.read_text(encoding="utf-8"))
        assert data["n"] == 21 and "Wrote a map of 21 tracks" in result.output
        assert "1 tracks without current features are not shown" in result.output
    with duckdb.connect(str(db)) as con:
        con.execute("DELETE FROM extended_embeddings")
    result = _run("--db", db, "plot", "--features", "extended", "-o", tmp_path / "none.html", ok=False)
    assert result.exit_code == 1 and "audiodb scan" in result.output and "--features notebook" in result.output


def test_page_is_self_contained_and_names_are_data(pca_page):
    out, _ = pca_page
    page = out.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]*\bsrc=", page), "the page loads a script from elsewhere"
    assert not re.search(r"<link[^>]*\bhref=", page)
    assert "plotly.js v" in page  # inlined
    data_block = re.search(r'id="audiodb-data">(.*?)</script>', page, re.DOTALL).group(1)
    assert not set("<>&") & set(data_block)
    assert XSS not in page and "<img" not in page
    assert XSS in page_data(page)["names"]


def test_build_page_escapes_whatever_is_in_a_name():
    evil = ["/m/</script><script>alert(1)</script>/a.wav", "/m/{{APP}}.wav", "/m/a & b \u2028.flac"]
    page = build_page(
        title="t <b>",
        x=np.zeros(3),
        y=np.arange(3.0),
        paths=evil,
        durations=np.array([1.0, np.nan, 2.0]),
        neighbours=np.array([[1], [2], [0]]),
        axes=["a", "b"],
        coloring=Coloring(kind="discrete", title="c", codes=np.zeros(3, np.int32), categories=[("x", "#000")]),
        plotly_js="/* plotly */",
    )
    assert page.count("</script>") == 3 and "<script>alert" not in page
    assert "<title>t &lt;b&gt;</title>" in page
    data = page_data(page)
    index = decode(data["folder_index"])
    assert [os.path.join(data["folders"][f], n) for f, n in zip(index, data["names"])] == evil
    assert np.isnan(decode(data["duration"])[1])


@pytest.mark.slow
def test_without_a_clustering_run_it_says_what_to_run(cli, music_dir, tmp_path):
    out = tmp_path / "m.html"
    result = cli("plot", "-o", out, ok=False)
    assert result.exit_code == 1 and "audiodb scan" in result.output
    cli("scan", music_dir, "--workers", "1")
    for method in ("kmeans", "hdbscan"):
        result = cli("plot", "--color", method, "-o", out, ok=False)
        assert result.exit_code == 1
        assert f"run audiodb cluster --method {method} first" in result.output
    assert not out.exists()
    result = cli("plot", "--color", "nope", "-o", out, ok=False)
    assert result.exit_code == 2 and "duration_sec" in result.output and "folder" in result.output
    cli("plot", "--color", "folder", "-o", out)  # a column needs no clustering
    assert page_data(out.read_text())["n"] == 5


@pytest.mark.slow
def test_columns_colour_by_value(cli, music_dir, tmp_path):
    cli("scan", music_dir, "--workers", "1")
    out = tmp_path / "d.html"
    cli("plot", "--color", "duration_sec", "-o", out)
    color = page_data(out.read_text())["color"]
    assert color["kind"] == "continuous" and color["title"] == "duration_sec"
    assert np.all(np.isfinite(decode(color["values"])))
    cli("plot", "--color", "folder", "-o", out)
    color = page_data(out.read_text())["color"]
    assert color["kind"] == "discrete"
    assert [c["name"] for c in color["categories"]] == [".", "a", "b", "b/c"]  # relative to the library root
    cli("plot", "--color", "channels", "-o", out)  # few integer values: categories
    assert [c["name"] for c in page_data(out.read_text())["color"]["categories"]] == ["1", "2"]
    cli("plot", "--color", "indexed_at", "-o", out)  # a timestamp: continuous, dates on the colour bar
    color = page_data(out.read_text())["color"]
    assert color["kind"] == "continuous" and re.match(r"\d{4}-\d\d-\d\d", color["ticks"]["text"][0])


@pytest.mark.slow
def test_hdbscan_noise_is_grey_and_later_tracks_are_marked(cli, music_dir, db_path, tmp_path):
    import datetime

    cli("scan", music_dir, "--workers", "1")
    lib = audiodb.Library(db_path)
    ids = [r[0] for r in lib.sql("select track_id from tracks order by path").rows]
    # A run as `audiodb cluster` stores it, that saw only the first four tracks.
    lib.sql(
        "insert into cluster_runs (id, method, parameters, feature_set, space, created_at, n_tracks, "
        "n_clusters, n_noise) values (99, 'hdbscan', '{\"min_cluster_size\": 2}', ?, 'scaled', ?, 4, 2, 1)",
        [audiodb.NOTEBOOK.id, datetime.datetime(2025, 1, 1)],
        write=True,
    )
    for track_id, cluster in zip(ids, [3, 3, -1, 0]):
        lib.sql(
            "insert into cluster_assignments (run_id, track_id, cluster) values (99, ?, ?)",
            [track_id, cluster],
            write=True,
        )
    out = tmp_path / "h.html"
    result = cli("plot", "--color", "hdbscan", "-o", out)
    assert "HDBSCAN run 99" in result.output
    assert "1 tracks were indexed after that run" in result.output
    assert "audiodb cluster --method hdbscan" in result.output
    data = page_data(out.read_text())
    cats = [(c["name"], c["color"]) for c in data["color"]["categories"]]
    assert cats == [("0", PALETTE[0]), ("3", PALETTE[3]), ("noise (-1)", "#7f7f7f"), ("not clustered", MISSING_COLOR)]
    assert decode(data["color"]["codes"]).tolist() == [1, 1, 2, 0, 3]
    assert decode(data["clusters"]["hdbscan"]).tolist()[:4] == [3, 3, -1, 0]


@pytest.mark.slow
def test_umap_uses_the_notebooks_settings(mapped, tmp_path):
    db, _, _ = mapped
    out = tmp_path / "umap.html"
    result = _run("--db", db, "plot", "--projection", "umap", "--color", "kmeans", "-o", out)
    assert "n_neighbors=10, min_dist=0.1, metric=euclidean, random_state=42" in result.output
    data = page_data(out.read_text())
    assert data["axes"] == ["UMAP-1", "UMAP-2"]
    assert data["title"] == "UMAP of Acoustic Embeddings — Colored by k-means Cluster"
    xy = np.stack([decode(data["x"]), decode(data["y"])])
    assert xy.shape == (2, 22) and np.all(np.isfinite(xy)) and xy.std(axis=1).min() > 0
    # A library smaller than the notebook's neighbourhood: fewer neighbours, and it says so.
    Y, info = project(np.random.default_rng(1).normal(size=(6, 180)), "umap")
    assert Y.shape == (6, 2) and info["settings"]["n_neighbors"] == 5 and "n_neighbors is 5" in info["notes"][0]
    with pytest.raises(audiodb.UsageError, match="at least 4 tracks"):
        project(np.zeros((3, 180)), "umap")


def test_nearest_neighbours_are_exact():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(700, 12))
    X[5] = X[6]  # a duplicate: each other's nearest, never themselves
    got = nearest_neighbours(X, 4)
    d = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    assert np.array_equal(got, np.argsort(d, axis=1, kind="stable")[:, :4])
    assert got[5, 0] == 6 and got[6, 0] == 5
    assert nearest_neighbours(X[:3], 5).shape == (3, 2)


def test_the_library_module_imports_nothing_heavy():
    code = (
        "import sys, audiodb.maps.write; "
        "print(','.join(m for m in ('plotly', 'sklearn', 'umap', 'numba', 'librosa') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd="/")
    assert out.returncode == 0 and out.stdout.strip() == "", out.stdout + out.stderr


# --------------------------------------------------------------------------- in a real browser

_TRAP = """<script>window.__alerts = []; window.alert = function (m) { window.__alerts.push(String(m)); };</script>"""

# Runs after the page's own script: waits for the plot, then does what a user does.
_PROBE = """<script>
(async function () {
  const out = {errors: []};
  const wait = (ms) => new Promise((r) => setTimeout(r, ms));
  for (let i = 0; i < 400 && document.body.dataset.ready !== "1"; i++) await wait(25);
  try {
    const map = window.audiodbMap, gd = map.gd, target = TARGET;
    out.status = JSON.parse(document.getElementById("audiodb-status").textContent);
    out.legend = Array.from(gd.querySelectorAll(".legendtext"), (e) => e.textContent);
    out.svg_points = gd.querySelectorAll(".scatterlayer path.point").length;
    // What WebGL drew: pixels of each cluster's colour on the plot's canvas.
    const c = gd.querySelector("canvas.gl-canvas-context");
    if (c) {
      const t = document.createElement("canvas");
      t.width = c.width; t.height = c.height;
      const ctx = t.getContext("2d");
      ctx.drawImage(c, 0, 0);
      const px = ctx.getImageData(0, 0, t.width, t.height).data;
      const data = JSON.parse(document.getElementById("audiodb-data").textContent);
      const rgb = data.color.categories.map((k) => [1, 3, 5].map((i) => parseInt(k.color.substr(i, 2), 16)));
      out.pixels = rgb.map(() => 0);
      for (let i = 0; i < px.length; i += 4) {
        if (px[i + 3] < 128) continue;
        for (let k = 0; k < rgb.length; k++) {
          if (Math.abs(px[i] - rgb[k][0]) + Math.abs(px[i + 1] - rgb[k][1]) + Math.abs(px[i + 2] - rgb[k][2]) < 30) {
            out.pixels[k]++;
            break;
          }
        }
      }
    }
    let curve = -1, point = -1;
    map.members.forEach((m, ci) => {
      const p = Array.prototype.indexOf.call(m, target);
      if (p >= 0 && curve < 0) { curve = ci; point = p; }
    });
    // Move the mouse onto the point, then click it, as a user would.
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
    out.now_path = document.getElementById("now-path").textContent;
    out.neighbours = Array.from(document.querySelectorAll("#neighbours button"), (b) => b.textContent);
    out.selected_overlay = document.querySelectorAll("#highlights .selected, #highlights .neighbour").length;
    const ring = document.querySelector("#highlights .selected").getBoundingClientRect();
    out.ring_offset = [ring.left + ring.width / 2 - at.clientX, ring.top + ring.height / 2 - at.clientY];
    const player = document.getElementById("player");
    out.src = player.src;
    out.audio = await Promise.race([
      new Promise((resolve) => {
        if (player.readyState >= 1) resolve("loaded");
        player.addEventListener("loadedmetadata", () => resolve("loaded"));
        player.addEventListener("error", () => resolve("error " + (player.error && player.error.code)));
      }),
      wait(8000).then(() => "no loadedmetadata within 8 s (readyState " + player.readyState + ")"),
    ]);
    out.audio_duration = player.duration;
    const search = document.getElementById("search");
    search.value = "ONERROR";
    search.dispatchEvent(new Event("input"));
    await wait(50);
    out.matches = Array.from(document.querySelectorAll("#matches button"), (b) => b.textContent);
    out.match_overlay = document.querySelectorAll("#highlights .match").length;
  } catch (e) {
    out.errors.push(String((e && e.stack) || e));
  }
  out.alerts = window.__alerts;
  out.images = document.images.length;
  const pre = document.createElement("pre");
  pre.id = "probe-result";
  pre.hidden = true;
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>"""


def chromium(tmp_path, *args, timeout=120) -> subprocess.CompletedProcess:
    profile = tmp_path / f"chromium-profile-{len(list(tmp_path.glob('chromium-profile-*')))}"
    return subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def probe(page_path, tmp_path, target: int, *extra) -> dict:
    """Open a copy of the page with the probe added, headless, and return what it found."""
    page = page_path.read_text(encoding="utf-8")
    head, tail = page.split("<head>", 1)
    body, end = tail.rsplit("</body>", 1)
    copy = tmp_path / ("probed-" + page_path.name)
    copy.write_text(
        head + "<head>" + _TRAP + body + _PROBE.replace("TARGET", str(target)) + "</body>" + end, encoding="utf-8"
    )
    # Headless Chromium may end --dump-dom before the probe reports: one more try.
    for _attempt in range(2):
        run = chromium(tmp_path, *extra, "--dump-dom", copy.as_uri())
        m = re.search(r'<pre id="probe-result"[^>]*>(.*?)</pre>', run.stdout, re.DOTALL)
        result = json.loads(html.unescape(m.group(1))) if m else None
        if result is not None:
            break
    assert m, f"the probe did not report (chromium exit {run.returncode}):\n{run.stderr[-3000:]}"
    return result


@pytest.mark.slow
@pytest.mark.browser
@needs_chromium
def test_in_a_real_browser(mapped, pca_page, tmp_path):
    xss = mapped[2]
    out, _ = pca_page
    data = page_data(out.read_text(encoding="utf-8"))
    target = data["names"].index(XSS)
    found = probe(out, tmp_path, target)
    assert found["errors"] == []
    # Drawn with WebGL, one point per track, every cluster's colour on the canvas.
    assert found["status"] == {"points": 22, "tracks": 22, "traces": 7, "renderer": "scattergl"}
    assert found["legend"] == [str(i) for i in range(7)]
    assert all(n > 0 for n in found["pixels"]), found["pixels"]
    # The file named like markup is text everywhere: hover, now playing, search results.
    assert found["alerts"] == [] and found["images"] == 0
    assert any(XSS in h for h in found["hover"]), found["hover"]
    assert any("duration: 3.0 s" in h and "k-means cluster:" in h for h in found["hover"])
    assert found["now_name"] == XSS and found["now_path"] == str(xss)
    assert found["matches"] == [XSS] and found["match_overlay"] == 1
    # Clicking plays the file itself, from disk: its URL is the path, percent-encoded.
    assert found["src"].startswith("file:///") and urllib.parse.unquote(found["src"][7:]) == str(xss)
    # Whether the media element finishes reading the file before headless Chromium's
    # virtual time runs out is a race of the harness (lost in most CI runs), so the
    # load is checked when it happened; the URL above is what the page controls.
    if found["audio"] == "loaded":
        assert found["audio_duration"] == pytest.approx(3.0, abs=0.05)
    else:
        assert found["audio"].startswith("no loadedmetadata"), found["audio"]  # never a media error
    neighbours = decode(data["neighbours"]).reshape(-1, 5)[target]
    assert found["neighbours"] == [data["names"][i] for i in neighbours]
    assert found["selected_overlay"] == 6  # the track and its 5 neighbours, ringed where they are drawn
    assert max(abs(v) for v in found["ring_offset"]) < 1.5, found["ring_offset"]
    # A screenshot after the click and the search (the probed copy), kept with the test's files.
    shot = tmp_path / "pca-kmeans.png"
    chromium(tmp_path, f"--screenshot={shot}", (tmp_path / ("probed-" + out.name)).as_uri())
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


@pytest.mark.slow
@pytest.mark.browser
@needs_chromium
def test_without_webgl_it_draws_svg(pca_page, tmp_path):
    out, _ = pca_page
    data = page_data(out.read_text(encoding="utf-8"))
    found = probe(out, tmp_path, 0, "--disable-webgl", "--disable-3d-apis")
    assert found["errors"] == []
    assert found["status"]["renderer"] == "scatter"
    assert found["svg_points"] == data["n"]  # one SVG marker per track (counted before any click)
    assert found["now_name"] == data["names"][0]


@pytest.mark.slow
def test_near_constant_columns_do_not_part_the_map_from_similar(mapped, tmp_path):
    """One z-score rule: columns constant to float32 precision are left unscaled by the map as by
    `audiodb similar`, so the page's neighbours stay similar's (they parted when the map z-scored
    them to unit variance and `similar` did not)."""
    import shutil

    import duckdb

    db = tmp_path / "flat.duckdb"
    shutil.copy(mapped[0], db)
    rng = np.random.default_rng(0)
    with duckdb.connect(str(db)) as con:
        rows_ = con.execute("SELECT track_id, feature_set, vector FROM embeddings").fetchall()
        for track_id, feature_set, vector in rows_:
            v = np.asarray(vector, dtype=np.float32)
            # 60 columns at 1.0 give or take 3 float32 steps: noise, not a feature.
            v[100:160] = np.float32(1.0) + rng.integers(-3, 4, 60).astype(np.float32) * np.float32(2.0**-23)
            con.execute(
                "UPDATE embeddings SET vector = ? WHERE track_id = ? AND feature_set = ?",
                [v.tolist(), track_id, feature_set],
            )
    paths = _features(db)[0]
    for features, metric in (("notebook", "notebook"), ("extended", "extended")):
        out = tmp_path / f"{features}.html"
        _run("--db", db, "plot", "--features", features, "-o", out)
        data = page_data(out.read_text(encoding="utf-8"))
        neighbours = decode(data["neighbours"]).reshape(data["n"], 5)
        for i in range(0, 22, 3):
            hits = json.loads(
                _run("--db", db, "similar", paths[i], "-n", "5", "--metric", metric, "--format", "json").output
            )
            assert [paths[j] for j in neighbours[i]] == [h["path"] for h in hits], (features, i)
