"""audiodb's exceptions. The CLI turns each into a message and exit status 1.

    AudiodbError
    ├── DatabaseError        the library file cannot be opened or used
    │   ├── DatabaseLocked   another process holds it for longer than we wait
    │   ├── SchemaTooNew     written by a newer audiodb
    │   └── LibraryNotFound  no library file yet (nothing indexed)
    ├── DecodeError          one audio file cannot be decoded (recorded, skipped)
    ├── TrackNotFound        a path or id names no indexed track
    └── UsageError           arguments that cannot work together
"""

from __future__ import annotations


class AudiodbError(Exception):
    """Base class of every error audiodb raises on purpose."""


class DatabaseError(AudiodbError):
    pass


class DatabaseLocked(DatabaseError):
    pass


class SchemaTooNew(DatabaseError):
    pass


class LibraryNotFound(DatabaseError):
    pass


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
