"""The README's Python examples run as written, each on its own, against a demo library.

Each code block of README.md that is Python runs in a fresh interpreter whose working
folder is ``~/Music`` (HOME is the test's): the demo library's sounds, ``song.flac``,
``a.flac`` and ``b.mp3`` beside them, and ``music.duckdb`` already scanned. A block
that does not mention pandas runs with pandas unimportable, as on a plain
``pip install audiodb``; one that does (it says to ``pip install 'audiodb[pandas]'``)
runs with it.
"""

from __future__ import annotations

import ast
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest
from audio import music_like, write_audio

from audiodb import Library
from audiodb.demo import write_demo_library

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
# Prepended to a block that does not mention pandas: import pandas fails, as on a plain install
# (a finder, not sys.modules["pandas"] = None, which libraries probing sys.modules trip on).
NO_PANDAS = """\
import sys


class _NoPandas:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "pandas":
            raise ModuleNotFoundError("No module named 'pandas'", name=name)


sys.meta_path.insert(0, _NoPandas())
"""


def code_blocks(text: str) -> list[tuple[int, str]]:
    """Markdown's indented code blocks: (first line number, dedented text)."""
    blocks, current, start, previous_blank = [], [], 0, True
    for number, line in enumerate(text.splitlines(), 1):
        indented = line.startswith("    ") or (current and not line.strip())
        if indented and (current or previous_blank):
            if not current:
                start = number
            current.append(line)
        else:
            if current:
                blocks.append((start, textwrap.dedent("\n".join(current)).strip() + "\n"))
            current = []
        previous_blank = not line.strip()
    if current:
        blocks.append((start, textwrap.dedent("\n".join(current)).strip() + "\n"))
    return blocks


def python_blocks(text: str) -> list[tuple[int, str]]:
    """The blocks that parse as Python and use audiodb (shell lines such as
    ``audiodb scan ~/Music`` or ``pip install .`` do not parse)."""
    out = []
    for start, block in code_blocks(text):
        try:
            ast.parse(block)
        except SyntaxError:
            continue
        if "audiodb" in block or "lib." in block:
            out.append((start, block))
    return out


def test_python_blocks_are_found_and_shell_blocks_are_not():
    text = "Intro:\n\n    audiodb scan ~/Music\n\nPython:\n\n    import audiodb\n\n    lib = 1\n\nEnd.\n"
    assert python_blocks(text) == [(7, "import audiodb\n\nlib = 1\n")]
    assert len(BLOCKS) >= 3


@pytest.fixture(scope="module")
def music(tmp_path_factory):
    """HOME with ~/Music: the demo library, song.flac, a.flac, b.mp3, and music.duckdb scanned."""
    home = tmp_path_factory.mktemp("home")
    music = home / "Music"
    write_demo_library(music)
    for seed, name in enumerate(("song.flac", "a.flac", "b.mp3")):
        write_audio(music / name, music_like(6.0, 44100, seed=seed, channels=2), 44100)
    report = Library(music / "music.duckdb").scan([music], workers=2)
    assert report.failed == 0 and report.added > 20
    return music


BLOCKS = python_blocks(README.read_text(encoding="utf-8"))


@pytest.mark.slow
@pytest.mark.process
@pytest.mark.parametrize("start, block", BLOCKS, ids=[f"line{start}" for start, _ in BLOCKS])
def test_readme_python_block_runs_as_written(music, start, block):
    env = {k: v for k, v in os.environ.items() if k != "AUDIODB_DB"}
    env["HOME"] = str(music.parent)
    source = block if "pandas" in block else NO_PANDAS + block
    result = subprocess.run(
        [sys.executable, "-c", source], cwd=music, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"README.md line {start}:\n{block}\n{result.stderr[-3000:]}"
