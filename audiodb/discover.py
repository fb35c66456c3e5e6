"""Finding audio files under folders: recursive, hidden entries skipped, loops and
unreadable folders survived."""

from __future__ import annotations

import dataclasses
import os
import stat

__all__ = ["AUDIO_EXTENSIONS", "Found", "discover", "is_audio_path"]

#: The notebook's extensions plus opus, oga and AIFF; matched in any letter case.
AUDIO_EXTENSIONS = frozenset({".wav", ".mp3", ".flac", ".ogg", ".m4a", ".opus", ".oga", ".aif", ".aiff"})


def is_audio_path(path: str) -> bool:
    name = os.path.basename(path)
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in AUDIO_EXTENSIONS


@dataclasses.dataclass
class Found:
    """What a walk saw: ``files`` maps absolute path to ``(size, mtime_ns)``."""

    files: dict[str, tuple[int, int]] = dataclasses.field(default_factory=dict)
    problems: list[str] = dataclasses.field(default_factory=list)


def discover(roots: list[str]) -> Found:
    """Walk ``roots`` (folders or single files) for audio files.

    Symlinked folders are followed once (a loop is reported, not followed
    again); folders that cannot be read are reported in ``problems`` and
    skipped. Paths are absolute but not resolved, as the user sees them.
    """
    found = Found()
    seen_dirs: set[tuple[int, int]] = set()
    for root in roots:
        root = os.path.abspath(root)
        try:
            st = os.stat(root)
        except OSError as e:
            found.problems.append(f"{root}: {e.strerror}")
            continue
        if stat.S_ISDIR(st.st_mode):
            _walk(root, st, found, seen_dirs)
        elif stat.S_ISREG(st.st_mode) and is_audio_path(root):
            found.files[root] = (st.st_size, st.st_mtime_ns)
    return found


def _walk(top: str, top_st: os.stat_result, found: Found, seen: set[tuple[int, int]]) -> None:
    stack = [(top, (top_st.st_dev, top_st.st_ino))]
    while stack:
        folder, key = stack.pop()
        if key in seen:
            found.problems.append(f"{folder}: already visited (symlink loop or repeated folder), skipped")
            continue
        seen.add(key)
        try:
            entries = list(os.scandir(folder))
        except OSError as e:
            found.problems.append(f"{folder}: cannot read folder ({e.strerror})")
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                st = entry.stat(follow_symlinks=True)
            except OSError:
                continue  # dangling symlink or vanished meanwhile
            if stat.S_ISDIR(st.st_mode):
                stack.append((entry.path, (st.st_dev, st.st_ino)))
            elif stat.S_ISREG(st.st_mode) and is_audio_path(entry.name):
                found.files[entry.path] = (st.st_size, st.st_mtime_ns)
