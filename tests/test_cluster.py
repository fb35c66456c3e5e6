"""Clustering on real audio indexed by the tests: runs kept, the clusters view,
summaries, the notebook's CSV, stable ids, and the library left free while computing."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import duckdb
import numpy as np
import pytest
from conftest import rows

import audiodb
from audiodb import Library
from audiodb.analysis.params import FEATURE_NAMES, NOTEBOOK
from audiodb.demo import write_demo_library
from audiodb.query import cluster as C
from audiodb.query.cluster_ids import match_ids
from audiodb.store.runs import SUMMARY_COLUMNS
from audiodb.store.vectors import load_vectors

N_PER_KIND = 4
KINDS = 7
N = N_PER_KIND * KINDS


@pytest.fixture(scope="module")
def demo_template(tmp_path_factory):
    """The demo library (7 kinds x 4 sounds), written and indexed once for this module."""
    root = tmp_path_factory.mktemp("demo")
    write_demo_library(root / "audio", n_per_kind=N_PER_KIND)
    db = root / "template.duckdb"
    report = Library(db).scan([root / "audio"], workers=2)
    assert report.added == N and report.failed == 0
    return db


@pytest.fixture
def demo_db(demo_template, db_path):
    """A fresh copy of the indexed demo library at the test's AUDIODB_DB."""
    shutil.copy(demo_template, db_path)
    return db_path


def folder_labels(db, table="clusters", method="kmeans"):
    """{kind folder: set of cluster ids} for a method's latest run."""
    out: dict[str, set] = {}
    for path, cluster in rows(db, f"SELECT path, cluster FROM {table} WHERE method = ?", method):
        out.setdefault(os.path.basename(os.path.dirname(path)), set()).add(cluster)
    return out


def ari(db, method):
    from sklearn.metrics import adjusted_rand_score

    got = rows(db, "SELECT path, cluster FROM clusters WHERE method = ? ORDER BY path", method)
    return adjusted_rand_score([os.path.dirname(p) for p, _ in got], [c for _, c in got])


# --------------------------------------------------------------------------- runs, view, summaries


@pytest.mark.slow
def test_both_methods_are_stored_and_queryable(cli, demo_db):
    out = cli("cluster", "--method", "both", "--k", "7").stdout
    assert "kmeans run 1" in out and "hdbscan run 2" in out

    runs = json.loads(cli("sql", "select * from cluster_runs order by id", "-f", "json").stdout)
    assert [r["method"] for r in runs] == ["kmeans", "hdbscan"]
    km, hd = runs
    assert km["space"] == "scaled" and hd["space"] == C.DEFAULT_SPACE["hdbscan"]
    assert km["feature_set"] == NOTEBOOK.id and km["created_at"]
    assert km["n_tracks"] == hd["n_tracks"] == N and km["n_clusters"] == 7 and km["n_noise"] == 0
    assert json.loads(km["parameters"]).items() >= {"k": 7, "random_state": 42, "n_init": 10}.items()
    assert (
        json.loads(hd["parameters"]).items()
        >= {"min_cluster_size": 4, "min_samples": 2, "cluster_selection_method": "eom"}.items()
    )
    assert 0 < km["quality"] <= 1 and hd["quality"] is not None

    # Assignments: one row per track and run; HDBSCAN's with probability and outlier score.
    assert rows(demo_db, "SELECT run_id, count(*) FROM cluster_assignments GROUP BY 1 ORDER BY 1") == [(1, N), (2, N)]
    probs = rows(demo_db, "SELECT probability, outlier_score FROM cluster_assignments WHERE run_id = 2")
    assert all(0 <= p <= 1 and o >= 0 for p, o in probs)
    assert rows(demo_db, "SELECT count(*) FROM cluster_assignments WHERE run_id = 1 AND probability IS NULL") == [(N,)]

    # The view: latest run of each method, one row per track, the contract's columns.
    view = json.loads(cli("sql", "select * from clusters order by method, track_id", "-f", "json").stdout)
    assert list(view[0]) == ["track_id", "path", "method", "run_id", "cluster"]
    assert len(view) == 2 * N and {(r["method"], r["run_id"]) for r in view} == {("hdbscan", 2), ("kmeans", 1)}
    # The demo's seven kinds are acoustically distinct: both methods find them.
    assert ari(demo_db, "kmeans") > 0.9
    assert ari(demo_db, "hdbscan") > 0.6 and hd["n_noise"] <= N // 4

    # A newer run replaces its method's rows in the view; the older run is kept.
    cli("cluster", "--method", "kmeans", "--k", "3")
    assert {r[0] for r in rows(demo_db, "SELECT DISTINCT run_id FROM clusters WHERE method = 'kmeans'")} == {3}
    assert rows(demo_db, "SELECT count(*) FROM cluster_runs") == [(3,)]
    assert rows(demo_db, "SELECT count(DISTINCT cluster) FROM clusters WHERE method = 'kmeans'") == [(3,)]


@pytest.mark.slow
def test_summaries_add_up_to_the_track_count(cli, demo_db):
    cli("cluster", "--method", "kmeans", "--k", "5")
    cli("cluster", "--method", "hdbscan", "--space", "scaled")
    summary = json.loads(cli("summary", "-f", "json").stdout)
    assert list(summary[0]) == SUMMARY_COLUMNS
    names = {r[0] for r in rows(demo_db, "SELECT file_name FROM tracks")}
    for method in ("kmeans", "hdbscan"):
        mine = [r for r in summary if r["method"] == method]
        assert sum(r["num_tracks"] for r in mine) == N
        for r in mine:
            assert r["duration_sec_min"] <= r["duration_sec_mean"] <= r["duration_sec_max"]
            assert r["sample_rate_min"] == r["sample_rate_max"] == 22050 and r["spec_cent_mean"] > 0
            assert r["rms_mean"] > 0
            assert (r["central_track"] is None) == (r["cluster"] == -1)
            assert r["cluster"] == -1 or r["central_track"] in names
        # Noise, if any, is one row of its own, last.
        noise = [r for r in mine if r["cluster"] == -1]
        assert len(noise) <= 1 and (not noise or mine[-1]["cluster"] == -1)
    # The same numbers as a plain SQL group-by over the clusters view.
    expect = rows(
        demo_db,
        "SELECT c.cluster, count(*), avg(t.duration_sec), max(t.duration_sec) FROM clusters c "
        "JOIN tracks t USING (track_id) WHERE c.method = 'kmeans' GROUP BY 1 ORDER BY 1",
    )
    got = [
        (r["cluster"], r["num_tracks"], r["duration_sec_mean"], r["duration_sec_max"])
        for r in summary
        if r["method"] == "kmeans"
    ]
    assert len(got) == len(expect)
    for g, e in zip(got, expect):
        assert g == pytest.approx(e)

    # One method, one run, and csv.
    only = list(csv.DictReader(cli("summary", "--method", "hdbscan", "-f", "csv").stdout.splitlines()))
    assert {r["method"] for r in only} == {"hdbscan"} and sum(int(r["num_tracks"]) for r in only) == N
    assert {r["run_id"] for r in json.loads(cli("summary", "--run", "1", "-f", "json").stdout)} == {1}
    table = cli("summary").stdout
    assert table.startswith("method") and "central_tr" in table and len(table.splitlines()) == len(summary) + 2


# --------------------------------------------------------------------------- HDBSCAN that finds clusters


@pytest.mark.slow
def test_all_noise_is_reported_with_what_to_try(cli, music_dir):
    """The notebook's case: a few tracks, 180 dimensions, every track noise."""
    cli("scan", music_dir)
    result = cli("cluster", "--method", "hdbscan", "--space", "scaled")
    assert "all 5 tracks noise" in result.stderr and "--space umap" in result.stderr
    assert rows(os.environ["AUDIODB_DB"], "SELECT n_clusters, n_noise FROM cluster_runs") == [(0, 5)]
    summary = json.loads(cli("summary", "-f", "json").stdout)
    assert [(r["cluster"], r["num_tracks"]) for r in summary] == [(-1, 5)]


@pytest.mark.slow
def test_hdbscan_in_a_reduced_space_finds_what_180_dimensions_call_noise(demo_db):
    """Two groups far apart in a few dimensions, hidden by 180 noisy ones."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 180))
    X[:20, :4] += 6.0
    scaled = C.cluster_vectors(X, method="hdbscan", space="scaled")
    assert scaled.n_clusters == 0 and scaled.advice and "--space umap" in scaled.advice[0]
    reduced = C.cluster_vectors(X, method="hdbscan", space="umap")
    assert reduced.n_clusters >= 2 and reduced.n_noise < 10 and not reduced.advice
    assert C.cluster_vectors(X, method="hdbscan", space="pca", dims=2).n_clusters >= 2


# --------------------------------------------------------------------------- the notebook's own code


def test_the_notebooks_kmeans_and_hdbscan_give_the_same_partitions(demo_db):
    import hdbscan
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score
    from sklearn.preprocessing import StandardScaler

    with Library(demo_db).connect() as con:
        _, X, _ = load_vectors(con)
    X_scaled = StandardScaler().fit_transform(X.astype(np.float64))
    assert np.allclose(C.standardize(X), X_scaled, atol=1e-9)

    km = KMeans(n_clusters=2, random_state=42, n_init=10).fit_predict(X_scaled)
    ours = C.cluster_vectors(X, method="kmeans", k=2)
    assert adjusted_rand_score(km, ours.labels) == 1.0

    clusterer = hdbscan.HDBSCAN(min_cluster_size=4, min_samples=2, metric="euclidean", cluster_selection_method="eom")
    labels = clusterer.fit_predict(X_scaled)
    ours = C.cluster_vectors(X, method="hdbscan", space="scaled")
    assert np.array_equal(labels == -1, ours.labels == -1) and adjusted_rand_score(labels, ours.labels) == 1.0
    assert np.allclose(clusterer.probabilities_, ours.probability)


def test_k_auto_picks_by_silhouette_and_prints_the_scores(cli, demo_db):
    out = cli("cluster", "--method", "kmeans").stdout
    assert "silhouette by k" in out
    scores = {int(line.split()[0]): float(line.split()[1]) for line in out.splitlines() if line[:2].strip().isdigit()}
    assert sorted(scores) == list(range(2, 11))
    params = json.loads(rows(demo_db, "SELECT parameters FROM cluster_runs")[0][0])
    assert params["k_requested"] == "auto" and params["k"] == max(scores, key=scores.get)
    assert set(params["k_scores"]) == {str(k) for k in scores}


# --------------------------------------------------------------------------- stable ids


def test_match_ids_keeps_ids_by_overlap():
    ids = np.arange(10)
    prev = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2])
    # The same clusters under other labels keep their ids.
    assert match_ids_of([5, 5, 5, 3, 3, 3, 9, 9, 9, 9], ids, prev).tolist() == prev.tolist()
    # A split: the bigger part keeps the id, the other part gets a new one above every old id.
    assert match_ids_of([1, 1, 1, 0, 0, -1, 2, 2, 3, 3], ids, prev).tolist() == [0, 0, 0, 1, 1, -1, 2, 2, 3, 3]
    # A new track joins; a vanished one is ignored.
    got = match_ids(
        np.array([4, 4, 7, 7, 7]), (np.array([1, 2, 3, 4]), np.array([0, 0, 1, 1])), track_ids=np.array([2, 3, 4, 5, 9])
    )
    assert got.tolist() == [0, 0, 1, 1, 1]
    # First run: numbered by size, largest 0; noise stays -1.
    assert match_ids(np.array([2, 2, 0, 1, 1, 1, -1]), None).tolist() == [1, 1, 2, 0, 0, 0, -1]
    # Thousands of clusters (HDBSCAN on a big library): permuted, 5% moved, in well under a second.
    rng = np.random.default_rng(0)
    prev = rng.integers(-1, 5000, 100_000)
    new = np.where(prev == -1, -1, rng.permutation(5000)[prev])
    moved = rng.random(len(new)) < 0.05
    new[moved] = rng.integers(-1, 5000, moved.sum())
    started = time.monotonic()
    got = match_ids_of(new, np.arange(len(new)), prev)
    assert time.monotonic() - started < 5
    same = ~moved & (prev != -1) & (new != -1)
    assert np.array_equal(got[same], prev[same])


def match_ids_of(labels, ids, prev):
    return match_ids(np.array(labels), (ids, prev), track_ids=ids)


@pytest.mark.slow
def test_cluster_ids_stay_when_little_changed(cli, demo_db, tmp_path):
    cli("cluster", "--method", "kmeans", "--k", "7")
    before = folder_labels(demo_db)
    assert all(len(ids) == 1 for ids in before.values()) and len(set().union(*before.values())) == 7
    # A few new sounds, one of each kind, then cluster again.
    write_demo_library(tmp_path / "more", n_per_kind=1, seed=7)
    cli("scan", tmp_path / "more")
    cli("cluster", "--method", "kmeans", "--k", "7", "--space", "pca")
    assert rows(demo_db, "SELECT max(run_id), count(*) FROM clusters") == [(2, N + KINDS)]
    old = dict(rows(demo_db, "SELECT track_id, cluster FROM cluster_assignments WHERE run_id = 1"))
    new = dict(rows(demo_db, "SELECT track_id, cluster FROM cluster_assignments WHERE run_id = 2"))
    assert all(new[t] == c for t, c in old.items())


# --------------------------------------------------------------------------- export


def test_export_writes_the_notebooks_csv(cli, demo_db, tmp_path):
    cli("cluster", "--method", "kmeans", "--k", "4")
    out = tmp_path / "acoustic_embeddings_with_clusters.csv"
    assert f"Wrote {N} tracks" in cli("export", out).stdout
    with open(out, newline="") as f:
        table = list(csv.reader(f))
    header, body = table[0], table[1:]
    assert header == [
        "file_name",
        "file_path",
        "duration_sec",
        "sample_rate",
        *FEATURE_NAMES,
        "cluster_kmeans",
        "cluster_hdbscan",
    ]
    assert len(body) == N and [r[1] for r in body] == sorted(r[1] for r in body)
    assert {r[-1] for r in body} == {""} and {int(r[-2]) for r in body} == {0, 1, 2, 3}
    first = dict(zip(header, body[0]))
    feats = rows(demo_db, "SELECT spec_cent_mean, mfcc_std_19 FROM features WHERE path = ?", first["file_path"])[0]
    assert float(first["spec_cent_mean"]) == pytest.approx(feats[0], rel=1e-6)
    assert float(first["mfcc_std_19"]) == pytest.approx(feats[1], rel=1e-6)
    assert first["file_name"] == os.path.basename(first["file_path"]) and first["sample_rate"] == "22050"

    cli("cluster", "--method", "hdbscan", "--space", "pca", "--dims", "5")
    import pyarrow.parquet as pq

    cli("export", tmp_path / "lib.parquet")
    t = pq.read_table(tmp_path / "lib.parquet")
    assert t.column_names == header and t.num_rows == N and t["cluster_hdbscan"].null_count < N

    bad = cli("export", tmp_path / "lib.xlsx", ok=False)
    assert bad.exit_code == 2 and ".csv or .parquet" in bad.output


def test_export_features_extended_adds_the_second_sets_columns(cli, demo_db, tmp_path):
    from audiodb.analysis.params import EXTENDED

    plain = tmp_path / "plain.csv"
    cli("export", plain)
    with open(plain, newline="") as f:
        plain_header = next(csv.reader(f))
    assert plain_header == [
        "file_name",
        "file_path",
        "duration_sec",
        "sample_rate",
        *FEATURE_NAMES,
        "cluster_kmeans",
        "cluster_hdbscan",
    ]  # the default is unchanged

    out = tmp_path / "extended.csv"
    assert f"Wrote {N} tracks" in cli("export", out, "--features", "extended").stdout
    with open(out, newline="") as f:
        table = list(csv.reader(f))
    header, body = table[0], table[1:]
    view = [r[0] for r in rows(demo_db, "DESCRIBE extended_features")][2:]
    assert len(view) == 42 and view == EXTENDED.feature_names()
    assert header == [*plain_header[:-2], *view, "cluster_kmeans", "cluster_hdbscan"]
    assert len(body) == N
    first = dict(zip(header, body[0]))
    want = rows(demo_db, "SELECT tempo_bpm, chroma_std_11 FROM extended_features WHERE path = ?", first["file_path"])[0]
    assert float(first["tempo_bpm"]) == pytest.approx(want[0], rel=1e-6)
    assert float(first["chroma_std_11"]) == pytest.approx(want[1], rel=1e-6)

    import pyarrow.parquet as pq

    Library(demo_db).export(tmp_path / "extended.parquet", features="extended")
    assert pq.read_table(tmp_path / "extended.parquet").column_names == header
    bad = cli("export", tmp_path / "x.csv", "--features", "chroma", ok=False)
    assert bad.exit_code == 2 and "extended" in bad.output
    with pytest.raises(audiodb.errors.UsageError, match="notebook or extended"):
        Library(demo_db).export(tmp_path / "x.csv", features="chroma")


# --------------------------------------------------------------------------- sql, errors


def test_sql_refuses_writes_to_runs_without_write(cli, demo_db):
    cli("cluster", "--method", "kmeans", "--k", "2")
    for statement in ("delete from cluster_runs", "update cluster_assignments set cluster = 9", "drop view clusters"):
        refused = cli("sql", statement, ok=False)
        assert refused.exit_code == 1 and "--write" in refused.output
    assert rows(demo_db, "SELECT count(*) FROM clusters") == [(N,)]
    cli("sql", "delete from cluster_assignments where cluster = 1", "--write")
    assert rows(demo_db, "SELECT count(*) FROM clusters")[0][0] < N


def test_errors_say_what_to_do(cli, demo_db, tmp_path):
    empty = tmp_path / "empty.duckdb"
    with Library(empty).connect(read_only=False):
        pass
    result = cli("--db", empty, "cluster", ok=False)
    assert result.exit_code == 1 and "audiodb scan" in result.output
    result = cli("summary", ok=False)
    assert result.exit_code == 1 and "audiodb cluster" in result.output
    result = cli("cluster", "--method", "kmeans", "--k", "40", ok=False)
    assert result.exit_code == 2 and f"k=40 is more than the {N} tracks" in result.output
    result = cli("cluster", "--method", "hdbscan", "--min-cluster-size", "50", ok=False)
    assert result.exit_code == 2 and "min-cluster-size" in result.output
    assert cli("cluster", "--k", "lots", ok=False).exit_code == 2
    result = cli("summary", "--run", "99", ok=False)
    assert result.exit_code == 2 and "99" in result.output
    assert rows(demo_db, "SELECT count(*) FROM cluster_runs") == [(0,)]


# --------------------------------------------------------------------------- Python API


def test_python_api_for_notebooks(demo_db):
    import pandas as pd
    import pyarrow as pa

    lib = audiodb.Library(demo_db)
    run = lib.cluster("kmeans", k=7)
    assert isinstance(run, audiodb.ClusterRun) and run.run_id == 1 and run.n_clusters == 7
    assert sorted(run.sizes().values()) == [N_PER_KIND] * KINDS
    lib.cluster("hdbscan", space="pca", dims=5)

    features = lib.features()
    assert isinstance(features, pd.DataFrame) and list(features.columns) == ["track_id", "path", *FEATURE_NAMES]
    assert len(features) == N
    tracks = lib.tracks(arrow=True)
    assert isinstance(tracks, pa.Table) and tracks.num_rows == N and "duration_sec" in tracks.column_names
    clusters = lib.clusters()
    assert list(clusters.columns) == ["track_id", "path", "method", "run_id", "cluster"]
    wide = clusters.pivot(index="track_id", columns="method", values="cluster")
    assert list(wide.columns) == ["hdbscan", "kmeans"] and len(wide) == N
    table = lib.summary(method="kmeans")
    assert sum(r["num_tracks"] for r in table.dicts()) == N

    # Pure computation, nothing stored.
    X = features[list(FEATURE_NAMES)].to_numpy()
    alone = audiodb.cluster_vectors(X, method="kmeans", k=7)
    assert alone.run_id is None and alone.n_clusters == 7
    assert lib.sql("select count(*) from cluster_runs").rows == [(2,)]


# --------------------------------------------------------------------------- concurrency

WRITER = textwrap.dedent("""
    import sys
    from audiodb.store import connection as db
    with db.connect(sys.argv[1]) as con:
        con.execute("CREATE TABLE IF NOT EXISTS probe (x INTEGER)")
        con.execute("INSERT INTO probe VALUES (1)")
    print("wrote", flush=True)
""")


def test_cluster_leaves_the_library_free_while_it_computes(demo_db, monkeypatch):
    """Another process writes (as a watcher would) while the clustering computes."""
    compute = C.cluster_vectors
    seen = []

    def compute_while_someone_writes(*args, **kwargs):
        env = dict(os.environ, AUDIODB_LOCK_TIMEOUT="5")
        out = subprocess.run(
            [sys.executable, "-c", WRITER, str(demo_db)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            cwd=demo_db.parent,
        )
        seen.append(out)
        return compute(*args, **kwargs)

    monkeypatch.setattr(C, "cluster_vectors", compute_while_someone_writes)
    run = Library(demo_db).cluster("kmeans", k=3)
    assert seen[0].returncode == 0 and seen[0].stdout.strip() == "wrote", seen[0].stderr
    assert run.run_id == 1 and rows(demo_db, "SELECT count(*) FROM probe") == [(1,)]


HOLD = textwrap.dedent("""
    import sys, time
    from audiodb.store import connection as db
    with db.connect(sys.argv[1]) as con:
        print('holding', flush=True)
        time.sleep(2.0)
""")


@pytest.mark.slow
def test_cluster_waits_for_a_writer_instead_of_failing(cli, demo_db):
    p = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(demo_db)], stdout=subprocess.PIPE, text=True, cwd=demo_db.parent
    )
    try:
        assert p.stdout.readline().strip() == "holding"
        result = cli("cluster", "--method", "kmeans", "--k", "2")
        assert "kmeans run 1" in result.stdout
    finally:
        p.wait(timeout=30)
    assert p.returncode == 0


@pytest.mark.slow
def test_cluster_works_while_audiodb_watch_runs(cli, music_dir, tmp_path):
    from audio import music_like, write_audio
    from conftest import AUDIODB

    db = tmp_path / "watched.duckdb"
    err = open(tmp_path / "watch.err", "w+")
    watch = subprocess.Popen(
        AUDIODB + ["--db", db, "watch", music_dir, "--settle", "0.3", "-w", "1"],
        stdout=subprocess.DEVNULL,
        stderr=err,
        cwd=tmp_path,
    )
    try:
        wait_for(lambda: "Caught up" in (tmp_path / "watch.err").read_text(), timeout=120)
        assert "n_tracks" in cli("--db", db, "cluster", "--method", "kmeans", "--k", "2", "-f", "json").stdout
        # New files arrive; cluster while the watcher analyses and writes them.
        for i in range(4):
            write_audio(music_dir / f"new{i}.wav", music_like(1.5, 22050, seed=40 + i), 22050)
        first = json.loads(cli("--db", db, "cluster", "--method", "kmeans", "--k", "2", "-f", "json").stdout)
        assert 5 <= first[0]["n_tracks"] <= 9
        wait_for(lambda: Library(db).sql("select count(*) from features").rows == [(9,)], timeout=120)
        again = json.loads(cli("--db", db, "cluster", "--method", "kmeans", "--k", "2", "-f", "json").stdout)
        assert again[0]["n_tracks"] == 9
    finally:
        watch.send_signal(signal.SIGTERM)
        code = watch.wait(timeout=30)
        err.close()
    assert code == 0, (tmp_path / "watch.err").read_text()


def wait_for(predicate, timeout=60.0, every=0.3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise AssertionError("condition not reached in time")


@pytest.mark.slow
def test_removed_tracks_leave_no_cluster_assignments(cli, tmp_path, db_path):
    from audiodb.demo import write_demo_library

    write_demo_library(tmp_path / "lib", n_per_kind=2)
    cli("scan", tmp_path / "lib", "-w", "2")
    cli("cluster", "--method", "kmeans", "--k", "2")
    import shutil

    shutil.rmtree(tmp_path / "lib" / "tones")
    cli("scan", tmp_path / "lib")

    con = duckdb.connect(str(db_path), read_only=True)
    try:
        orphans = con.execute(
            "SELECT count(*) FROM cluster_assignments WHERE track_id NOT IN (SELECT track_id FROM track_files)"
        ).fetchone()[0]
        assigned = con.execute("SELECT count(*) FROM cluster_assignments").fetchone()[0]
    finally:
        con.close()
    assert orphans == 0 and assigned == 12


def test_clustering_with_the_second_feature_set(cli, demo_db):
    out = cli("--db", demo_db, "cluster", "--method", "kmeans", "--k", str(KINDS), "--features", "extended")
    assert "extended features" in out.stdout
    params, feature_set, n = rows(demo_db, "SELECT parameters, feature_set, n_tracks FROM cluster_runs")[0]
    assert json.loads(params)["features"] == "extended" and feature_set == NOTEBOOK.id and n == N
    assert ari(demo_db, "kmeans") > 0.9  # the seven kinds, as in the notebook's space
    summary = json.loads(cli("--db", demo_db, "summary", "--format", "json").stdout)
    assert sum(r["num_tracks"] for r in summary) == N and all(r["spec_cent_mean"] is not None for r in summary)

    # The same computation by hand: z-scores, each group weighted as the extended metric does.
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    from audiodb.query.space import group_weights
    from audiodb.store.vectors import load_tracks

    lib = Library(demo_db)
    with lib.connect() as con:
        tracks = load_tracks(con, lib.params, lib.extended)
    order = np.argsort(tracks.track_ids)
    x = tracks.vectors[order].astype(np.float64)
    z = (x - x.mean(0)) / np.where(x.std(0) > 0, x.std(0), 1.0) * np.sqrt(group_weights(tracks.feature_names))
    theirs = KMeans(KINDS, random_state=42, n_init=10).fit_predict(z)
    ours = [c for _, c in sorted(rows(demo_db, "SELECT track_id, cluster FROM clusters WHERE method = 'kmeans'"))]
    assert adjusted_rand_score(theirs, ours) == 1.0

    import duckdb as _duckdb

    with _duckdb.connect(str(demo_db)) as con:
        con.execute("DELETE FROM extended_embeddings WHERE track_id IN (SELECT min(track_id) FROM track_files)")
    out = cli("--db", demo_db, "cluster", "--method", "kmeans", "--k", "3", "--features", "extended")
    assert "1 tracks without current features were left out" in out.output
