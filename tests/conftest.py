"""Shared fixtures: every test gets its own library file, and real audio it wrote itself."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from audio import music_like, tone, write_audio
from click.testing import CliRunner


@pytest.fixture(autouse=True)
def _library_in_tmp(tmp_path, monkeypatch):
    """AUDIODB_DB points into the test's tmp_path: no test touches the user's library."""
    db = tmp_path / "lib.duckdb"
    monkeypatch.setenv("AUDIODB_DB", str(db))
    return db


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "lib.duckdb"


@pytest.fixture
def cli():
    """Invoke the audiodb CLI in-process; returns the click Result."""
    from audiodb.cli import main

    runner = CliRunner()

    def run(*args, ok=True):
        result = runner.invoke(main, [str(a) for a in args], catch_exceptions=False, prog_name="audiodb")
        if ok and result.exit_code != 0:
            raise AssertionError(f"audiodb {' '.join(map(str, args))} exited {result.exit_code}:\n{result.output}")
        return result

    return run


@pytest.fixture
def music_dir(tmp_path):
    """A small tree of distinct music-like files in several formats and rates."""
    root = tmp_path / "music"
    specs = [
        ("a/one.wav", 22050, 1, 1),
        ("a/two.flac", 44100, 2, 2),
        ("b/three.ogg", 44100, 1, 3),
        ("b/c/four.mp3", 44100, 2, 4),
        ("five.WAV", 16000, 1, 5),
    ]
    for rel, sr, ch, seed in specs:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        write_audio(root / rel, music_like(2.0, sr, seed=seed, channels=ch), sr)
    return root


AUDIODB = [sys.executable, "-m", "audiodb.cli"]


def run_audiodb(*args, cwd, env=None, timeout=300, **kw) -> subprocess.CompletedProcess:
    """Run the real audiodb command in a new process. ``cwd`` must not be the source
    tree, so the installed package (with its cli and migrations) is what runs."""
    return subprocess.run(
        AUDIODB + [str(a) for a in args], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout, **kw
    )


def rows(db, sql, *params) -> list[tuple]:
    """Query a library file directly (read-only), as a user's duckdb session would."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def files_under(root) -> list[str]:
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs)


__all__ = ["AUDIODB", "files_under", "rows", "run_audiodb", "music_like", "np", "tone", "write_audio"]
