"""`audiodb plot` at 50,000 tracks: page size, build time, and how the page behaves.

    python benchmarks/bench_plot.py [--n 50000] [--umap] [--no-browser] [--keep DIR]

A synthetic library (no audio): N tracks whose 180-number vectors come from
12 Gaussian groups, with realistic paths (about 60 characters: folders of
artists and albums, file names with spaces and punctuation), is written to a
fresh DuckDB file with a k-means-like clustering run (the group of each track).
Then, timed separately:

1. ``Library.plot(projection='pca', color='kmeans')``: read, z-score, PCA,
   5 nearest neighbours per track (exact), and the page; its size, split into
   plotly.js and the rest. With ``--umap`` the same for UMAP (minutes at 50k).
2. If chromium is installed: the page opened headless (software WebGL here)
   and driven over the DevTools protocol (``--remote-debugging-pipe``), in real
   time: from navigation to the plot drawn, then a search that rings ~1% of
   the tracks, a click on a track (neighbour list, audio element, rings) and a
   zoom, each until two animation frames later.

BLAS threads are left at their default (all cores), as a user runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time

import numpy as np


def write_library(db: str, n: int, seed: int = 0) -> None:
    import datetime

    import pyarrow as pa

    from audiodb.analysis.params import NOTEBOOK
    from audiodb.store import connection

    rng = np.random.default_rng(seed)
    groups = 12
    centres = rng.normal(0, 3, size=(groups, NOTEBOOK.dims))
    label = rng.integers(0, groups, size=n)
    X = (centres[label] + rng.normal(0, 1.5, size=(n, NOTEBOOK.dims))).astype(np.float32)
    words = ["Blue", "Night", "River", "Song", "of", "the", "Sea", "Live", "Remaster", "(Demo)", "Mañana", "&", "Echo"]
    paths = []
    for i in range(n):
        artist, album = i // 400, i // 40
        title = " ".join(rng.choice(words, size=3))
        paths.append(f"/home/me/Music/Artist {artist:03d}/Album {album:04d}/{i % 40 + 1:02d} - {title}.flac")
    now = datetime.datetime(2025, 1, 1)
    tracks = pa.table(
        {
            "track_id": pa.array(np.arange(1, n + 1), pa.int64()),
            "path": paths,
            "file_name": [os.path.basename(p) for p in paths],
            "folder": [os.path.dirname(p) for p in paths],
            "size": pa.array(rng.integers(1 << 20, 1 << 24, size=n), pa.int64()),
            "mtime_ns": pa.array(np.full(n, 1_700_000_000 * 10**9), pa.int64()),
            "content_hash": [f"{i:032x}" for i in range(n)],
            "duration_sec": rng.uniform(60, 420, size=n),
            "indexed_at": pa.array([now] * n, pa.timestamp("us")),
        }
    )
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(X.reshape(-1), pa.float32()), NOTEBOOK.dims)
    emb = pa.table({"track_id": tracks["track_id"], "vector": vectors})
    assign = pa.table({"track_id": tracks["track_id"], "cluster": pa.array(label, pa.int32())})
    with connection.connect(db) as con:
        con.register("t", tracks)
        con.register("e", emb)
        con.register("a", assign)
        con.execute(
            "INSERT INTO track_files (track_id, path, file_name, folder, size, mtime_ns, content_hash, "
            "duration_sec, sample_rate, indexed_at) SELECT track_id, path, file_name, folder, size, "
            "mtime_ns, content_hash, duration_sec, 22050, indexed_at FROM t"
        )
        con.execute("INSERT INTO embeddings SELECT track_id, ?, vector, ? FROM e", [NOTEBOOK.id, now])
        con.execute(
            "INSERT INTO cluster_runs (id, method, parameters, feature_set, space, created_at, n_tracks, "
            "n_clusters, n_noise) VALUES (1, 'kmeans', '{\"k\": 12}', ?, 'scaled', ?, ?, 12, 0)",
            [NOTEBOOK.id, now, n],
        )
        con.execute("INSERT INTO cluster_assignments (run_id, track_id, cluster) SELECT 1, track_id, cluster FROM a")


class DevTools:
    """Just enough of the Chrome DevTools protocol, over ``--remote-debugging-pipe`` (fds 3 and 4),
    to open a page and evaluate JavaScript in it in real time."""

    def __init__(self, chromium: str, flags: list[str]):
        to_child, self._out = os.pipe()
        self._in, from_child = os.pipe()

        def fds():
            os.dup2(to_child, 3)
            os.dup2(from_child, 4)

        self.proc = subprocess.Popen(
            [chromium, *flags, "--remote-debugging-pipe", "about:blank"],
            pass_fds=(3, 4),
            preexec_fn=fds,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_child)
        os.close(from_child)
        self._buf, self._id, self.session = b"", 0, None

    def send(self, method: str, params: dict | None = None, session: bool = True) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self._out, json.dumps(msg).encode() + b"\0")
        while True:
            while b"\0" not in self._buf:
                chunk = os.read(self._in, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe")
                self._buf += chunk
            raw, self._buf = self._buf.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def open(self, url: str) -> None:
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True}, session=False)[
            "sessionId"
        ]
        self.send("Page.navigate", {"url": url})

    def eval(self, expression: str):
        result = self.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    def close(self) -> None:
        try:
            self.send("Browser.close", session=False)
        except (RuntimeError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


_MEASURE = """(async function () {
  const frames = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  const map = window.audiodbMap, out = {};
  out.status = JSON.parse(document.getElementById("audiodb-status").textContent);
  out.ready_ms = performance.now();
  let t0 = performance.now();
  out.matches = map.search("blue night").length;
  await frames();
  out.search_ms = performance.now() - t0;
  t0 = performance.now();
  map.select(12345 % out.status.tracks, false);
  await frames();
  out.click_ms = performance.now() - t0;
  t0 = performance.now();
  await Plotly.relayout(map.gd, {"xaxis.range": [0, 1], "yaxis.range": [0, 1]});
  await frames();
  out.zoom_ms = performance.now() - t0;
  return out;
})()"""


def browser(page: str, tmp: str) -> dict | None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        return None
    flags = [
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
        "--window-size=1400,900",
        f"--user-data-dir={tempfile.mkdtemp(dir=tmp)}",
    ]
    tools = DevTools(chromium, flags)
    try:
        tools.open("file://" + page)
        deadline = time.monotonic() + 300
        while tools.eval("document.body && document.body.dataset.ready") != "1":
            if time.monotonic() > deadline:
                raise RuntimeError("the page did not draw in 300 s")
            time.sleep(0.01)
        return tools.eval(_MEASURE)
    finally:
        tools.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--umap", action="store_true", help="also time a UMAP page (slow at 50k)")
    ap.add_argument("--no-browser", action="store_true")
    ap.add_argument("--keep", metavar="DIR", help="write the library and pages here and keep them")
    args = ap.parse_args()

    from plotly.offline import get_plotlyjs

    from audiodb import Library
    from audiodb.cli.output import human_size

    tmp = args.keep or tempfile.mkdtemp(prefix="bench-plot-")
    os.makedirs(tmp, exist_ok=True)
    db = os.path.join(tmp, "lib.duckdb")
    if os.path.exists(db):
        os.remove(db)
    print(
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load avg {os.getloadavg()[0]:.2f}"
    )
    t0 = time.monotonic()
    write_library(db, args.n)
    print(f"synthetic library: {args.n} tracks in {time.monotonic() - t0:.1f} s")
    plotly_bytes = len(get_plotlyjs().encode())
    for projection in ["pca"] + (["umap"] if args.umap else []):
        page = os.path.join(tmp, f"{projection}.html")
        r = Library(db).plot(page, projection=projection, color="kmeans")
        print(
            f"{projection}: {r.n_points} points, build {r.seconds:.1f} s, page {human_size(r.size_bytes)} "
            f"(plotly.js {human_size(plotly_bytes)}, data and app {human_size(r.size_bytes - plotly_bytes)}, "
            f"{(r.size_bytes - plotly_bytes) / r.n_points:.0f} bytes per track)"
        )
        if projection == "pca" and not args.no_browser:
            b = browser(page, tmp)
            if b is None:
                print("browser: chromium not found or the page did not report; skipped")
            else:
                print(
                    f"browser (headless chromium, software WebGL): {b['status']['points']} points drawn with "
                    f"{b['status']['renderer']} {b['ready_ms'] / 1000:.1f} s after navigation; "
                    f"search ringing {b['matches']} tracks {b['search_ms']:.0f} ms; "
                    f"click (neighbours, audio element, rings) {b['click_ms']:.0f} ms; "
                    f"zoom {b['zoom_ms']:.0f} ms"
                )
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
