"""The commands, through click's runner, on real files and a real library file."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import click
import pytest
from conftest import run_audiodb

from audiodb.cli import COMMAND_MODULES, main


def test_every_command_has_help_with_an_example(cli):
    ctx = click.Context(main)
    names = main.list_commands(ctx)
    for name in names:
        command = main.get_command(ctx, name)
        assert command is not None and command.name == name, name
        assert command.help and len(command.help) > 40, name
        result = cli(name, "--help")
        assert "Usage: audiodb" in result.output
        assert "--db" in result.output or name == "demo"  # demo writes audio, not a library
    # Every module of commands is loaded now: none registers a command the lazy list does not name.
    assert set(main.commands) == set(COMMAND_MODULES) == set(names)


@pytest.mark.slow
def test_scan_json_is_exactly_one_object_of_integer_counts(cli, music_dir):
    result = cli("scan", music_dir, "--format", "json", "--workers", "2")
    obj = json.loads(result.stdout)
    assert set(obj) == {"added", "updated", "moved", "removed", "unchanged", "failed", "skipped"}
    assert all(isinstance(v, int) for v in obj.values()) and obj["added"] == 5
    again = json.loads(cli("scan", music_dir, "--format", "json").stdout)
    assert again["unchanged"] == 5 and again["added"] == 0


@pytest.mark.slow
def test_scan_table_summary_and_dry_run(cli, music_dir):
    out = cli("scan", music_dir, "--dry-run").output
    assert "Would change: 5 added" in out and "added" in out
    out = cli("scan", music_dir).output
    assert "Indexed: 5 added" in out
    (music_dir / "a" / "one.wav").unlink()
    out = cli("scan", music_dir, "--dry-run", "--format", "json").stdout
    obj = json.loads(out)
    assert obj["removed"] == 1 and obj["plan"] == [{"kind": "removed", "path": str(music_dir / "a" / "one.wav")}]


@pytest.mark.slow
def test_status_and_failures(cli, music_dir, db_path):
    (music_dir / "broken.ogg").write_bytes(b"OggS" + b"\x01" * 200)
    cli("scan", music_dir)
    status = json.loads(cli("status", "--format", "json").stdout)
    assert status["tracks"] == 5 and status["failures"] == 1 and status["db_path"] == str(db_path)
    assert status["db_size_bytes"] > 0 and status["feature_set"].startswith("notebook-")
    assert "tracks" in cli("status").output
    fails = json.loads(cli("failures", "--format", "json").stdout)
    assert [f["path"] for f in fails] == [str(music_dir / "broken.ogg")]
    assert fails[0]["reason"] and fails[0]["failed_at"]


@pytest.mark.slow
def test_sql_in_every_format(cli, music_dir):
    cli("scan", music_dir)
    q = "select file_name, duration_sec from tracks order by file_name"
    as_json = json.loads(cli("sql", q, "--format", "json").stdout)
    assert [r["file_name"] for r in as_json] == sorted(p.name for p in music_dir.rglob("*") if p.is_file())
    lines = cli("sql", q, "--format", "jsonl").stdout.strip().splitlines()
    assert [json.loads(x) for x in lines] == as_json
    table = list(csv.reader(io.StringIO(cli("sql", q, "-f", "csv").stdout)))
    assert table[0] == ["file_name", "duration_sec"] and len(table) == 6
    out = cli("sql", q).stdout
    assert out.splitlines()[0].split() == ["file_name", "duration_sec"] and "one.wav" in out


@pytest.mark.slow
def test_features_view_has_the_notebooks_columns(cli, music_dir):
    from audiodb.analysis.params import FEATURE_NAMES

    cli("scan", music_dir)
    cols = json.loads(cli("sql", "select * from features limit 1", "-f", "json").stdout)[0]
    assert list(cols) == ["track_id", "path", *FEATURE_NAMES]


@pytest.mark.slow
def test_sql_is_read_only_unless_write(cli, music_dir):
    cli("scan", music_dir)
    refused = cli("sql", "delete from track_files", ok=False)
    assert refused.exit_code == 1 and "--write" in refused.output
    assert json.loads(cli("sql", "select count(*) as n from tracks", "-f", "json").stdout) == [{"n": 5}]
    cli("sql", "create table notes (track_id bigint, note varchar)", "--write")
    assert json.loads(cli("sql", "select count(*) as n from notes", "-f", "json").stdout) == [{"n": 0}]


@pytest.mark.slow
def test_sql_errors_say_what_happened(cli, music_dir):
    cli("scan", music_dir)
    result = cli("sql", "select nope from tracks", ok=False)
    assert result.exit_code == 1 and "nope" in result.output


@pytest.mark.slow
def test_database_location_precedence(tmp_path, cli, music_dir, monkeypatch):
    env_db, opt_db, sub_db = tmp_path / "env.duckdb", tmp_path / "opt.duckdb", tmp_path / "sub.duckdb"
    monkeypatch.setenv("AUDIODB_DB", str(env_db))
    cli("scan", music_dir)
    cli("--db", opt_db, "scan", music_dir / "a")
    cli("scan", music_dir / "b", "--db", sub_db)
    assert json.loads(cli("status", "-f", "json").stdout)["tracks"] == 5
    assert json.loads(cli("--db", opt_db, "status", "-f", "json").stdout)["tracks"] == 2
    assert json.loads(cli("status", "-f", "json", "--db", sub_db).stdout)["tracks"] == 2
    # Without --db or AUDIODB_DB: the user's data directory.
    monkeypatch.delenv("AUDIODB_DB")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cli("scan", music_dir / "a")
    assert (tmp_path / "xdg" / "audiodb" / "library.duckdb").exists()


def test_no_library_yet_says_what_to_do(cli, tmp_path):
    result = cli("--db", tmp_path / "none.duckdb", "status", ok=False)
    assert result.exit_code == 1 and "audiodb scan" in result.output
    assert not (tmp_path / "none.duckdb").exists()


@pytest.mark.slow
def test_demo_then_scan_end_to_end(cli, tmp_path):
    out = cli("demo", tmp_path / "demo").output
    assert "audiodb scan" in out
    obj = json.loads(cli("scan", tmp_path / "demo", "-f", "json").stdout)
    assert obj["added"] >= 20 and obj["failed"] == 0
    folders = json.loads(cli("sql", "select count(distinct folder) as n from tracks", "-f", "json").stdout)
    assert folders[0]["n"] >= 5


@pytest.mark.slow
def test_the_console_script_runs_as_a_real_process(tmp_path, music_dir):
    env = dict(os.environ, AUDIODB_DB=str(tmp_path / "p.duckdb"))
    out = run_audiodb("scan", music_dir, "-f", "json", cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["added"] == 5
    assert "Analysing" not in out.stderr  # no progress bar when not on a terminal


def test_help_does_not_import_heavy_modules():
    code = (
        "import sys; from audiodb.cli import main; "
        "heavy = [m for m in ('librosa', 'umap', 'hdbscan', 'sklearn', 'numba', 'duckdb') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd="/")
    assert out.returncode == 0 and out.stdout.strip() == "", out.stdout + out.stderr


@pytest.mark.parametrize("bad", [["scan"], ["scan", "x", "--workers", "0"], ["sql"]])
def test_usage_errors_exit_2(cli, bad):
    assert cli(*bad, ok=False).exit_code == 2


def test_a_usage_error_shows_the_commands_own_usage(cli, tmp_path):
    """A UsageError raised by the library prints the command's usage and help hint, not the group's."""
    result = cli("--db", tmp_path / "lib.duckdb", "scan", tmp_path / "nope", ok=False)
    assert result.exit_code == 2 and "Folder not found" in result.output
    assert "Usage: audiodb scan [OPTIONS]" in result.output and "Try 'audiodb scan --help' for help." in result.output


def test_every_note_has_the_one_prefix():
    """Notes go through cli.common.note (prefix "Note: "): no command spells a prefix of its own
    (there were four: "warning:", "note:", "Note:" and none)."""
    import pathlib
    import re

    import audiodb.cli
    from audiodb.cli.common import NOTE_PREFIX

    assert NOTE_PREFIX == "Note: "
    spelled = re.compile(r"""["'](warning|note|Note|Warning):""")
    for path in pathlib.Path(audiodb.cli.__file__).parent.glob("*.py"):
        if path.name != "common.py":
            assert not spelled.search(path.read_text(encoding="utf-8")), path


@pytest.mark.process
def test_the_real_command_exits_with_its_status_and_all_its_output(tmp_path, db_path):
    """``audiodb`` ends its process without tearing the interpreter down (cli.run): the exit
    status is the command's and every line written to a pipe arrives."""
    run_audiodb("--db", db_path, "sql", "select 1", "--write", cwd=tmp_path)  # creates the library
    out = run_audiodb("--db", db_path, "sql", "select range AS n from range(50000)", "-f", "csv", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["n", *map(str, range(50000))]
    out = run_audiodb("no-such-command", cwd=tmp_path)
    assert out.returncode == 2 and "No such command" in out.stderr
    out = run_audiodb("--db", tmp_path / "none.duckdb", "status", cwd=tmp_path)
    assert out.returncode == 1 and "No audiodb library" in out.stderr
