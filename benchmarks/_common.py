"""Small helpers shared by the benchmark scripts (not part of audiodb).

Import this module FIRST in a benchmark: it pins BLAS/OpenMP pools to one
thread before numpy can be imported, so timings are per core.
"""

from __future__ import annotations

import os

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
#: The thread variables as the shell gave them, before the pins below.
USER_THREADS = {_k: os.environ.get(_k) for _k in THREAD_VARS}
for _k in THREAD_VARS:
    os.environ[_k] = "1"

import platform  # noqa: E402


def user_env(**extra: str) -> dict[str, str]:
    """This process's environment without the pins above (the thread variables as the shell had
    them), plus ``extra``: for a command timed as a user runs it (``audiodb scan`` in a shell)."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    env.update({k: v for k, v in USER_THREADS.items() if v is not None})
    env.update(extra)
    return env


DEFAULT_AUDIO_DIR = "/tmp/bench-audio/usr/share/games/wesnoth/1.16/data/core/music"
SOUNDS_DIR = "/tmp/bench-audio/usr/share/sounds/freedesktop/stereo"
AUDIO_EXT = (".ogg", ".oga", ".flac", ".wav", ".mp3", ".opus", ".m4a", ".aif", ".aiff")


def audio_files(folder: str) -> list[str]:
    """Audio files directly under or below ``folder``, sorted."""
    out = []
    for root, _dirs, files in os.walk(folder):
        out += [os.path.join(root, f) for f in files if f.lower().endswith(AUDIO_EXT)]
    if not out:
        raise SystemExit(f"No audio files under {folder}. Fetch them first: benchmarks/fetch_audio.sh /tmp/bench-audio")
    return sorted(out)


def warm_page_cache(paths: list[str]) -> int:
    """Read every file once so no timed call pays for the disk; returns bytes read."""
    n = 0
    for p in paths:
        with open(p, "rb") as f:
            while chunk := f.read(1 << 22):
                n += len(chunk)
    return n


def machine() -> str:
    return (
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"BLAS/OpenMP threads pinned to 1 (OMP/OPENBLAS/MKL/NUMEXPR_NUM_THREADS=1)"
    )


def table(headers: list[str], rows: list[list], align: str | None = None) -> str:
    """A plain text table; numbers are expected pre-formatted as strings."""
    cells = [headers] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    align = align or ("l" + "r" * (len(headers) - 1))
    lines = []
    for j, r in enumerate(cells):
        parts = [c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(r, widths, align)]
        lines.append("  ".join(parts).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
