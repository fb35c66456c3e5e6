"""What DuckDB's errors mean for the library file: damaged, disk full, or held by whom.

Each becomes one of audiodb's errors with a message that says what to do next.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from pathlib import Path

from ..errors import DiskFull, LibraryDamaged

__all__ = ["damaged_error", "holder_from", "holders", "is_damage", "raise_if_damaged", "translate_error"]


def holders(path: Path) -> str | None:
    """``PID 123 (/usr/bin/duckdb)`` for the processes that have ``path`` open, from /proc."""
    found = []
    target = os.path.realpath(path)
    with contextlib.suppress(OSError):
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    with contextlib.suppress(OSError):
                        if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                            exe = ""
                            with contextlib.suppress(OSError):
                                exe = os.readlink(f"/proc/{pid}/exe")
                            found.append(f"PID {pid}" + (f" ({exe})" if exe else ""))
                            break
    return ", ".join(found) or None


def holder_from(e: Exception, path: Path) -> str | None:
    # DuckDB: 'Could not set lock on file "…": Conflicting lock is held in /usr/bin/python3 (PID 123)'
    m = re.search(r"Conflicting lock is held in (.*?) \(PID (\d+)\)", str(e))
    if m:
        return f"PID {m.group(2)} ({m.group(1)})" if m.group(1) else f"PID {m.group(2)}"
    return holders(path)


#: What DuckDB says about a file that is truncated, overwritten or damaged on disk (measured on
#: DuckDB 2.0: cut at any length, 4 KB of random bytes anywhere, 8 flipped bytes, random files).
_DAMAGE = (
    "not a valid DuckDB database file",
    "Corrupt database file",
    "Could not read enough bytes",
    "does not match stored checksum",
)


def is_damage(e: BaseException, path: Path) -> bool:
    text = str(e)
    # A damaged file the user named (read_parquet('cut.parquet')) is not a damaged library.
    named = re.search(r'file "([^"]+)"', text)
    if named and os.path.abspath(named.group(1)) != str(path):
        return False
    return any(d in text for d in _DAMAGE)


def raise_if_damaged(path: str | os.PathLike, e: Exception) -> None:
    """Raise :class:`LibraryDamaged` naming ``path`` if DuckDB's error ``e`` says the file is damaged."""
    if is_damage(e, Path(path)):
        raise damaged_error(Path(path), e) from None


def damaged_error(path: Path, e: BaseException) -> LibraryDamaged:
    detail = str(e).split("\n")[0]
    return LibraryDamaged(
        f"The library file {path} is damaged and cannot be read ({detail}). Nothing was written to it. "
        f"Restore it from a backup, or move it aside (mv '{path}' '{path}.damaged') and scan your "
        "folders again: audiodb rebuilds everything from the audio."
    )


def _is_disk_full(e: BaseException) -> bool:
    return (isinstance(e, OSError) and e.errno == errno.ENOSPC) or "No space left on device" in str(e)


def _disk_full(path: Path, e: BaseException) -> DiskFull:
    # DuckDB names the file it could not write: the library, its .wal, or a spill file in its .tmp.
    m = re.search(r'file "([^"]+)"', str(e))
    where = Path(m.group(1)) if m else path
    return DiskFull(
        f"The disk is full: no space left on the file system holding {where.parent} (writing {where.name}). "
        f"The library {path} is intact: what was saved before is kept, the last batch was not written. "
        f"Free some space (df -h '{where.parent}') and run the same command again: a scan finishes the job."
    )


def translate_error(path: Path, e: BaseException) -> None:
    """Raise audiodb's error for a damaged file or a full disk; return for anything else."""
    if is_damage(e, path):
        raise damaged_error(path, e) from None
    if _is_disk_full(e):
        raise _disk_full(path, e) from None
