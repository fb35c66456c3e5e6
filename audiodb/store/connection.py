"""Where the library file lives, how it is opened.

DuckDB lets one process write or many read, never both, and a second open
fails at once. So every open goes through a sidecar ``fcntl`` lock file
(``library.duckdb.lock``): writers take it exclusively, readers shared, and
both wait with backoff instead of failing. Connections are meant to be short:
open, do one thing, close.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..analysis.params import NOTEBOOK, ExtendedParams, FeatureParams
from ..errors import DatabaseError, DatabaseLocked, LibraryNotFound
from .faults import holder_from, holders, translate_error
from .migrate import migrate, migrations, schema_version

__all__ = [
    "LOCK_TIMEOUT",
    "Creating",
    "LibraryFile",
    "connect",
    "default_path",
    "resolve_path",
    "wait_while_locked",
]


#: How long an open waits for another process before giving up (seconds).
LOCK_TIMEOUT = float(os.environ.get("AUDIODB_LOCK_TIMEOUT", "120"))


# Set by wait_while_locked: opens wait as long as the lock is held, until this returns true.
_patient: contextvars.ContextVar[Callable[[], bool] | None] = contextvars.ContextVar("patient", default=None)


@contextlib.contextmanager
def wait_while_locked(should_stop: Callable[[], bool]) -> Iterator[None]:
    """Inside, every open in this thread waits for a held library as long as it takes (a daemon
    such as the watcher keeps its work and goes on when the holder closes it), instead of
    failing after ``AUDIODB_LOCK_TIMEOUT``. If ``should_stop()`` becomes true while waiting,
    the open raises :class:`DatabaseLocked`."""
    token = _patient.set(should_stop)
    try:
        yield
    finally:
        _patient.reset(token)


def _give_up(waited: float, path: Path) -> bool:
    should_stop = _patient.get()
    if should_stop is None:
        return waited > LOCK_TIMEOUT
    if should_stop():
        raise DatabaseLocked(f"Stopped while waiting for {path}, which another program holds.")
    return False


def default_path() -> Path:
    """``$AUDIODB_DB``, else ``library.duckdb`` in the user's data directory."""
    env = os.environ.get("AUDIODB_DB")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("audiodb")) / "library.duckdb"


def resolve_path(path: str | os.PathLike | None) -> Path:
    return Path(path).expanduser().absolute() if path else default_path().absolute()


def _config(read_only: bool) -> dict:
    config = {
        "threads": int(os.environ.get("AUDIODB_THREADS", min(4, os.cpu_count() or 1))),
        "memory_limit": os.environ.get("AUDIODB_MEMORY_LIMIT", "1GB"),
    }
    if read_only:
        # A reader never installs an extension (that writes to ~/.duckdb); loading one is reading.
        config["autoinstall_known_extensions"] = False
    return config


def _is_lock_conflict(e: Exception) -> bool:
    text = str(e)
    return "Could not set lock" in text or "Conflicting lock" in text or "lock on file" in text


@contextlib.contextmanager
def _file_lock(path: Path, exclusive: bool, on_wait: Callable[[str], None] | None) -> Iterator[None]:
    lock_path = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        if exclusive:
            raise _unwritable(path, e) from None
        try:  # a library on a read-only disk: its lock file as it is, else DuckDB's own lock alone
            fd = os.open(lock_path, os.O_RDONLY)
        except OSError:
            yield
            return
    try:
        _acquire(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH, path, exclusive, on_wait)
        yield
    finally:
        os.close(fd)  # releases the lock


def _acquire(fd: int, mode: int, path: Path, exclusive: bool, on_wait) -> None:
    start = time.monotonic()
    delay, told = 0.005, False
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        waited = time.monotonic() - start
        if waited > 1.0 and not told and on_wait:
            what = "write to" if exclusive else "read"
            who = holders(path.with_name(path.name + ".lock"))
            who = f" ({who})" if who else ""
            then = " (waiting until it is done)" if _patient.get() else "..."
            on_wait(f"Waiting to {what} {path}: another audiodb process{who} is using it{then}")
            told = True
        if _give_up(waited, path):
            raise DatabaseLocked(
                f"{path} is locked by another process and was not released in {LOCK_TIMEOUT:.0f} s. "
                "If an audiodb scan is running, wait for it; otherwise look for a stuck process "
                "(fuser " + str(path) + ")."
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


@contextlib.contextmanager
def connect(
    path: str | os.PathLike | None = None,
    *,
    read_only: bool = False,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator:
    """Open the library (creating and migrating it if writing), yield a connection, close.

    Readers share the file; a writer has it alone. Both wait for the other,
    with backoff, up to ``AUDIODB_LOCK_TIMEOUT`` seconds, calling ``on_wait``
    once with a message if that takes more than a second.

    Raises
    ------
    LibraryNotFound
        Reading a library that was never written.
    SchemaTooNew
        The file was written by a newer audiodb.
    DatabaseLocked
        Another process held it for too long.
    """
    import duckdb

    path = resolve_path(path)
    if read_only and not path.exists():
        raise LibraryNotFound(
            f"No audiodb library at {path} yet. Index a folder first: audiodb scan DIR "
            "(or point --db / AUDIODB_DB at an existing library)."
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _unwritable(path, e) from None
    for attempt in range(2):
        with _file_lock(path, exclusive=not read_only, on_wait=on_wait):
            con = _open(duckdb, path, read_only, on_wait)
            try:
                if not read_only:
                    migrate(con, path)
                elif attempt == 0 and schema_version(con) != migrations()[-1][0]:
                    con.close()
                    con = None
                if con is not None:
                    try:
                        yield con
                    except (duckdb.Error, OSError) as e:
                        translate_error(path, e)
                        raise
                    except RuntimeError as e:
                        _raise_if_interrupted(e)
                        raise
                    return
            except (duckdb.Error, OSError) as e:  # reading the schema version, or migrating
                translate_error(path, e)
                raise
            except RuntimeError as e:
                _raise_if_interrupted(e)
                raise
            finally:
                if con is not None:
                    try:
                        con.close()  # may checkpoint the WAL into the file: a full disk shows here
                    except duckdb.Error as e:
                        translate_error(path, e)
                        raise
        # A reader found pending migrations (or a newer schema): let a writer deal with it.
        with connect(path, on_wait=on_wait):
            pass


def _open(duckdb, path: Path, read_only: bool, on_wait):
    # The sidecar lock orders audiodb processes; a foreign process (the duckdb
    # CLI, a notebook) may still hold the file, so retry that too.
    start = time.monotonic()
    delay, told = 0.01, False
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=_config(read_only))
        except duckdb.Error as e:
            translate_error(path, e)
            if not _is_lock_conflict(e):
                raise DatabaseError(f"Cannot open {path}: {e}") from e
            waited = time.monotonic() - start
            if waited > 1.0 and not told and on_wait:
                who = holder_from(e, path) or "another program (not audiodb)"
                if _patient.get():
                    on_wait(
                        f"Waiting for the library {path}: {who} has it open (a duckdb shell, a "
                        "notebook?). Pending changes are kept; indexing goes on when it is closed."
                    )
                else:
                    on_wait(f"Waiting for {path}: {who} has it open...")
                told = True
            if _give_up(waited, path):
                raise DatabaseLocked(
                    f"{path} is held by another program: {e}. Close it (e.g. a duckdb shell) and retry.",
                    holder=holder_from(e, path),
                ) from e
            time.sleep(delay)
            delay = min(delay * 2, 0.25)


class Creating:
    """A library that does not exist yet, created (and migrated) in a thread of its own.

    A scan of a new library starts this and analyses its first files meanwhile: making the
    file takes 50-90 ms, most of it in DuckDB, which lets the analysis run on. The thread
    keeps the new library open for its first write (:meth:`connection`, a connection and an
    open less); nobody else reads a library that did not exist, and the first batch comes
    within seconds. :meth:`close` if it is never written to.
    """

    def __init__(self, path: Path, on_wait: Callable[[str], None] | None = None):
        self.path = path
        self._error: BaseException | None = None
        # Once the thread made the library: the stack that closes it, and its connection.
        self._opened: tuple[contextlib.ExitStack, Any] | None = None
        import duckdb  # noqa: F401 - here: imported in the thread, it would hold the GIL against the analysis

        self._thread = threading.Thread(target=self._create, args=(on_wait,), name="audiodb-create-library")
        self._thread.start()

    def _create(self, on_wait) -> None:
        try:
            stack = contextlib.ExitStack()
            self._opened = (stack, stack.enter_context(connect(self.path, read_only=False, on_wait=on_wait)))
        except BaseException as e:  # noqa: BLE001 - handed to the thread that waits
            self._error = e

    @contextlib.contextmanager
    def connection(self) -> Iterator:
        """The new library's connection, as :func:`connect` yields it (closed after); raises what
        making the library raised. Once: later writes open the library as usual."""
        self._thread.join()
        error, self._error = self._error, None
        if error is not None:
            raise error
        if self._opened is None:
            raise DatabaseError(f"{self.path}: the new library's connection was used already")
        stack, con = self._opened
        self._opened = None
        with stack:  # closed as connect() closes, whatever happens inside
            yield con

    def close(self) -> None:
        """Close the new library if it was never written to (nothing if it was); raises what
        making it raised, if nothing did yet."""
        self._thread.join()
        if self._opened is not None or self._error is not None:
            with self.connection():
                pass

    def __enter__(self) -> Creating:
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.close()
        else:  # the error on its way out is the one to report
            with contextlib.suppress(Exception):
                self.close()


def _unwritable(path: Path, e: OSError) -> DatabaseError:
    where = e.filename or path.parent
    why = f"{where} is a file, not a folder" if isinstance(e, (FileExistsError, NotADirectoryError)) else None
    return DatabaseError(
        f"Cannot write the library {path} there ({why or f'{e.strerror or e}: {where}'}); nothing was "
        "written. Point --db (or AUDIODB_DB) at a file in a folder you can write."
    )


def _raise_if_interrupted(e: RuntimeError) -> None:
    # Ctrl-C while DuckDB runs a statement surfaces as RuntimeError('Query interrupted'), not as
    # KeyboardInterrupt: make it one, so a command stops as it does on Ctrl-C anywhere else.
    if "Query interrupted" in str(e):
        raise KeyboardInterrupt from None


@dataclasses.dataclass(frozen=True)
class LibraryFile:
    """One library file and how to use it: what every operation below ``Library`` takes first.

    ``path`` (resolved), the notebook's ``params`` (with the second feature set derived from
    them, ``extended``), and ``on_wait``, called once with a message when an open waits.
    """

    path: Path
    params: FeatureParams = NOTEBOOK
    on_wait: Callable[[str], None] | None = None

    @property
    def extended(self) -> ExtendedParams:
        """The second feature set's parameters, computed with ``params``."""
        return ExtendedParams(base=self.params)

    def connect(self, *, read_only: bool = True):
        """Context manager yielding a DuckDB connection (read-only by default)."""
        return connect(self.path, read_only=read_only, on_wait=self.on_wait)
