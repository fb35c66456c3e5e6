"""`audiodb sql` without --write writes nothing anywhere; CSV and JSON carry every digit."""

from __future__ import annotations

import csv
import io
import json
import os

import numpy as np
import pytest
from audio import music_like, write_audio
from click.testing import CliRunner
from conftest import rows


def invoke(*args, input=None):
    from audiodb.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], input=input, prog_name="audiodb")


def snapshot(path):
    return (path.read_bytes(), path.stat().st_mtime_ns) if path.exists() else None


@pytest.fixture
def library(tmp_path, db_path):
    assert invoke("sql", "create table t as select 1 as a", "--write").exit_code == 0
    return db_path


WRITERS = [
    "copy (select 1) to '{target}'",
    "copy t to '{target}' (format csv)",
    "export database '{folder}'",
    "explain analyze copy (select 1) to '{target}'",
    "select 1; copy (select 2) to '{target}'",
    "pragma profiling_output = '{target}'",
    "set profiling_output = '{target}'",
    "install json",
    "create table t2 (a int)",
]


@pytest.mark.parametrize("statement", WRITERS)
def test_sql_without_write_writes_nothing_anywhere(tmp_path, library, statement):
    other = tmp_path / "other.duckdb"  # another library: once overwritten by a 4-byte CSV
    assert invoke("--db", other, "sql", "create table keep as select 42 as v", "--write").exit_code == 0
    before = snapshot(other), snapshot(library)
    folder = tmp_path / "exported"
    query = statement.format(target=other, folder=folder)
    result = invoke("sql", query)
    assert result.exit_code == 1, result.output
    assert "--write" in result.output and "Traceback" not in result.output
    assert (snapshot(other), snapshot(library)) == before
    assert not folder.exists()
    assert rows(other, "select v from keep") == [(42,)]


def test_sql_without_write_still_reads_files_the_user_names(tmp_path, library):
    data = tmp_path / "notes.csv"
    data.write_text("track,note\n1,loud\n2,quiet\n")
    result = invoke("sql", f"select note from read_csv('{data}') order by track", "-f", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [{"note": "loud"}, {"note": "quiet"}]
    explained = invoke("sql", "explain analyze select count(*) from t")
    assert explained.exit_code == 0, explained.output
    info = invoke("sql", "pragma table_info('t')", "-f", "json")
    assert info.exit_code == 0 and json.loads(info.output)[0]["name"] == "a"


def test_sql_with_write_runs_copy(tmp_path, library):
    target = tmp_path / "out.csv"
    assert invoke("sql", f"copy t to '{target}'", "--write").exit_code == 0
    assert target.read_text().split() == ["a", "1"]


@pytest.mark.parametrize("query", ["", "   ", ";", "/* only a comment */"])
def test_empty_query_is_a_usage_error(library, query):
    result = invoke("sql", query)
    assert result.exit_code == 2, result.output
    assert "empty" in result.output or "no statement" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_sql_dash_reads_the_query_from_standard_input(library):
    result = invoke("sql", "-", "-f", "json", input="select a + 1 as b\nfrom t;\n")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [{"b": 2}]
    empty = invoke("sql", "-", input="")
    assert empty.exit_code == 2 and "empty" in empty.output


VALUES = [
    0.1,
    1 / 3,
    2 / 3,
    1e-310,
    5e-324,
    123456789.12345679,
    -7.000000000000001,
    1e22,
    6.02214076e23,
    0.30000000000000004,
]


def test_csv_and_json_round_trip_doubles_and_floats_exactly(library, db_path):
    rng = np.random.default_rng(7)
    values = VALUES + [float(v) for v in rng.standard_normal(40) * 10.0 ** rng.integers(-30, 30, 40)]
    literal = ", ".join(f"({i}, {v!r})" for i, v in enumerate(values))
    sql = (
        f"create table nums as select i, v as d, v::float as f, [v::float, (v / 3)::float] as fl "
        f"from (values {literal}) as x(i, v)"
    )
    assert invoke("sql", sql, "--write").exit_code == 0
    stored = rows(db_path, "select i, d, f, fl from nums order by i")
    out = invoke("sql", "select i, d, f, fl from nums order by i", "-f", "csv")
    assert out.exit_code == 0, out.output
    parsed = list(csv.reader(io.StringIO(out.output)))[1:]
    assert len(parsed) == len(stored)
    for (i, d, f, fl), (_ci, cd, cf, cfl) in zip(stored, parsed):
        assert float(cd) == d, (i, cd, d)
        assert float(cf) == f and np.float32(float(cf)) == np.float32(f), (i, cf, f)
        assert json.loads(cfl) == fl
    as_json = json.loads(invoke("sql", "select i, d, f, fl from nums order by i", "-f", "json").output)
    assert [(r["i"], r["d"], r["f"], r["fl"]) for r in as_json] == stored
    jsonl = invoke("sql", "select d, f from nums order by i", "-f", "jsonl").output.splitlines()
    assert [(json.loads(x)["d"], json.loads(x)["f"]) for x in jsonl] == [(d, f) for _, d, f, _ in stored]
    table = invoke("sql", "select d from nums where i = 1").output
    assert "0.333333" in table and "0.3333333333333333" not in table  # the table view may shorten


def _strict_json(text: str):
    """``json.loads`` that refuses NaN and Infinity, as JSON itself (and most parsers) do."""

    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_json_holds_no_bare_nan_or_infinity(library):
    """A NaN or an infinity (a constant feature's z-score, a division by zero) is null in JSON."""
    sql = "select 'nan'::double a, '-inf'::double b, [1.5, 'nan'::double] c, 'inf'::float d, 2.5 e"
    out = invoke("sql", sql, "-f", "json")
    assert out.exit_code == 0, out.output
    assert _strict_json(out.output) == [{"a": None, "b": None, "c": [1.5, None], "d": None, "e": 2.5}]
    line = invoke("sql", sql, "-f", "jsonl").output.strip()
    assert _strict_json(line) == {"a": None, "b": None, "c": [1.5, None], "d": None, "e": 2.5}
    csv_row = invoke("sql", sql, "-f", "csv").output.splitlines()[1]
    assert csv_row.startswith("nan,-inf,")  # CSV keeps them: float("nan") reads them back


@pytest.mark.slow
def test_features_csv_is_the_stored_vectors(tmp_path, db_path):
    music = tmp_path / "music"
    music.mkdir()
    write_audio(music / "one.wav", music_like(2.0, 22050, seed=3), 22050)
    assert invoke("scan", music, "--workers", "1").exit_code == 0
    out = invoke("sql", "select * from features", "-f", "csv").output
    header, line = list(csv.reader(io.StringIO(out)))
    stored = rows(db_path, "select * from features")[0]
    assert len(line) == len(stored) == len(header)
    floats = [(text, value) for text, value in zip(line, stored) if isinstance(value, float)]
    assert len(floats) >= 180
    assert all(float(text) == value for text, value in floats)
    assert os.path.basename(stored[1]) == "one.wav"


def test_a_damaged_file_the_user_reads_is_not_called_a_damaged_library(tmp_path, library):
    other = tmp_path / "someone-elses.duckdb"
    other.write_bytes(b"not a database" * 400)
    result = invoke("sql", f"attach '{other}' as o (read_only)", "--write")
    assert result.exit_code == 1 and "SQL error" in result.output and "not a valid DuckDB" in result.output
    assert "is damaged" not in result.output and "rebuilds" not in result.output
