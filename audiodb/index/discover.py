"""Finding audio files under folders: recursive, hidden entries skipped, loops and
unreadable folders survived."""

from __future__ import annotations

import dataclasses
import os
import stat

from ..paths import to_stored

__all__ = ["AUDIO_EXTENSIONS", "UNSUPPORTED_EXTENSIONS", "Found", "discover", "is_audio_path"]

#: The notebook's extensions plus opus, oga and AIFF (libsndfile or PyAV, :mod:`audiodb.analysis.decode`),
#: and what else FFmpeg decodes that people keep in libraries (through PyAV; libsndfile first where it
#: reads them: .au, .caf, .aifc); matched in any letter case.
AUDIO_EXTENSIONS = frozenset(
    {
        ".wav",
        ".mp3",
        ".flac",
        ".ogg",
        ".m4a",
        ".opus",
        ".oga",
        ".aif",
        ".aiff",
        # FFmpeg (PyAV): AAC (ADTS), Windows Media, MP4 and audiobooks, WebM and Matroska audio,
        # Monkey's Audio, WavPack, TTA, MPEG layer 2, AC-3; ALAC and AAC in .m4a as before.
        ".aac",
        ".wma",
        ".mp4",
        ".m4b",
        ".webm",
        ".mka",
        ".ape",
        ".wv",
        ".tta",
        ".mp2",
        ".ac3",
        # libsndfile
        ".aifc",
        ".au",
        ".caf",
    }
)

#: Audio (or audio-and-video) files audiodb does not read: counted and named as skipped,
#: so that a missing ``.dsf`` is not a mystery. Anything else (covers, cue sheets) is ignored.
UNSUPPORTED_EXTENSIONS = frozenset(
    {
        ".amr",
        ".dff",
        ".dsf",
        ".dts",
        ".m4p",
        ".mid",
        ".midi",
        ".mkv",
        ".mov",
        ".mpc",
        ".ra",
        ".snd",
        ".3gp",
    }
)

_READS = "audiodb reads " + ", ".join(sorted(AUDIO_EXTENSIONS))
MISSING_TARGET = "symlink whose target is missing (an unmounted drive or share?)"


def is_audio_path(path: str) -> bool:
    name = os.path.basename(path)
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in AUDIO_EXTENSIONS


@dataclasses.dataclass
class Found:
    """What a walk saw.

    ``files`` maps absolute path to ``(size, mtime_ns)``. ``unreadable`` maps a
    folder (or symlink) whose contents could not be seen to why: what was
    indexed under it is not known to be gone. ``skipped`` lists ``(path,
    reason)`` of files seen but not read (unsupported audio types, a file named
    on the command line that is not audio).
    """

    files: dict[str, tuple[int, int]] = dataclasses.field(default_factory=dict)
    problems: list[str] = dataclasses.field(default_factory=list)
    unreadable: dict[str, str] = dataclasses.field(default_factory=dict)
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)


def discover(roots: list[str]) -> Found:
    """Walk ``roots`` (folders or single files) for audio files.

    Symlinked folders are followed once (a loop is reported, not followed
    again); folders that cannot be read, and symlinks whose target is gone,
    are recorded in ``unreadable`` and skipped. A root that does not exist is
    in ``unreadable`` too unless the folder it was in can be read (then it
    was really deleted). Paths are absolute but not resolved, as the user
    sees them.
    """
    found = Found()
    seen_dirs: set[tuple[int, int]] = set()
    for root in roots:
        root = os.path.abspath(root)
        try:
            st = os.stat(root)
        except FileNotFoundError:
            reason = _why_missing(root)
            if reason:
                found.unreadable[root] = reason
            else:
                found.problems.append(f"{to_stored(root)}: No such file or directory")
            continue
        except OSError as e:
            found.unreadable[root] = f"cannot read it ({e.strerror})"
            continue
        if stat.S_ISDIR(st.st_mode):
            _walk(root, st, found, seen_dirs)
        elif stat.S_ISREG(st.st_mode) and is_audio_path(root):
            found.files[root] = (st.st_size, st.st_mtime_ns)
        else:
            found.skipped.append((root, _not_read(root, st)))
    return found


def _not_read(path: str, st: os.stat_result) -> str:
    name = os.path.basename(path)
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if name.startswith("."):
        return "a hidden file"
    ext = os.path.splitext(name)[1].lower()
    return f"{ext or 'no'} extension: not an audio type audiodb reads ({_READS})"


def _why_missing(path: str) -> str | None:
    """Why a path that does not exist may still be there (None: it is really gone).

    It is really gone if the nearest folder above it that exists can be read;
    not if that is a symlink to nothing (an unmounted drive) or unreadable.
    """
    if os.path.lexists(path):
        return MISSING_TARGET
    p = path
    while True:
        parent = os.path.dirname(p)
        if parent == p:
            return None
        p = parent
        if os.path.lexists(p):
            break
    try:
        os.stat(p)
    except OSError:
        return f"{to_stored(p)} is a {MISSING_TARGET}"
    try:
        with os.scandir(p):
            pass
    except OSError as e:
        return f"cannot read {to_stored(p)} ({e.strerror})"
    return None


def _walk(top: str, top_st: os.stat_result, found: Found, seen: set[tuple[int, int]]) -> None:
    stack = [(top, (top_st.st_dev, top_st.st_ino))]
    while stack:
        folder, key = stack.pop()
        if key in seen:
            found.problems.append(f"{to_stored(folder)}: already visited (symlink loop or repeated folder), skipped")
            continue
        seen.add(key)
        try:
            entries = list(os.scandir(folder))
        except OSError as e:
            found.unreadable[folder] = f"cannot read folder ({e.strerror})"
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                st = entry.stat(follow_symlinks=True)
            except FileNotFoundError:
                if entry.is_symlink():  # a link to an unmounted drive: not a deletion
                    found.unreadable[entry.path] = MISSING_TARGET
                continue  # vanished meanwhile
            except OSError as e:
                found.unreadable[entry.path] = f"cannot read it ({e.strerror})"
                continue
            if stat.S_ISDIR(st.st_mode):
                stack.append((entry.path, (st.st_dev, st.st_ino)))
            elif stat.S_ISREG(st.st_mode):
                if is_audio_path(entry.name):
                    found.files[entry.path] = (st.st_size, st.st_mtime_ns)
                elif os.path.splitext(entry.name)[1].lower() in UNSUPPORTED_EXTENSIONS:
                    found.skipped.append((entry.path, _not_read(entry.path, st)))
