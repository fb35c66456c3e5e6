"""similar, duplicates, playlist, eval: on real audio written and indexed by the tests.

One library is built per module: five 8-s "songs" (44.1 kHz stereo), two passages
of one 16-s piece (merely alike), real transcodes of song0 (mp3, flac, ogg), a
renamed copy of song2, and two sounds of each demo kind.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from audio import music_like, write_audio
from conftest import run_audiodb

from audiodb import Library
from audiodb.demo import write_demo_library
from audiodb.query.evaluate import EVAL_COLUMNS
from audiodb.query.space import METRICS, Space

SR = 44100


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    root = tmp_path_factory.mktemp("similar")
    songs, copies = root / "music" / "songs", root / "music" / "copies"
    songs.mkdir(parents=True)
    copies.mkdir()
    for seed in range(5):
        write_audio(songs / f"song{seed}.wav", music_like(8.0, SR, seed=seed, channels=2), SR)
    piece = music_like(16.0, SR, seed=100, channels=2)
    write_audio(songs / "piece_a.wav", piece[: 8 * SR], SR)
    write_audio(songs / "piece_b.wav", piece[8 * SR :], SR)
    song0 = music_like(8.0, SR, seed=0, channels=2)
    for ext in ("mp3", "flac", "ogg"):
        write_audio(copies / f"song0.{ext}", song0, SR)
    shutil.copy(songs / "song2.wav", copies / "copy of song2.wav")
    write_demo_library(root / "demo", n_per_kind=2)
    db = root / "lib.duckdb"
    report = Library(db).scan([root / "music", root / "demo"], workers=2)
    assert report.failed == 0 and report.added == 25
    return {"root": root, "db": db, "songs": songs, "copies": copies, "song0": song0}


def run_json(cli, lib, *args):
    return json.loads(cli("--db", lib["db"], *args, "--format", "json").stdout)


def track_count(lib) -> int:
    return Library(lib["db"]).sql("SELECT count(*) FROM tracks").rows[0][0]


# --------------------------------------------------------------------------- similar


@pytest.mark.slow
def test_transcoded_copies_are_the_top_hits_and_the_query_is_left_out(cli, lib):
    query = str(lib["songs"] / "song0.wav")
    hits = run_json(cli, lib, "similar", query, "-n", "5")
    assert [h["rank"] for h in hits] == [1, 2, 3, 4, 5]
    assert query not in [h["path"] for h in hits]
    assert {h["path"] for h in hits[:3]} == {str(lib["copies"] / f"song0.{e}") for e in ("flac", "mp3", "ogg")}
    assert hits[0]["path"].endswith("song0.flac")  # lossless: nearest of all
    distances = [h["distance"] for h in hits]
    assert distances == sorted(distances) and distances[3] > 2 * distances[2]
    for h in hits:
        assert {"rank", "path", "distance", "duration_sec", "cluster_kmeans", "cluster_hdbscan"} <= set(h)
        assert h["duration_sec"] == pytest.approx(8.0, abs=0.1)

    # The same query by track id, and from the mp3's side.
    tid = Library(lib["db"]).sql("SELECT track_id FROM tracks WHERE path = ?", [query]).rows[0][0]
    assert run_json(cli, lib, "similar", tid, "-n", "5") == hits
    from_mp3 = run_json(cli, lib, "similar", lib["copies"] / "song0.mp3", "-n", "3")
    assert {h["path"] for h in from_mp3} == {query, *(str(lib["copies"] / f"song0.{e}") for e in ("flac", "ogg"))}


@pytest.mark.parametrize("metric", METRICS)
def test_every_metric_finds_the_copies_and_never_the_query(cli, lib, metric):
    query = str(lib["copies"] / "song0.ogg")
    hits = run_json(cli, lib, "similar", query, "-n", "100", "--metric", metric)
    paths = [h["path"] for h in hits]
    assert query not in paths and len(paths) == len(set(paths)) == 25 - 1
    copies = {str(lib["songs"] / "song0.wav")} | {str(lib["copies"] / f"song0.{e}") for e in ("flac", "mp3")}
    assert set(paths[:3]) == copies


@pytest.mark.slow
def test_an_unindexed_file_is_analysed_and_not_added(cli, lib, tmp_path):
    before = track_count(lib)
    outside = tmp_path / "song3 transcoded.m4a"
    write_audio(outside, music_like(8.0, SR, seed=3, channels=2), SR)
    hits = run_json(cli, lib, "similar", outside, "-n", "3")
    assert hits[0]["path"] == str(lib["songs"] / "song3.wav")
    assert track_count(lib) == before
    assert Library(lib["db"]).sql("SELECT count(*) FROM failures").rows[0][0] == 0


def test_where_and_exclude_folder_filter_the_neighbours(cli, lib):
    query = lib["songs"] / "song0.wav"
    long_ones = run_json(cli, lib, "similar", query, "-n", "50", "--where", "duration_sec > 7")
    assert len(long_ones) == 11 - 1 and all(h["duration_sec"] > 7 for h in long_ones)
    elsewhere = run_json(cli, lib, "similar", query, "-n", "50", "--exclude-folder")
    assert elsewhere and not [h for h in elsewhere if os.path.dirname(h["path"]) == str(lib["songs"])]
    assert elsewhere[0]["path"].startswith(str(lib["copies"]))

    bad = cli("--db", lib["db"], "similar", query, "--where", "no_such_column > 1", ok=False)
    assert bad.exit_code == 2 and "--where" in bad.output and "duration_sec > 60" in bad.output


def test_m3u_and_table_output(cli, lib):
    out = cli("--db", lib["db"], "similar", lib["songs"] / "song1.wav", "-n", "4", "--format", "m3u").stdout
    lines = out.splitlines()
    assert lines[0] == "#EXTM3U" and len(lines) == 1 + 2 * 4
    for info, path in zip(lines[1::2], lines[2::2]):
        assert info.startswith("#EXTINF:") and os.path.isabs(path) and os.path.isfile(path)
    table = cli("--db", lib["db"], "similar", lib["songs"] / "song1.wav", "-n", "2").stdout
    assert "rank" in table.splitlines()[0] and "distance" in table.splitlines()[0]


def test_unknown_track_and_empty_library_say_what_to_do(cli, lib, tmp_path):
    missing = cli("--db", lib["db"], "similar", tmp_path / "nope.wav", ok=False)
    assert missing.exit_code == 1 and "neither an indexed track nor an audio file" in missing.output
    no_id = cli("--db", lib["db"], "similar", "999999", ok=False)
    assert no_id.exit_code == 1 and "track id" in no_id.output
    Library(tmp_path / "empty.duckdb").sql("SELECT 1", write=True)
    empty = cli("--db", tmp_path / "empty.duckdb", "similar", lib["songs"] / "song1.wav", ok=False)
    assert empty.exit_code == 1 and "audiodb scan" in empty.output  # NothingIndexed, as cluster and plot


@pytest.mark.slow
def test_nothing_indexed_is_one_error_with_one_exit_code(cli, tmp_path):
    """similar, duplicates, playlist, eval, cluster, plot, summary on an empty library: all
    NothingIndexed, exit status 1, and the advice to scan (similar once exited 2, cluster 1)."""
    import audiodb

    db = tmp_path / "empty.duckdb"
    empty = Library(db)
    empty.sql("SELECT 1", write=True)
    song = tmp_path / "song.wav"
    write_audio(song, music_like(2.0, SR, seed=1), SR)
    calls = {
        "similar": lambda: empty.similar(str(song)),
        "duplicates": empty.duplicates,
        "playlist": lambda: empty.playlist([str(song)]),
        "eval": empty.evaluate,
        "cluster": empty.cluster,
        "plot": lambda: empty.plot(tmp_path / "m.html", color="folder"),
        "summary": empty.summary,
    }
    for _name, call in calls.items():
        with pytest.raises(audiodb.errors.NothingIndexed, match="audiodb scan"):
            call()
    for args in (
        ["similar", song],
        ["duplicates"],
        ["playlist", song],
        ["eval"],
        ["cluster"],
        ["plot", "--color", "folder", "-o", tmp_path / "m.html"],
        ["summary"],
    ):
        result = cli("--db", db, *args, ok=False)
        assert result.exit_code == 1 and "audiodb scan" in result.output, (args, result.output)


# --------------------------------------------------------------------------- duplicates


def test_duplicates_are_the_transcodes_and_copies_not_the_merely_alike(cli, lib):
    groups = run_json(cli, lib, "duplicates")
    found = [{m["path"] for m in g} for g in groups]
    songs, copies = lib["songs"], lib["copies"]
    assert found == [
        {str(songs / "song2.wav"), str(copies / "copy of song2.wav")},  # identical: most certain
        {str(songs / "song0.wav")} | {str(copies / f"song0.{e}") for e in ("flac", "mp3", "ogg")},
    ]
    # The best copy (lossless, largest) leads; distances are to it, nearest first.
    assert groups[1][0]["path"] == str(songs / "song0.wav") and groups[1][0]["distance"] == 0
    assert [m["distance"] for m in groups[1]] == sorted(m["distance"] for m in groups[1])
    # A threshold below any transcode's distance leaves only the byte-identical copy.
    assert [len(g) for g in run_json(cli, lib, "duplicates", "--threshold", "1e-9")] == [2]
    lines = [json.loads(line) for line in cli("--db", lib["db"], "duplicates", "--format", "jsonl").stdout.splitlines()]
    assert lines == groups


# --------------------------------------------------------------------------- playlist


def test_playlist_has_no_repeats_and_no_second_copy_of_a_recording(cli, lib, tmp_path):
    seed = str(lib["songs"] / "song0.wav")
    out = tmp_path / "mix.m3u"
    result = cli("--db", lib["db"], "playlist", seed, "-n", "8", "-o", out, "--format", "json")
    rows = json.loads(result.stdout)
    paths = [r["path"] for r in rows]
    assert len(paths) == 8 == len(set(paths)) and paths[0] == seed and rows[0]["seed"]
    assert not [p for p in paths[1:] if os.path.basename(p).startswith("song0.")]  # no copy of the seed
    assert not {str(lib["songs"] / "song2.wav"), str(lib["copies"] / "copy of song2.wav")} <= set(paths)
    m3u = out.read_text(encoding="utf-8").splitlines()
    assert m3u[0] == "#EXTM3U" and m3u[2::2] == paths and all(os.path.isfile(p) for p in m3u[2::2])

    two = json.loads(
        cli(
            "--db",
            lib["db"],
            "playlist",
            seed,
            lib["songs"] / "song4.wav",
            "-n",
            "6",
            "--smooth",
            "--no-seeds",
            "--format",
            "json",
        ).stdout
    )
    assert len(two) == 6 and not {r["path"] for r in two} & {seed, str(lib["songs"] / "song4.wav")}
    assert not [r for r in two if r["seed"]]


def test_smooth_order_walks_to_the_nearest_remaining_track(lib):
    library = Library(lib["db"])
    rows = library.playlist([str(lib["songs"] / "song1.wav")], n=8, smooth=True, metric="notebook")
    assert sorted(r["path"] for r in rows) == sorted(
        r["path"] for r in library.playlist([str(lib["songs"] / "song1.wav")], n=8, metric="notebook")
    )
    ids = [r["track_id"] for r in rows]
    with library.connect() as con:
        from audiodb.query.space import load_space

        space = load_space(con, "notebook")
    vec = {t: space.vectors[space.row(t)] for t in ids}
    for k in range(1, len(ids) - 1):
        here = space.transform(vec[ids[k]])
        rest = [np.linalg.norm(space.transform(vec[t]) - here) for t in ids[k + 1 :]]
        assert rest[0] == pytest.approx(min(rest))


# --------------------------------------------------------------------------- eval


def test_eval_figures_come_from_the_labels(cli, lib, tmp_path):
    labels = tmp_path / "labels.csv"
    songs, copies = lib["songs"], lib["copies"]
    with open(labels, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label"])
        for p in [songs / "song0.wav", *(copies / f"song0.{e}" for e in ("flac", "mp3", "ogg"))]:
            w.writerow([p, "song0"])
        w.writerow([os.path.relpath(songs / "song2.wav", tmp_path), "song2"])  # relative to the CSV
        w.writerow([copies / "copy of song2.wav", "song2"])
        w.writerow([songs / "song1.wav", "alone"])
        w.writerow([tmp_path / "not indexed.wav", "song2"])
    result = cli("--db", lib["db"], "eval", "--label-from", labels, "-k", "3", "--metric", "all", "--format", "json")
    rows = json.loads(result.stdout)
    assert "1 paths" in result.stderr and "alone" in result.stderr
    for metric in METRICS:
        by = {r["label"]: r for r in rows if r["metric"] == metric}
        assert set(by) == {"(all)", "song0", "song2"}
        # song0's three nearest labelled tracks are its other three files; song2 has one other file
        # among the 3 nearest (the 6 others are candidates).
        assert by["song0"] == {
            "metric": metric,
            "label": "song0",
            "tracks": 4,
            "k": 3,
            "precision_at_k": 1.0,
            "accuracy_1nn": 1.0,
        }
        assert by["song2"]["precision_at_k"] == pytest.approx(1 / 3, abs=1e-4) and by["song2"]["accuracy_1nn"] == 1
        assert by["(all)"]["tracks"] == 6
        assert by["(all)"]["precision_at_k"] == pytest.approx((4 * 1 + 2 / 3) / 6, abs=1e-4)


def test_eval_by_folder_on_the_demo_kinds(cli, lib):
    rows = run_json(cli, lib, "eval", "--label-from", "folder", "--metric", "all", "--summary")
    assert [r["metric"] for r in rows] == list(METRICS) and all(r["label"] == "(all)" for r in rows)
    assert all(r["tracks"] == 25 and 0 < r["precision_at_k"] <= 1 for r in rows)
    per_label = run_json(cli, lib, "eval", "-k", "1")
    labels = {r["label"] for r in per_label}
    assert {"demo/tones", "demo/noise", "music/songs", "music/copies", "(all)"} <= labels
    # Noise is nothing like a tone: each noise clip's nearest neighbour is the other one.
    assert next(r for r in per_label if r["label"] == "demo/noise")["accuracy_1nn"] == 1.0


def test_eval_notes_labels_too_small_for_precision_at_k_to_reach_1(cli, lib):
    # Folders: each demo kind has 2 tracks, music/copies 4, music/songs 7; with k = 5 a kind's
    # query finds at most 1 of its own (precision at most 0.2), a copy at most 3 (0.6).
    result = cli("--db", lib["db"], "eval", "--format", "json")
    rows = json.loads(result.stdout)
    assert all(list(r) == list(EVAL_COLUMNS) for r in rows)  # the rows are as they were
    note = [line for line in result.stderr.splitlines() if "precision_at_k" in line]
    assert len(note) == 1 and note[0].startswith("Note: ")
    kinds = sorted(r["label"] for r in rows if r["label"].startswith("demo/"))
    assert len(kinds) == 7 and all(kind in note[0] for kind in kinds)
    assert "at most 0.2 for " + ", ".join(kinds) in note[0] and "at most 0.6 for music/copies" in note[0]
    assert "music/songs" not in note[0] and "With -k 1 every label" in note[0]
    report = Library(lib["db"]).evaluate("folder", k=5)
    assert report.ceilings == {**{kind: 0.2 for kind in kinds}, "music/copies": 0.6, "(all)": 0.488}
    for r in report.rows:
        assert r["precision_at_k"] <= report.ceilings.get(r["label"], 1.0)
    # Every label has at least k + 1 tracks with k = 1: nothing to say.
    quiet = cli("--db", lib["db"], "eval", "-k", "1")
    assert "precision_at_k" not in quiet.stderr and Library(lib["db"]).evaluate("folder", k=1).ceilings == {}


# --------------------------------------------------------------------------- metrics


def test_metrics_match_their_definitions_on_random_vectors():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((300, 180)) * rng.uniform(0.1, 50, 180) + rng.uniform(-40, 40, 180)).astype(np.float32)
    ids = np.arange(300) + 1
    z = (x.astype(np.float64) - x.mean(0)) / x.std(0)  # StandardScaler, as the notebook
    q = x[7]
    notebook = Space(ids, x, "notebook")
    assert np.allclose(notebook.distances(q), np.linalg.norm(z - z[7], axis=1), atol=2e-3)
    cos = Space(ids, x, "cosine").distances(q)
    zn = z / np.linalg.norm(z, axis=1, keepdims=True)
    assert np.allclose(cos, 1 - zn @ zn[7], atol=1e-4)
    sizes = np.array([64] * 128 + [20] * 40 + [12] * 12)
    blocks = Space(ids, x, "blocks").distances(q)
    assert np.allclose(blocks, np.linalg.norm((z - z[7]) / np.sqrt(sizes), axis=1), atol=1e-3)
    rows, dist = notebook.nearest(q, 5, mask=ids != 8)
    assert 7 not in rows and list(rows) == list(np.argsort(np.linalg.norm(z - z[7], axis=1))[1:6])


def test_the_extended_metric_weights_ten_groups_alike():
    from audiodb.analysis.params import EXTENDED, NOTEBOOK

    rng = np.random.default_rng(1)
    x = (rng.standard_normal((200, 222)) * rng.uniform(0.1, 50, 222) + rng.uniform(-40, 40, 222)).astype(np.float32)
    z = (x.astype(np.float64) - x.mean(0)) / x.std(0)
    names = NOTEBOOK.feature_names() + EXTENDED.feature_names()
    sizes = np.array([64] * 128 + [20] * 40 + [12] * 12 + [7] * 14 + [12] * 24 + [4] * 4)
    got = Space(np.arange(200), x, "extended", names).distances(x[3])
    assert np.allclose(got, np.linalg.norm((z - z[3]) / np.sqrt(sizes), axis=1), atol=1e-3)


def test_the_extended_metric_on_an_unindexed_file(cli, lib, tmp_path):
    outside = tmp_path / "song4 again.ogg"
    write_audio(outside, music_like(8.0, SR, seed=4, channels=2), SR)
    hits = run_json(cli, lib, "similar", outside, "-n", "2", "--metric", "extended")
    assert hits[0]["path"] == str(lib["songs"] / "song4.wav")


@pytest.mark.slow
def test_without_the_second_set_the_default_falls_back_to_blocks_and_says_so(tmp_path, lib):
    """A library indexed before the second feature set existed, not rescanned yet."""
    import duckdb

    db = tmp_path / "old.duckdb"
    shutil.copy(lib["db"], db)
    with duckdb.connect(str(db)) as con:
        con.execute("DELETE FROM extended_embeddings")
    query = str(lib["songs"] / "song0.wav")
    out = run_audiodb("--db", db, "similar", query, "-n", "3", "--format", "json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Note:" in out.stderr and "--metric blocks" in out.stderr and "audiodb scan" in out.stderr
    blocks = run_audiodb(
        "--db", db, "similar", query, "-n", "3", "--format", "json", "--metric", "blocks", cwd=tmp_path
    )
    assert json.loads(out.stdout) == json.loads(blocks.stdout)
    asked = run_audiodb("--db", db, "similar", query, "--metric", "extended", cwd=tmp_path)
    assert asked.returncode != 0 and "audiodb scan" in asked.stderr and "Traceback" not in asked.stderr


# --------------------------------------------------------------------------- speed and concurrency


@pytest.mark.slow
def test_similar_on_an_indexed_track_decodes_nothing_and_imports_no_ml(lib, tmp_path):
    code = textwrap.dedent(f"""
        import sys
        from audiodb.cli import main
        main(["--db", {str(lib["db"])!r}, "similar", {str(lib["songs"] / "song0.wav")!r}, "-n", "3",
              "--format", "json"], standalone_mode=False)
        heavy = ("librosa", "umap", "hdbscan", "sklearn", "numba", "pandas", "soundfile", "soxr", "av",
                 "audiodb.analysis.decode")
        print("LOADED", sorted(m for m in sys.modules if m in heavy or m.split(".")[0] in heavy[:-1]))
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "LOADED []" in out.stdout
    assert json.loads(out.stdout[: out.stdout.index("LOADED")])[0]["path"].endswith("song0.flac")


@pytest.mark.slow
def test_similar_waits_for_a_writer_instead_of_failing(lib, tmp_path):
    """As while `audiodb watch` writes a batch: the read waits (and says so), then answers."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import time
            from audiodb import Library
            with Library({str(lib["db"])!r}).connect(read_only=False):
                print("locked", flush=True)
                time.sleep(6.0)
        """),
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        start = time.monotonic()
        out = run_audiodb(
            "--db", lib["db"], "similar", lib["songs"] / "song0.wav", "-n", "1", "--format", "json", cwd=tmp_path
        )
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)[0]["path"].endswith("song0.flac")
        assert "Waiting to read" in out.stderr and time.monotonic() - start > 5.0
    finally:
        holder.wait(timeout=30)
    assert holder.returncode == 0
