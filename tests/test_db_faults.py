"""The library file under faults: damaged on disk, a full disk, a foreign lock, Ctrl-C."""

from __future__ import annotations

import os
import shutil

import pytest
from audio import music_like, write_audio
from click.testing import CliRunner
from conftest import rows, run_audiodb

import audiodb


def invoke(*args):
    from audiodb.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], prog_name="audiodb")


def make_music(root, n, seconds=1.0, start=0):
    root.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n):
        write_audio(root / f"t{i:03d}.wav", music_like(seconds, 22050, seed=i), 22050)
    return root


def snapshot(path):
    st = path.stat()
    return path.read_bytes(), st.st_mtime_ns, st.st_size


# -- a damaged library file -------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_library(tmp_path_factory):
    base = tmp_path_factory.mktemp("good")
    music = make_music(base / "music", 3, seconds=2.0)
    result = run_audiodb("--db", base / "lib.duckdb", "scan", music, "--workers", "1", cwd=base)
    assert result.returncode == 0, result.stderr
    return base / "lib.duckdb", music


def tracks_block(db) -> int:
    """Where the block holding the tracks' rows starts in the library file ``db`` (DuckDB: three
    4 KiB headers, then blocks of 256 KiB). Garbage there hits what every command reads, wherever
    the file's layout puts it."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        (block,) = con.execute(
            "SELECT min(block_id) FROM pragma_storage_info('track_files') WHERE block_id >= 0"
        ).fetchone()
        (size,) = con.execute("SELECT block_size FROM pragma_database_size()").fetchone()
    finally:
        con.close()
    return 3 * 4096 + block * size


def damage(data: bytes, how: str, block: int) -> bytes:
    n = len(data)
    if how == "truncated":
        return data[: n // 3]
    if how == "cut-in-header":
        return data[:3000]
    b = bytearray(data)
    if how == "garbage-in-middle":
        b[block + 64 : block + 64 + 20000] = os.urandom(20000)  # in the tracks' block
    elif how == "garbage-in-header":
        b[4096 : 4096 + 8192] = os.urandom(8192)
    elif how == "random-bytes":
        return os.urandom(n // 4)
    elif how == "empty":
        return b""
    return bytes(b)


@pytest.mark.slow
@pytest.mark.parametrize(
    "how", ["truncated", "cut-in-header", "garbage-in-middle", "garbage-in-header", "random-bytes", "empty"]
)
def test_a_damaged_library_gives_one_clear_message_and_is_not_written(tmp_path, good_library, how):
    good, music = good_library
    db = tmp_path / "lib.duckdb"
    db.write_bytes(damage(good.read_bytes(), how, tracks_block(good)))
    before = snapshot(db)
    for command in (
        ["status"],
        ["similar", music / "t000.wav"],
        ["scan", music, "--workers", "1"],
        ["sql", "select * from features, extended_features"],  # both vector tables: wherever the damage lands
    ):
        result = invoke("--db", db, *command)
        assert result.exit_code == 1, (command, result.output)
        assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), (
            command,
            result.exception,
        )
        text = result.output
        assert "Traceback" not in text and str(db) in text and "damaged" in text, (command, text)
        assert "backup" in text and "scan" in text, text
        assert snapshot(db) == before, command
        assert not os.path.exists(str(db) + ".wal")


@pytest.mark.slow
def test_a_damaged_library_moved_aside_is_rebuilt_by_a_rescan(tmp_path, good_library):
    good, music = good_library
    db = tmp_path / "lib.duckdb"
    db.write_bytes(damage(good.read_bytes(), "garbage-in-middle", tracks_block(good)))
    result = run_audiodb("--db", db, "status", cwd=tmp_path)  # a real process: no traceback at all
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "damaged" in result.stderr and str(db) in result.stderr
    shutil.move(db, str(db) + ".damaged")
    assert invoke("--db", db, "scan", music, "--workers", "1").exit_code == 0
    assert sorted(os.path.basename(p) for (p,) in rows(db, "select path from tracks")) == [
        "t000.wav",
        "t001.wav",
        "t002.wav",
    ]


# -- a full disk ----------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 8 MB tmpfs (CI runs as root); skipped with the reason where mounting is refused."""
    import subprocess

    mnt = tmp_path / "small"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8M", "tmpfs", str(mnt)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip() or done.returncode}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.slow
def test_a_full_disk_says_so_in_one_line_keeps_the_library_and_a_rescan_finishes(tmp_path, small_disk):
    music = make_music(tmp_path / "music", 3, seconds=0.5)
    db = small_disk / "lib.duckdb"
    env = {**os.environ, "AUDIODB_DB": str(db), "AUDIODB_BATCH_SIZE": "8"}
    first = run_audiodb("scan", music, "--workers", "1", cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    make_music(music, 40, seconds=0.5, start=3)
    free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
    filler = small_disk / "filler"
    with open(filler, "wb") as f:  # leave 64 KB: the next batches cannot all fit
        f.write(b"\0" * (free - 64 * 1024))

    full = run_audiodb("scan", music, "--workers", "2", cwd=tmp_path, env=env)
    assert full.returncode == 1
    assert full.stderr.count("\n") == 1 and "Traceback" not in full.stderr, full.stderr
    assert "disk is full" in full.stderr and str(small_disk) in full.stderr
    kept = rows(
        db,
        "select t.path, count(e.track_id) from track_files t left join embeddings e using (track_id) group by t.path",
    )
    assert {os.path.basename(p) for p, _ in kept} >= {"t000.wav", "t001.wav", "t002.wav"}
    assert all(n == 1 for _, n in kept)  # whole rows only

    filler.unlink()
    again = run_audiodb("scan", music, "--workers", "2", cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr
    assert rows(
        db,
        "select count(*), count(distinct path), (select count(*) from embeddings), "
        "(select count(*) from extended_embeddings) from track_files",
    ) == [(43, 43, 43, 43)]


# -- a foreign program holding the library ------------------------------------------------------

HOLDER = """
import duckdb, os, sys, time
con = duckdb.connect(sys.argv[1])  # as a duckdb shell or a notebook would
con.execute("select count(*) from track_files").fetchall()
print("held", flush=True)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.05)
con.close()
"""


@pytest.mark.slow
def test_watch_waits_for_a_foreign_lock_past_the_timeout_and_goes_on(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from conftest import AUDIODB
    from test_watch import tracks, wait_for

    root = make_music(tmp_path / "music", 1, seconds=0.5)
    db, release = tmp_path / "lib.duckdb", tmp_path / "release"
    env = {**os.environ, "AUDIODB_LOCK_TIMEOUT": "1"}
    err = open(tmp_path / "watch.err", "w+")
    watcher = subprocess.Popen(
        AUDIODB + ["--db", str(db), "watch", str(root), "--settle", "0.3", "-w", "1"],
        stdout=subprocess.DEVNULL,
        stderr=err,
        cwd=tmp_path,
        env=env,
    )

    def stderr():
        return (tmp_path / "watch.err").read_text()

    holder = None
    try:
        wait_for(lambda: "Caught up" in stderr(), timeout=120)
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(db), str(release)], stdout=subprocess.PIPE, text=True, cwd=tmp_path
        )
        assert holder.stdout.readline().strip() == "held"
        write_audio(root / "new.wav", music_like(0.5, 22050, seed=99), 22050)
        wait_for(lambda: "Waiting for the library" in stderr(), timeout=60)
        # A one-shot command keeps its clear timeout error, naming who holds the file.
        one_shot = run_audiodb("--db", db, "status", cwd=tmp_path, env=env)
        assert one_shot.returncode == 1 and "Traceback" not in one_shot.stderr
        assert "held by another program" in one_shot.stderr and f"PID {holder.pid}" in one_shot.stderr
        time.sleep(3)  # well past AUDIODB_LOCK_TIMEOUT (1 s) for the watcher too
        assert watcher.poll() is None, stderr()
        release.touch()
        assert holder.wait(timeout=30) == 0
        names = lambda: [os.path.basename(p) for p in tracks(db)]  # noqa: E731  (through audiodb's lock)
        wait_for(lambda: "new.wav" in names(), timeout=60)
        assert watcher.poll() is None, stderr()
        text = stderr()
        assert text.count("Waiting for the library") == 1, text
        assert f"PID {holder.pid}" in text and "Traceback" not in text
        assert sorted(names()) == ["new.wav", "t000.wav"]
    finally:
        release.touch()
        if holder is not None:
            holder.wait(timeout=30)
        watcher.send_signal(signal.SIGTERM)
        code = watcher.wait(timeout=30)
    assert code == 0, stderr()


# -- Ctrl-C during a scan ------------------------------------------------------------------------


@pytest.mark.slow
def test_ctrl_c_during_scan_says_what_was_saved_and_the_next_scan_continues(tmp_path):
    import fcntl
    import re
    import signal
    import subprocess

    import duckdb
    from conftest import AUDIODB
    from test_watch import wait_for

    # Long enough that Ctrl-C lands mid-scan (short files go to the workers 5 or so at a time).
    music = make_music(tmp_path / "music", 80, seconds=8.0)
    db = tmp_path / "lib.duckdb"
    env = {**os.environ, "AUDIODB_DB": str(db), "AUDIODB_BATCH_SIZE": "4"}
    # Its own process group, signalled as a whole: what Ctrl-C in a terminal does.
    scan = subprocess.Popen(
        AUDIODB + ["scan", str(music), "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=env,
        start_new_session=True,
    )

    def interrupted_mid_scan() -> bool:
        # Under audiodb's shared sidecar lock the scan cannot commit: Ctrl-C sent while it is held,
        # once 4 files are saved, lands mid-scan however fast the rest would go.
        fd = os.open(str(db) + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            try:
                con = duckdb.connect(str(db), read_only=True)
            except duckdb.Error:  # not created yet
                return False
            try:
                n = con.execute("select count(*) from track_files").fetchone()[0]
            except duckdb.Error:
                n = 0
            finally:
                con.close()
            if n >= 4:
                os.killpg(scan.pid, signal.SIGINT)
                return True
            return False
        finally:
            os.close(fd)

    wait_for(lambda: scan.poll() is not None or interrupted_mid_scan(), timeout=120, every=0.05)
    assert scan.poll() is None or scan.returncode == 130, "the scan ended before Ctrl-C: nothing was tested"
    out, err = scan.communicate(timeout=60)
    assert scan.returncode == 130, err
    assert "Aborted!" not in err and "Traceback" not in err, err
    m = re.search(r"Interrupted: (\d+) analysed files were saved to (.+?)\. .*next `audiodb scan`", err)
    assert m, err
    ((count,),) = rows(db, "select count(*) from tracks")
    assert int(m.group(1)) == count and 4 <= count < 80 and m.group(2) == str(db)

    again = run_audiodb("scan", music, "--workers", "2", "-f", "json", cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr
    import json

    counts = json.loads(again.stdout)
    assert counts["unchanged"] == count and counts["added"] == 80 - count
    assert rows(db, "select count(*), count(distinct path) from track_files") == [(80, 80)]


@pytest.mark.slow
def test_ctrl_c_inside_a_duckdb_statement_is_a_keyboard_interrupt(db_path):
    """DuckDB turns SIGINT during a statement into RuntimeError('Query interrupted'); audiodb makes it
    the KeyboardInterrupt every command handles (scan's 'Interrupted: N files were saved' and exit 130)."""
    import signal
    import threading

    lib = audiodb.Library(db_path)
    lib.sql("select 1", write=True)  # the library exists
    done = threading.Event()

    def press_ctrl_c():  # again every half second, until the statement has stopped
        while not done.wait(0.5):
            os.kill(os.getpid(), signal.SIGINT)

    # Python's own handler, whatever an earlier test or library installed (a command has it).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    threading.Thread(target=press_ctrl_c, daemon=True).start()
    try:
        with pytest.raises(KeyboardInterrupt):
            # Finite (tens of seconds) if it were never interrupted: then the test fails, it does not hang.
            lib.sql("select count(*) from range(2000000000) a, range(10) b")
    finally:
        done.set()
        signal.signal(signal.SIGINT, previous)


def test_a_duckdb_file_of_something_else_is_refused_and_left_alone(tmp_path):
    import duckdb

    music = tmp_path / "music"
    music.mkdir()
    write_audio(music / "a.wav", music_like(1.0, 22050), 22050)
    db = tmp_path / "birds.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE sightings (species VARCHAR, seen DATE)")
    con.execute("INSERT INTO sightings VALUES ('wren', '2026-05-01')")
    con.close()
    before = snapshot(db)
    for command in (["status"], ["scan", music, "--workers", "1"], ["sql", "select 1"]):
        result = invoke("--db", db, *command)
        assert result.exit_code == 1, (command, result.output)
        text = result.output
        assert "Traceback" not in text and "not an audiodb library" in text and "sightings" in text, (command, text)
        assert snapshot(db) == before, command
    con = duckdb.connect(str(db), read_only=True)
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    con.close()
    assert tables == {"sightings"}


# -- a library where nothing can be written ---------------------------------------------------


@pytest.mark.parametrize("where", ["under-a-file", "in-proc"])
def test_a_library_where_nothing_can_be_written_gives_one_clear_line(tmp_path, where):
    """Even as root: a folder that is a file, or /proc. A scan (of audio, of an empty folder) says
    what is wrong in one line, with no traceback, and writes nothing (the library is made in a
    thread of its own: its error is the one reported)."""
    music = make_music(tmp_path / "music", 2, seconds=1.0)
    (tmp_path / "empty").mkdir()
    if where == "under-a-file":
        (tmp_path / "afile").write_bytes(b"not a folder")
        db, told = tmp_path / "afile" / "lib.duckdb", "is a file, not a folder"
    else:
        db, told = f"/proc/audiodb-test-{os.getpid()}.duckdb", "No such file or directory"
    for folder in (music, tmp_path / "empty"):
        result = run_audiodb("--db", db, "scan", folder, cwd=tmp_path)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1 and "Cannot write the library" in result.stderr, result.stderr
        assert told in result.stderr and "--db" in result.stderr, result.stderr
    assert not os.path.exists(db)
