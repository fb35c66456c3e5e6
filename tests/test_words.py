"""The library's words in output, artist-aware lists and eval: on real audio the tests write.

One tagged library per module, from the demo's synthesized kinds (acoustically distinct,
alike within a kind): artist A is four "tones" over two albums in two folders, B six
"chords", C six "drums"; two more "tones" are untagged, and the other kinds too.

The tags are written into the files with mutagen before the scan (ID3 in the wav and mp3
files, Vorbis comments in the flac and ogg ones), so the scanner reads them as it would
a tag editor's.
"""

from __future__ import annotations

import csv
import io
import json
import shutil

import numpy as np
import pytest
from audio import music_like, write_audio  # noqa: F401  (the shared writers; the demo writes these files)

from audiodb import Library
from audiodb.demo import write_demo_library
from audiodb.query.evaluate import EVAL_COLUMNS, FILTERED_COLUMNS, evaluate_vectors
from audiodb.store.vectors import load_tracks
from audiodb.store.words import tag_labels

# name -> (demo kind, index, folder, artist, album, genre)
TRACKS = {
    "a0": ("tones", 0, "x", "Artist A", "First", "rock"),
    "a1": ("tones", 1, "x", "Artist A", "First", "rock"),
    "a2": ("tones", 2, "y", "artist a ", "Second", "rock"),  # the same artist, written differently
    "a3": ("tones", 3, "y", "Artist A", "Second", "rock"),
    "u0": ("tones", 4, "u", None, None, None),
    "u1": ("tones", 5, "u", None, None, None),
    **{f"b{i}": ("chords", i, "chords", "Artist B", "Bee", "rock") for i in range(6)},
    **{f"c{i}": ("drums", i, "drums", "Artist C", "See", "jazz") for i in range(6)},
}
TAGGED = sum(1 for t in TRACKS.values() if t[3])


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    root = tmp_path_factory.mktemp("words")
    music = root / "music"
    written = write_demo_library(music, n_per_kind=6)
    by_kind = {(p.parent.name, int(p.stem.rsplit("_", 1)[1])): p for p in written}
    paths = {}
    for name, (kind, i, folder, *_tags) in TRACKS.items():
        src = by_kind[(kind, i)]
        dst = music / folder / f"{name}{src.suffix}"
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(src, dst)
        paths[name] = dst
        artist, album, genre = _tags
        if artist:
            tag_file(dst, {"title": f"Song {name}", "artist": artist, "album": album, "genre": genre, "mood": "calm"})
    db = root / "lib.duckdb"
    lib = Library(db)
    report = lib.scan([music], workers=2)
    assert report.failed == 0 and report.added == len(written)
    return {"db": db, "lib": lib, "paths": paths, "music": music}


def tag_file(path, tags: dict[str, str]) -> None:
    """Write ``tags`` into ``path`` as a tag editor does (mutagen): an ID3 tag in wav and
    mp3 files (``mood`` as a TXXX frame), Vorbis comments in flac and ogg."""
    import mutagen
    from mutagen import id3

    if path.suffix in (".wav", ".mp3"):
        f = mutagen.File(path) if path.suffix == ".wav" else None
        frames = id3.ID3() if f is None else (f.tags if f.tags is not None else (f.add_tags() or f.tags))
        named = {"title": id3.TIT2, "artist": id3.TPE1, "album": id3.TALB, "genre": id3.TCON}
        for key, value in tags.items():
            frames.add(
                named[key](encoding=3, text=value)
                if key in named
                else id3.TXXX(encoding=3, desc=key.upper(), text=value)
            )
        frames.save(path) if f is None else f.save()
        return
    f = mutagen.File(path)
    for key, value in tags.items():
        f[key] = [value]
    f.save()


def test_the_scan_reads_the_tags_written_into_the_files(tagged):
    """ID3 (wav, mp3) and Vorbis comments (flac, ogg) alike: the named columns, and the rest in
    ``tags``, where ``tag:mood`` finds an ID3 TXXX:MOOD frame as it finds a Vorbis MOOD comment."""
    lib = tagged["lib"]
    rows = {name_of(r[0]): r[1:] for r in lib.sql("SELECT path, artist, title, album, genre FROM tracks").rows}
    for name, (_k, _i, _f, artist, album, genre) in TRACKS.items():
        want = (artist.strip(), f"Song {name}", album, genre) if artist else (None, None, None, None)
        assert rows[name] == want, name
    suffixes = {tagged["paths"][n].suffix for n in TRACKS if TRACKS[n][3]}
    assert suffixes == {".wav", ".flac", ".ogg", ".mp3"}  # both tag kinds are in the library
    with lib.file.connect() as con:
        moods = tag_labels(con, "mood")
    assert len(moods) == TAGGED and set(moods.values()) == {"calm"}


def name_of(path: str) -> str:
    return path.rsplit("/", 1)[1].split(".")[0]


def artist_of(name: str) -> str | None:
    return TRACKS[name][3].strip().lower() if name in TRACKS and TRACKS[name][3] else None


@pytest.mark.slow
def test_rows_carry_artist_title_album_beside_path(cli, tagged):
    out = json.loads(cli("--db", tagged["db"], "similar", tagged["paths"]["a0"], "-n", "50", "-f", "json").stdout)
    assert list(out[0]) == [
        "rank",
        "track_id",
        "path",
        "artist",
        "title",
        "album",
        "distance",
        "duration_sec",
        "cluster_kmeans",
        "cluster_hdbscan",
    ]
    by_name = {name_of(r["path"]): r for r in out}
    assert by_name["b1"]["artist"] == "Artist B" and by_name["b1"]["title"] == "Song b1"
    assert by_name["b1"]["album"] == "Bee"
    assert by_name["u0"]["artist"] is None and by_name["u0"]["title"] is None and by_name["u0"]["album"] is None
    text = cli("--db", tagged["db"], "playlist", tagged["paths"]["a0"], "-n", "4", "-f", "csv").stdout
    header = next(csv.reader(io.StringIO(text)))
    assert header == ["position", "track_id", "path", "artist", "title", "album", "distance", "duration_sec", "seed"]
    assert "Song a0" in text.splitlines()[1]


@pytest.mark.slow
def test_table_shows_artist_title_and_relative_paths(cli, tagged, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    table = cli("--db", tagged["db"], "similar", tagged["paths"]["a0"], "-n", "50").stdout
    lines = table.splitlines()
    assert lines[0].split() == [
        "rank",
        "track_id",
        "track",
        "file",
        "distance",
        "duration_sec",
    ]  # no cluster run yet: the empty cluster columns are left out of the table
    assert "Artist B – Song b0" in table and f"chords/{tagged['paths']['b0'].name}" in table
    assert str(tagged["music"]) not in table  # paths relative to the folder holding them all
    assert "…" not in lines[0] and all(len(line) <= 100 for line in lines)


def test_narrow_table_keeps_headers_and_cuts_paths_at_the_start(cli, tagged, monkeypatch):
    """summary-like rows: long column names stay whole; a long path keeps its end (the file name)."""
    monkeypatch.setenv("COLUMNS", "90")
    query = (
        "SELECT path, duration_sec AS duration_sec_mean, duration_sec AS duration_sec_min, "
        "duration_sec AS duration_sec_max FROM tracks WHERE path LIKE '%/u/%' ORDER BY path"
    )
    lines = cli("--db", tagged["db"], "sql", query).stdout.splitlines()
    assert lines[0].split() == ["path", "duration_sec_mean", "duration_sec_min", "duration_sec_max"]
    assert all(len(line) <= 90 for line in lines)
    first = lines[2].split()[0]
    assert first.startswith("…") and first.endswith(f"/music/u/{tagged['paths']['u0'].name}")


@pytest.mark.slow
def test_similar_exclude_same(cli, tagged):
    def similar(*extra):
        out = cli("--db", tagged["db"], "similar", tagged["paths"]["a0"], "-n", "50", "-f", "json", *extra).stdout
        return [name_of(r["path"]) for r in json.loads(out)]

    plain = similar()
    assert plain[0] in ("a1", "a2", "a3", "u0", "u1")  # its own piece is nearest
    no_artist = similar("--exclude-same", "artist")
    assert not any(artist_of(n) == "artist a" for n in no_artist)  # "artist a " is the same artist
    assert {"u0", "u1"} <= set(no_artist)  # untagged tracks are never "the same artist"
    assert len(no_artist) == 7 * 6 - 1 - 3  # 42 tracks, the query and the other three of A
    no_album = similar("--exclude-same", "album")
    assert "a1" not in no_album and {"a2", "a3"} <= set(no_album)
    no_folder = similar("--exclude-same", "folder")
    assert "a1" not in no_folder and {"a2", "a3", "u0"} <= set(no_folder)
    bad = cli("--db", tagged["db"], "similar", tagged["paths"]["a0"], "--exclude-same", "genre", ok=False)
    assert bad.exit_code == 2 and "artist" in bad.output


@pytest.mark.slow
def test_playlist_max_per_artist_and_album(cli, tagged):
    def playlist(*extra):
        out = cli("--db", tagged["db"], "playlist", tagged["paths"]["a0"], "-n", "8", "-f", "json", *extra).stdout
        return [name_of(r["path"]) for r in json.loads(out)]

    plain = playlist()
    assert sum(artist_of(n) == "artist a" for n in plain) > 2  # so the limit has something to do
    limited = playlist("--max-per-artist", "2")
    assert limited[0] == "a0" and len(limited) == 8  # the seed counts and stays first
    per_artist = {}
    for n in limited:
        if artist_of(n):
            per_artist[artist_of(n)] = per_artist.get(artist_of(n), 0) + 1
    assert max(per_artist.values()) <= 2
    assert {"u0", "u1"} <= set(limited)  # untagged tracks are not limited
    one_album = playlist("--max-per-album", "1")
    albums = [TRACKS[n][4] for n in one_album if n in TRACKS and TRACKS[n][4]]
    assert len(albums) == len(set(albums))
    assert "a1" not in one_album  # a0's album


@pytest.mark.slow
def test_eval_tag_labels_and_filter_same_artist(cli, tagged):
    out = cli(
        "--db", tagged["db"], "eval", "--label-from", "tag:genre", "--filter-same", "artist", "-k", "3", "-f", "json"
    )
    rows_ = json.loads(out.stdout)
    assert all(list(r) == [*EVAL_COLUMNS, *FILTERED_COLUMNS] for r in rows_)
    overall = next(r for r in rows_ if r["label"] == "(all)")
    assert overall["tracks"] == TAGGED  # the untagged tracks have no genre
    # Each artist's own passages are its nearest neighbours: plain figures are perfect,
    # and without them the rock tracks still find the other rock artist, jazz finds nothing.
    assert overall["precision_at_k"] == 1.0
    jazz = next(r for r in rows_ if r["label"] == "jazz")
    assert jazz["precision_at_k_filtered"] == 0.0 and jazz["precision_at_k"] == 1.0
    assert overall["precision_at_k_filtered"] < overall["precision_at_k"]
    assert f"{42 - TAGGED} tracks have no genre tag" in out.output and "own artist" in out.output
    # A key of the tags JSON, in any case; the plain rows keep exactly their keys.
    mood = cli("--db", tagged["db"], "eval", "--label-from", "tag:mood", ok=False)
    assert mood.exit_code != 0 and "at least two labels" in mood.output
    plain = json.loads(cli("--db", tagged["db"], "eval", "--label-from", "tag:artist", "-f", "json").stdout)
    assert all(list(r) == list(EVAL_COLUMNS) for r in plain)
    assert {r["label"] for r in plain} == {"(all)", "Artist A", "Artist B", "Artist C"}  # labels as tagged:
    assert "1 labels have one track only" in cli("--db", tagged["db"], "eval", "--label-from", "tag:artist").output
    missing = cli("--db", tagged["db"], "eval", "--label-from", "tag:composer", ok=False)
    assert missing.exit_code != 0 and "composer" in missing.output and "has the tag" in missing.output


def test_filter_same_does_not_join_unknown_artists(tagged):
    """Tracks without an artist are not "the same artist" as one another: nothing is left out for them."""
    lib = tagged["lib"]
    with lib.file.connect() as con:
        tracks = load_tracks(con, lib.file.params)
        paths = dict(con.execute("SELECT track_id, path FROM track_files").fetchall())
    names = [name_of(paths[int(t)]) for t in tracks.track_ids]
    kinds = {n: TRACKS[n][0] if n in TRACKS else n.rsplit("_", 1)[0] for n in names}
    labels = {int(t): kinds[n] for t, n in zip(tracks.track_ids, names)}
    unknown = evaluate_vectors(tracks, labels, ["notebook"], 1, groups=np.full(len(names), -1))
    assert report_pairs(unknown) and all(r["precision_at_k_filtered"] == r["precision_at_k"] for r in unknown.rows)
    assert unknown.unfiltered == len(names)
    # The six tones without an artist; chords and drums each one artist.
    groups = np.array([{"b": 1, "c": 2}.get(n[0], -1) if n in TRACKS else -1 for n in names])
    by_artist = evaluate_vectors(tracks, labels, ["notebook"], 1, groups=groups)
    tones = next(r for r in by_artist.rows if r["label"] == "tones")
    chords = next(r for r in by_artist.rows if r["label"] == "chords")
    assert tones["accuracy_1nn"] == 1.0 and tones["accuracy_1nn_filtered"] == 1.0  # they still find one another
    assert chords["accuracy_1nn"] == 1.0 and chords["accuracy_1nn_filtered"] == 0.0


def report_pairs(report) -> list[tuple[float, float]]:
    return [(r["precision_at_k"], r["precision_at_k_filtered"]) for r in report.rows]


def test_status_counts_tagged_tracks(cli, tagged):
    info = json.loads(cli("--db", tagged["db"], "status", "-f", "json").stdout)
    assert info["tagged"] == TAGGED and info["tag_errors"] == 0


@pytest.mark.slow
def test_map_hover_shows_artist_title(tagged, tmp_path):
    page = tmp_path / "map.html"
    tagged["lib"].plot(page, color="folder")
    html = page.read_text(encoding="utf-8")
    start = html.index('id="audiodb-data"')
    data = json.loads(html[html.index(">", start) + 1 : html.index("</script>", start)])
    titles = {name.split(".")[0]: title for name, title in zip(data["names"], data["titles"])}
    assert titles["b0"] == "Artist B – Song b0" and titles["u0"] is None
