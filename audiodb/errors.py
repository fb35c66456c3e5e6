"""audiodb's exceptions. The CLI turns each into a message and exit status 1.

AudiodbError
├── DatabaseError        the library file cannot be opened or used
│   ├── DatabaseLocked   another process holds it for longer than we wait
│   ├── SchemaTooNew     written by a newer audiodb
│   ├── LibraryNotFound  no library file yet (nothing indexed)
│   ├── LibraryDamaged   the file is not a readable DuckDB library (truncated, overwritten)
│   └── DiskFull         no space left where the library (or DuckDB's temp files) is written
├── NothingIndexed       the library holds no analysed track yet (scan first)
├── NoClusteringRun      a summary or map asked for clusters, and no run is stored
├── MissingDependency    an optional package is not installed (says what to install)
├── DecodeError          one audio file cannot be decoded (recorded, skipped)
├── TrackNotFound        a path or id names no indexed track
└── UsageError           arguments that cannot work together (exit status 2)
"""

from __future__ import annotations


class AudiodbError(Exception):
    """Base class of every error audiodb raises on purpose."""


class DatabaseError(AudiodbError):
    pass


class DatabaseLocked(DatabaseError):
    """``holder`` names the program holding the file (``"PID 123 (/usr/bin/duckdb)"``) when known."""

    def __init__(self, message: str, holder: str | None = None):
        super().__init__(message)
        self.holder = holder


class SchemaTooNew(DatabaseError):
    pass


class LibraryNotFound(DatabaseError):
    pass


class NotALibrary(DatabaseError):
    """The file is a DuckDB database of something else: audiodb leaves it alone."""


class LibraryDamaged(DatabaseError):
    """The library file cannot be read: truncated, overwritten, or damaged on disk."""


class DiskFull(DatabaseError):
    """A write failed for lack of space; what was committed before is intact."""


class NothingIndexed(AudiodbError):
    """No analysed track to work on yet: the advice is to run ``audiodb scan``."""


class NoClusteringRun(AudiodbError):
    """A summary, map or colouring needs a clustering run, and none is stored."""


class MissingDependency(AudiodbError):
    """An optional package this feature needs is missing; the message names the pip command."""


class DecodeError(AudiodbError):
    """An audio file that cannot be turned into an embedding, with the reason."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"Could not decode {path!r}: {reason}")
        self.path = path
        self.reason = reason


class TrackNotFound(AudiodbError):
    pass


class UsageError(AudiodbError):
    pass


class AudiodbWarning(UserWarning):
    """Something the user should know that did not stop the work (the CLI prints it as a note)."""
