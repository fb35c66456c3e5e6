"""Opening the library: migrations, a newer schema, and waiting for other processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import duckdb
import pytest
from conftest import run_audiodb

from audiodb.errors import LibraryNotFound, SchemaTooNew
from audiodb.store import connection, migrate


def test_migrations_are_numbered_sql_files_inside_the_package():
    found = migrate.migrations()
    assert found and [v for v, _, _ in found] == sorted({v for v, _, _ in found})
    assert found[0][0] == 1 and all(name.endswith(".sql") and sql.strip() for _, name, sql in found)


def test_blank_file_is_migrated_with_one_version_row_per_migration(db_path):
    with connection.connect(db_path) as con:
        versions = [r[0] for r in con.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()]
        views = {
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_type = 'VIEW'"
            ).fetchall()
        }
    assert versions == [v for v, _, _ in migrate.migrations()]
    assert {"tracks", "features"} <= views


def test_a_failing_migration_leaves_a_new_library_empty_and_an_old_one_at_its_last_step(tmp_path, monkeypatch):
    """A new library is made in one transaction: a failing migration leaves no half-made schema.
    An older library is upgraded one migration a transaction: the steps before the failure stay."""
    from audiodb.errors import DatabaseError

    known = migrate.migrations()
    broken = [*known, (known[-1][0] + 1, "999_broken.sql", "CREATE TABLE nope (x INTEGER); SELECT * FROM missing;")]
    new = tmp_path / "new.duckdb"
    monkeypatch.setattr(migrate, "migrations", lambda: broken)
    with pytest.raises(DatabaseError, match="999_broken.sql failed on"):
        with connection.connect(new):
            pass
    con = duckdb.connect(str(new))
    assert con.execute("SELECT count(*) FROM duckdb_tables()").fetchall() == [(0,)]
    con.close()

    old = tmp_path / "old.duckdb"
    monkeypatch.setattr(migrate, "migrations", lambda: known[:1])
    with connection.connect(old):
        pass
    monkeypatch.setattr(migrate, "migrations", lambda: broken)
    with pytest.raises(DatabaseError, match="999_broken.sql failed on"):
        with connection.connect(old):
            pass
    con = duckdb.connect(str(old))
    versions = [r[0] for r in con.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()]
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    con.close()
    assert versions == [v for v, _, _ in known] and "nope" not in tables


@pytest.mark.slow
def test_migrating_from_every_earlier_version(tmp_path):
    known = migrate.migrations()
    for upto in range(0, len(known)):
        path = tmp_path / f"v{upto}.duckdb"
        con = duckdb.connect(str(path))
        con.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, "
            "applied_at TIMESTAMP NOT NULL)"
        )
        for version, name, sql in known[:upto]:
            con.execute(sql)
            con.execute("INSERT INTO schema_migrations VALUES (?, ?, now())", [version, name])
        con.close()
        with connection.connect(path, read_only=True) as con:  # a reader brings it up to date first
            assert migrate.schema_version(con) == known[-1][0]


def test_a_newer_schema_is_refused_with_advice(db_path):
    with connection.connect(db_path) as con:
        con.execute("INSERT INTO schema_migrations VALUES (999, '999_future.sql', now())")
    for read_only in (False, True):
        with pytest.raises(SchemaTooNew, match="newer audiodb.*999.*pip install -U"):
            with connection.connect(db_path, read_only=read_only):
                pass


def test_reading_a_missing_library_creates_nothing(tmp_path):
    with pytest.raises(LibraryNotFound, match="audiodb scan"):
        with connection.connect(tmp_path / "missing.duckdb", read_only=True):
            pass
    assert not (tmp_path / "missing.duckdb").exists()


HOLD = """
import sys, time
from audiodb.store import connection as db
with db.connect(sys.argv[1], read_only=sys.argv[2] == 'r') as con:
    print('holding', flush=True)
    time.sleep(float(sys.argv[3]))
    print('released', flush=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize("holder", ["w", "r"])
def test_a_second_process_waits_instead_of_failing(db_path, music_dir, holder):
    with connection.connect(db_path):
        pass
    # Long enough that the second process, however slow to start, meets the lock.
    p = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(db_path), holder, "6"], stdout=subprocess.PIPE, text=True, cwd=db_path.parent
    )
    try:
        assert p.stdout.readline().strip() == "holding"
        # A writer while someone holds it (reader or writer): waits, says so, then works.
        out = run_audiodb("--db", db_path, "scan", music_dir, "-f", "json", "-w", "1", cwd=db_path.parent)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["added"] == 5
        assert "Could not set lock" not in out.stderr
        assert p.poll() is not None or p.stdout.readline().strip() == "released"
        assert "Waiting to" in out.stderr and "another audiodb process" in out.stderr
    finally:
        p.wait(timeout=30)
    assert p.returncode == 0


@pytest.mark.slow
def test_readers_share_the_file(db_path):
    with connection.connect(db_path):
        pass
    # The other reader holds the file far longer than the query takes, however loaded the machine.
    p = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(db_path), "r", "60"], stdout=subprocess.PIPE, text=True, cwd=db_path.parent
    )
    try:
        assert p.stdout.readline().strip() == "holding"
        out = run_audiodb("--db", db_path, "sql", "select 42 as x", "-f", "json", cwd=db_path.parent)
        assert out.returncode == 0 and json.loads(out.stdout) == [{"x": 42}]
        assert "Waiting" not in out.stderr
        assert p.poll() is None  # answered while the other reader still held the file
    finally:
        p.kill()
        p.wait(timeout=30)


def test_connections_set_memory_limit_and_threads(db_path, monkeypatch):
    monkeypatch.setenv("AUDIODB_MEMORY_LIMIT", "512MB")
    monkeypatch.setenv("AUDIODB_THREADS", "1")
    with connection.connect(db_path) as con:
        assert con.execute("SELECT current_setting('threads')").fetchone()[0] == 1
        assert (
            "512" in con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
            or "488" in con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        )
    assert os.path.exists(str(db_path) + ".lock")
