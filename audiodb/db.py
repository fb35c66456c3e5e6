"""Where the library file lives, how it is opened, and its migrations.

DuckDB lets one process write or many read, never both, and a second open
fails at once. So every open goes through a sidecar ``fcntl`` lock file
(``library.duckdb.lock``): writers take it exclusively, readers shared, and
both wait with backoff instead of failing. Connections are meant to be short:
open, do one thing, close.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import fcntl
import importlib.resources
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import DatabaseError, DatabaseLocked, DiskFull, LibraryDamaged, LibraryNotFound, SchemaTooNew

__all__ = ["check_read_only", "connect", "count_stale", "default_path", "lock_configuration", "migrations",
           "raise_if_damaged", "resolve_path", "schema_version", "wait_while_locked"]

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


def _holders(path: Path) -> str | None:
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


def _holder_from(e: Exception, path: Path) -> str | None:
    # DuckDB: 'Could not set lock on file "…": Conflicting lock is held in /usr/bin/python3 (PID 123)'
    m = re.search(r"Conflicting lock is held in (.*?) \(PID (\d+)\)", str(e))
    if m:
        return f"PID {m.group(2)} ({m.group(1)})" if m.group(1) else f"PID {m.group(2)}"
    return _holders(path)


def default_path() -> Path:
    """``$AUDIODB_DB``, else ``library.duckdb`` in the user's data directory."""
    env = os.environ.get("AUDIODB_DB")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("audiodb")) / "library.duckdb"


def resolve_path(path: str | os.PathLike | None) -> Path:
    return Path(path).expanduser().absolute() if path else default_path().absolute()


def migrations() -> list[tuple[int, str, str]]:
    """``(version, name, sql)`` of every bundled migration, in order."""
    found = []
    for entry in importlib.resources.files("audiodb.migrations").iterdir():
        m = re.match(r"^(\d+)_(.+)\.sql$", entry.name)
        if m:
            found.append((int(m.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def _config(read_only: bool) -> dict:
    config = {
        "threads": int(os.environ.get("AUDIODB_THREADS", min(4, os.cpu_count() or 1))),
        "memory_limit": os.environ.get("AUDIODB_MEMORY_LIMIT", "1GB"),
    }
    if read_only:
        # A reader never installs an extension (that writes to ~/.duckdb); loading one is reading.
        config["autoinstall_known_extensions"] = False
    return config


#: Statement types that cannot write, on a read-only connection whose configuration is locked
#: (so no SET / PRAGMA can point profiling or logging output at a file).
_READING = {"SELECT", "PRAGMA", "CALL", "EXPLAIN"}
_EXPLAIN = re.compile(r"^\s*explain\s+(?:\([^)]*\)\s*)?(?:analy[sz]e\s+)?(.*)$", re.IGNORECASE | re.DOTALL)


def check_read_only(query: str) -> None:
    """Refuse a query holding a statement that could write anything anywhere.

    DuckDB's read-only mode only protects the library file itself: ``COPY … TO``,
    ``EXPORT DATABASE``, ``INSTALL`` and ``EXPLAIN ANALYZE COPY …`` still write files.
    ``enable_external_access=false`` would stop those but also every ``read_csv``, and
    ``allowed_directories`` lets writes through too; so statements are judged by type
    (SELECT, PRAGMA, CALL, EXPLAIN of those), with the configuration locked by
    :func:`lock_configuration`. Raises UsageError for an empty query, DatabaseError
    for a refused statement; a query DuckDB cannot parse is left for it to report.
    """
    import duckdb

    from .errors import UsageError

    if not query.strip():
        raise UsageError("The query is empty. Give SQL, e.g. audiodb sql \"select count(*) from tracks\" "
                         "(or - to read it from standard input).")
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error:
        return  # a syntax error: running it reports it, and it writes nothing
    if not statements:
        raise UsageError("The query holds no statement (only comments or semicolons?).")
    for st in statements:
        kind = st.type.name
        if kind == "EXPLAIN":
            m = _EXPLAIN.match(st.query)
            if m and m.group(1).strip():
                check_read_only(m.group(1))
                continue
        if kind not in _READING:
            first = st.query.strip().split(None, 1)[0].upper() if st.query.strip() else kind
            raise DatabaseError(
                f"The library is opened read-only, and {first} statements may write (to the library "
                "or to other files), so the query was refused and nothing was run. Add --write to run "
                "it; to save rows to a file, redirect the output: audiodb sql \"select …\" --format csv "
                "> rows.csv."
            )


def lock_configuration(con) -> None:
    """No SET / PRAGMA may change settings on ``con`` from now on (e.g. profiling output to a file)."""
    con.execute("SET lock_configuration = true")


def schema_version(con) -> int:
    # fetchall, not fetchone: a half-read result would stay pending on the connection.
    has = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'"
    ).fetchall()[0][0]
    if not has:
        return 0
    return con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchall()[0][0]


def count_stale(con, feature_set: str, table: str = "embeddings") -> int:
    """Tracks with no vector for ``feature_set`` in ``table`` (new parameters, or analysis pending)."""
    assert table in ("embeddings", "extended_embeddings")
    return con.execute(
        f"SELECT count(*) FROM track_files t WHERE NOT EXISTS (SELECT 1 FROM {table} e "
        "WHERE e.track_id = t.track_id AND e.feature_set = ?)", [feature_set]).fetchall()[0][0]


def _migrate(con, path: Path) -> None:
    known = migrations()
    latest = known[-1][0] if known else 0
    current = schema_version(con)
    if current > latest:
        raise SchemaTooNew(
            f"{path} was written by a newer audiodb (schema version {current}; this audiodb "
            f"knows up to {latest}). Upgrade audiodb (pip install -U audiodb) to open it."
        )
    if current == latest:
        return
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)"
    )
    for version, name, sql in known:
        if version <= current:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(sql)
            con.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, current_localtimestamp())", [version, name]
            )
            con.execute("COMMIT")
        except Exception as e:
            con.execute("ROLLBACK")
            raise DatabaseError(f"Migration {name} failed on {path}: {e}") from e


#: What DuckDB says about a file that is truncated, overwritten or damaged on disk (measured on
#: DuckDB 2.0: cut at any length, 4 KB of random bytes anywhere, 8 flipped bytes, random files).
_DAMAGE = ("not a valid DuckDB database file", "Corrupt database file", "Could not read enough bytes",
           "does not match stored checksum")


def _is_damage(e: Exception, path: Path) -> bool:
    text = str(e)
    # A damaged file the user named (read_parquet('cut.parquet')) is not a damaged library.
    named = re.search(r'file "([^"]+)"', text)
    if named and os.path.abspath(named.group(1)) != str(path):
        return False
    return any(d in text for d in _DAMAGE)


def raise_if_damaged(path: str | os.PathLike, e: Exception) -> None:
    """Raise :class:`LibraryDamaged` naming ``path`` if DuckDB's error ``e`` says the file is damaged."""
    if _is_damage(e, Path(path)):
        raise _damaged(Path(path), e) from None


def _damaged(path: Path, e: Exception) -> LibraryDamaged:
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


def _translate(path: Path, e: BaseException) -> None:
    """Raise audiodb's error for a damaged file or a full disk; return for anything else."""
    if _is_damage(e, path):
        raise _damaged(path, e) from None
    if _is_disk_full(e):
        raise _disk_full(path, e) from None


def _is_lock_conflict(e: Exception) -> bool:
    text = str(e)
    return "Could not set lock" in text or "Conflicting lock" in text or "lock on file" in text


@contextlib.contextmanager
def _file_lock(path: Path, exclusive: bool, on_wait: Callable[[str], None] | None) -> Iterator[None]:
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
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
            who = _holders(path.with_name(path.name + ".lock"))
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
    path.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(2):
        with _file_lock(path, exclusive=not read_only, on_wait=on_wait):
            con = _open(duckdb, path, read_only, on_wait)
            try:
                if not read_only:
                    _migrate(con, path)
                elif attempt == 0 and schema_version(con) != migrations()[-1][0]:
                    con.close()
                    con = None
                if con is not None:
                    try:
                        yield con
                    except (duckdb.Error, OSError) as e:
                        _translate(path, e)
                        raise
                    return
            except (duckdb.Error, OSError) as e:  # reading the schema version, or migrating
                _translate(path, e)
                raise
            finally:
                if con is not None:
                    try:
                        con.close()  # may checkpoint the WAL into the file: a full disk shows here
                    except duckdb.Error as e:
                        _translate(path, e)
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
            _translate(path, e)
            if not _is_lock_conflict(e):
                raise DatabaseError(f"Cannot open {path}: {e}") from e
            waited = time.monotonic() - start
            if waited > 1.0 and not told and on_wait:
                who = _holder_from(e, path) or "another program (not audiodb)"
                if _patient.get():
                    on_wait(f"Waiting for the library {path}: {who} has it open (a duckdb shell, a "
                            "notebook?). Pending changes are kept; indexing goes on when it is closed.")
                else:
                    on_wait(f"Waiting for {path}: {who} has it open...")
                told = True
            if _give_up(waited, path):
                raise DatabaseLocked(
                    f"{path} is held by another program: {e}. Close it (e.g. a duckdb shell) and retry.",
                    holder=_holder_from(e, path),
                ) from e
            time.sleep(delay)
            delay = min(delay * 2, 0.25)
