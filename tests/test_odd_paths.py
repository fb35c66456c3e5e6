"""File names as real libraries have them: bytes that are not UTF-8, newlines, backslashes.

Every file here is real audio written by the test, renamed to a bytes path made
with ``os.fsencode``/``os.mkdir(b"...")``, so the names are exactly what an old
Latin-1 disk or an unpacked zip leaves on Linux.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.parse

import duckdb
import pytest
from audio import music_like, write_audio
from conftest import AUDIODB, rows
from test_watch import Watch, wait_for

import audiodb
from audiodb.paths import file_uri, from_stored, m3u_entry, to_stored
from audiodb.store import connection, migrate

LATIN1_DIR = b"Bj\xf6rk"
LATIN1_FILE = b"caf\xe9.wav"


def _write(path: bytes, seed: int, tmp_path) -> None:
    """Real audio at a bytes path (the encoders want text names: write, then rename)."""
    ext = os.path.splitext(path)[1].decode()
    plain = tmp_path / f"plain-{seed}{ext}"
    write_audio(plain, music_like(2.0, 22050, seed=seed), 22050)
    os.rename(os.fsencode(plain), path)


@pytest.fixture
def odd_dir(tmp_path):
    """A folder with an ordinary file, a Latin-1 folder with two files, and a name with a newline."""
    root = os.fsencode(tmp_path / "music")
    os.mkdir(root)
    os.mkdir(os.path.join(root, LATIN1_DIR))
    _write(os.path.join(root, b"plain.wav"), 1, tmp_path)
    _write(os.path.join(root, LATIN1_DIR, LATIN1_FILE), 2, tmp_path)
    _write(os.path.join(root, LATIN1_DIR, b"x\xff.flac"), 3, tmp_path)
    _write(os.path.join(root, b"two\nlines.wav"), 4, tmp_path)
    return root


def test_to_stored_leaves_ordinary_paths_alone_and_round_trips_every_byte():
    for p in ["/music/a b/c.mp3", "/música/Ελλάδα/日本.flac", "/m/a\nb.wav", "/m/tab\tname.ogg"]:
        assert to_stored(p) == p and from_stored(p) == p
    every_byte = b"/m/" + bytes(b for b in range(1, 256) if b != ord("/"))
    real = os.fsdecode(every_byte)
    stored = to_stored(real)
    stored.encode("utf-8")  # storable: no surrogates
    assert from_stored(stored) == real and os.fsencode(from_stored(stored)) == every_byte
    assert to_stored(b"/m/Bj\xf6rk/caf\xe9.mp3") == "/m/Bj\\xf6rk/caf\\xe9.mp3"
    assert to_stored("/m/back\\slash") == "/m/back\\\\slash" and from_stored("/m/back\\\\slash") == "/m/back\\slash"
    # A literal "\x41" in a name is not confused with an escaped byte.
    assert from_stored(to_stored("/m/\\x41")) == "/m/\\x41"
    assert urllib.parse.unquote_to_bytes(file_uri(to_stored(real))[len("file://") :]) == every_byte
    assert m3u_entry("/m/plain.mp3") == "/m/plain.mp3" and m3u_entry("/m/a\nb.mp3").startswith("file:///")


@pytest.mark.slow
def test_non_utf8_names_are_indexed_shown_escaped_and_unchanged_on_rescan(cli, odd_dir, db_path):
    result = cli("scan", os.fsdecode(odd_dir), "--workers", "2")
    assert "4 added" in result.output and "0 failed" in result.output, result.output
    stored = {r[0]: r[1:] for r in rows(db_path, "SELECT path, file_name, folder FROM tracks")}
    latin = to_stored(os.path.join(odd_dir, LATIN1_DIR, LATIN1_FILE))
    assert latin.endswith("/Bj\\xf6rk/caf\\xe9.wav") and stored[latin] == ("caf\\xe9.wav", latin.rsplit("/", 1)[0])
    for path in stored:  # each stored path names its real file, byte for byte
        assert os.path.isfile(os.fsencode(from_stored(path)))
    shown = cli("sql", "select path from tracks order by path").output
    assert "Bj\\xf6rk/caf\\xe9.wav" in shown
    again = json.loads(cli("scan", os.fsdecode(odd_dir), "-f", "json").stdout)
    assert again["unchanged"] == 4 and again["added"] == again["updated"] == again["removed"] == 0
    lib = audiodb.Library(db_path)
    report = lib.scan([os.fsdecode(odd_dir)])
    assert report.unchanged == 4 and not report.changes
    # A move of a Latin-1 folder is a move (same track ids), and a removal is a removal.
    ids = dict(rows(db_path, "SELECT path, track_id FROM tracks"))
    os.rename(os.path.join(odd_dir, LATIN1_DIR), os.path.join(odd_dir, b"Bj\xf6rk-moved\xe9"))
    report = lib.scan([os.fsdecode(odd_dir)])
    assert report.moved == 2 and report.added == report.removed == 0
    moved = to_stored(os.path.join(odd_dir, b"Bj\xf6rk-moved\xe9", LATIN1_FILE))
    assert dict(rows(db_path, "SELECT path, track_id FROM tracks"))[moved] == ids[latin]
    os.remove(os.path.join(odd_dir, b"Bj\xf6rk-moved\xe9", LATIN1_FILE))
    report = lib.scan([os.fsdecode(odd_dir)])
    assert [(c.kind, c.path) for c in report.changes] == [("removed", moved)]


@pytest.mark.slow
def test_similar_and_playlist_take_a_non_utf8_path_as_argument(cli, odd_dir, db_path, tmp_path):
    cli("scan", os.fsdecode(odd_dir), "--workers", "2")
    real = os.fsdecode(os.path.join(odd_dir, LATIN1_DIR, LATIN1_FILE))
    stored = to_stored(real)
    for ref in (real, stored):  # the real name (as a shell passes it) or the printed form
        out = json.loads(cli("similar", ref, "-n", "3", "-f", "json").stdout)
        assert len(out) == 3 and stored not in {r["path"] for r in out}
    out = json.loads(cli("playlist", real, "-n", "4", "-f", "json").stdout)
    assert out[0]["path"] == stored and out[0]["track_id"] is not None
    # A real process given the raw bytes in argv, as a shell would.
    proc = subprocess.run(
        AUDIODB + ["--db", str(db_path), "similar", os.fsencode(real), "-n", "3", "-f", "json"],
        capture_output=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert len(json.loads(proc.stdout)) == 3
    # A file that is not indexed, with a non-UTF-8 name, is analysed on the fly.
    outside = os.path.join(os.fsencode(tmp_path), b"q\xe4ery.wav")
    _write(outside, 5, tmp_path)
    out = json.loads(cli("similar", os.fsdecode(outside), "-n", "2", "-f", "json").stdout)
    assert len(out) == 2


def _m3u_files(text: str) -> list[bytes]:
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U"
    entries = [line for line in lines[1:] if not line.startswith("#")]
    assert len([line for line in lines if line.startswith("#EXTINF")]) == len(entries)
    out = []
    for e in entries:
        if e.startswith("file://"):
            out.append(urllib.parse.unquote_to_bytes(urllib.parse.urlparse(e).path))
        else:
            out.append(e.encode("utf-8"))
    return out


@pytest.mark.slow
def test_every_m3u_entry_is_one_line_a_player_opens(cli, odd_dir, tmp_path):
    cli("scan", os.fsdecode(odd_dir), "--workers", "2")
    seeds = [os.fsdecode(os.path.join(odd_dir, n)) for n in (b"two\nlines.wav", os.path.join(LATIN1_DIR, LATIN1_FILE))]
    out = tmp_path / "mix.m3u"
    cli("playlist", *seeds, "-n", "4", "-o", out)
    written = out.read_text(encoding="utf-8")
    files = _m3u_files(written)
    assert len(files) == 4 and len(set(files)) == 4
    for f in files:
        with open(f, "rb") as audio:  # the entry opens the real file
            assert audio.read(4) in (b"RIFF", b"fLaC")
    assert os.path.join(odd_dir, b"two\nlines.wav") in files
    assert os.path.join(odd_dir, b"plain.wav").decode() in written  # ordinary paths as they are
    similar = cli("similar", seeds[1], "-n", "3", "--format", "m3u").stdout
    for f in _m3u_files(similar):
        assert os.path.isfile(f)


@pytest.mark.slow
def test_watcher_indexes_a_non_utf8_file_created_under_it_and_keeps_running(tmp_path):
    root = tmp_path / "watched"
    root.mkdir()
    write_audio(root / "first.wav", music_like(1.5, 22050, seed=1), 22050)
    w = Watch(tmp_path, root, "--reconcile", "2")
    try:
        os.mkdir(os.path.join(os.fsencode(root), LATIN1_DIR))
        new = os.path.join(os.fsencode(root), LATIN1_DIR, LATIN1_FILE)
        _write(new, 7, tmp_path)
        wait_for(lambda: any(e.get("path") == to_stored(new) and e["kind"] == "added" for e in w.events()), timeout=120)
        # Several reconcile scans later it is still running and the file still indexed once.
        time.sleep(5)
        assert w.proc.poll() is None, w.stderr()
        assert [e["kind"] for e in w.events() if e.get("path") == to_stored(new)] == ["added"]
    finally:
        assert w.stop() == 0, w.stderr()
    assert "Traceback" not in w.stderr()
    assert rows(w.db, "SELECT count(*) FROM track_files WHERE path = ?", to_stored(new))[0][0] == 1


@pytest.mark.slow
def test_migration_004_doubles_old_backslashes_so_their_tracks_keep_their_identity(tmp_path, db_path):
    """A library from before 004 stored a backslash as itself: after migrating, the
    file is the same track (unchanged, same id), not a removal plus an addition."""
    root = tmp_path / "m"
    root.mkdir()
    write_audio(root / "back\\slash.wav", music_like(1.0, 22050, seed=1), 22050)
    write_audio(root / "plain.wav", music_like(1.0, 22050, seed=2), 22050)
    audiodb.Library(db_path).scan([root])
    before = dict(rows(db_path, "SELECT path, track_id FROM track_files"))
    # Make it what audiodb stored at schema 003: a library built by migrations 001-003 only, holding
    # the same rows, with the raw path.
    lib = tmp_path / "at-003.duckdb"
    con = duckdb.connect(str(lib))
    con.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, "
        "applied_at TIMESTAMP NOT NULL)"
    )
    for version, name, sql in migrate.migrations()[:3]:
        con.execute(sql)
        con.execute("INSERT INTO schema_migrations VALUES (?, ?, now())", [version, name])
    con.execute(f"ATTACH '{db_path}' AS cur (READ_ONLY)")
    cols = (
        "track_id, path, file_name, folder, size, mtime_ns, content_hash, duration_sec, sample_rate, "
        "native_sample_rate, channels, codec, container, decoder, indexed_at"
    )
    con.execute(f"INSERT INTO track_files ({cols}) SELECT {cols} FROM cur.track_files")
    for table in ("feature_sets", "embeddings", "extended_embeddings"):
        con.execute(f"INSERT INTO {table} SELECT * FROM cur.{table}")
    con.execute("DETACH cur")
    con.execute(
        "UPDATE track_files SET path = replace(path, '\\\\', '\\'), "
        "file_name = replace(file_name, '\\\\', '\\') WHERE contains(path, '\\')"
    )
    con.execute("INSERT INTO failures VALUES (?, 1, 1, 'old', now())", [str(root / "bad\\name.wav")])
    assert sorted(r[0] for r in con.execute("SELECT path FROM track_files").fetchall()) == [
        str(root / "back\\slash.wav"),
        str(root / "plain.wav"),
    ]
    con.close()
    db_path = lib
    with connection.connect(db_path, read_only=True) as con:  # a reader brings it up to date
        assert migrate.schema_version(con) == migrate.migrations()[-1][0]
        assert con.execute("SELECT path FROM failures").fetchall() == [(to_stored(str(root / "bad\\name.wav")),)]
    assert dict(rows(db_path, "SELECT path, track_id FROM track_files")) == before
    report = audiodb.Library(db_path).scan([root])
    assert report.unchanged == 2 and not report.changes
    assert dict(rows(db_path, "SELECT path, track_id FROM track_files")) == before
    assert from_stored(to_stored(str(root / "back\\slash.wav"))) == str(root / "back\\slash.wav")


def test_scan_cli_names_a_non_utf8_folder_that_is_missing(tmp_path):
    gone = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"gon\xe9"))
    out = subprocess.run(
        AUDIODB + ["--db", str(tmp_path / "x.duckdb"), "scan", os.fsencode(gone)],
        capture_output=True,
        text=True,
        errors="replace",
        cwd=tmp_path,
        timeout=300,
    )
    assert out.returncode != 0 and "gon\\xe9" in out.stderr and "Traceback" not in out.stderr, out.stderr


@pytest.mark.slow
def test_a_non_utf8_name_is_decoded_as_the_same_file_under_a_plain_name(tmp_path, db_path):
    root = tmp_path / "m"
    root.mkdir()
    write_audio(root / "plain.mp3", music_like(2.0, 44100, seed=3), 44100)
    with open(root / "plain.mp3", "rb") as f:
        data = f.read()
    with open(os.path.join(os.fsencode(root), b"caf\xe9.mp3"), "wb") as f:
        f.write(data)
    audiodb.Library(db_path).scan([root], workers=1)
    got = rows(
        db_path,
        "SELECT t.path, t.decoder, e.vector FROM track_files t JOIN embeddings e USING (track_id) ORDER BY t.path",
    )
    assert len(got) == 2 and got[0][1] == got[1][1] == "libsndfile", [g[:2] for g in got]
    assert got[0][2] == got[1][2]
