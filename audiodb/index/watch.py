"""Keeping the library current while files come, change, move and go.

The watcher is the scanner run often and narrowly: file-system events mark
paths dirty; once a path has settled (no event for ``settle`` seconds and the
same size and mtime as when it was last seen), the dirty paths are scanned
together through :func:`audiodb.index.scan.scan_file`, the same code path as ``audiodb
scan``. Events can be lost (a full kernel queue, the inotify watch limit, a
network drive, a folder moved out of the tree reports one event for the
folder), so a full reconcile scan runs at start and every ``reconcile``
seconds. Processing is idempotent, so seeing a path twice is harmless.

The database is opened only for each short write batch, so other audiodb
commands work meanwhile.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import DatabaseLocked
from ..paths import to_stored
from ..store import connection
from ..store.connection import LibraryFile
from .discover import is_audio_path
from .plan import Change, ScanReport
from .pools import ProcessPool
from .scan import scan_file

__all__ = ["Watcher"]

INOTIFY_ADVICE = (
    "The inotify watch limit is reached, so some folders are not watched live; "
    "changes there are picked up by the periodic reconcile scan instead. To watch them all, raise "
    "the limit: sudo sysctl fs.inotify.max_user_watches=524288 (make it permanent in "
    "/etc/sysctl.d/90-inotify.conf)."
)


@dataclasses.dataclass
class _Entry:
    last_event: float
    signature: tuple | None
    writing_since: float | None  # written since the last close event: a writer has it open


class _Dirty:
    """Paths touched by events, waiting to settle."""

    def __init__(self, max_open: float = 30.0) -> None:
        self.lock = threading.Lock()
        self.paths: dict[str, _Entry] = {}
        # A close event may never come (a touch changes only attributes; an mmap
        # writer): past this, a file that has settled is read even if not closed.
        self.max_open = max_open

    def touch(self, *paths: str, kind: str = "modified", polling: bool = False) -> None:
        """Record an event on ``paths`` (a rename's source and destination: one moment for both,
        so they settle together and the scan that takes them sees a move, not a removal and a
        new file). inotify reports a close after writing; until then a writer
        has the file open (a slow copy, a recorder) and it is not read. A file created
        already holding data was moved in from outside the tree: nobody is writing it.
        Polling sees no opens or closes; renames and deletes end any writing."""
        now = time.monotonic()
        sigs = [_signature(path) for path in paths]
        with self.lock:
            for path, sig in zip(paths, sigs):
                entry = self.paths.get(path)
                since = entry.writing_since if entry else None
                if polling:
                    pass
                elif kind == "modified" or (kind == "created" and sig is not None and sig[0] == 0):
                    since = since or now
                elif kind != "modified":
                    since = None
                self.paths[path] = _Entry(now, sig, since)

    def settled(self, settle: float) -> list[str]:
        """Paths untouched for ``settle`` s, not open for writing, and whose size and
        mtime did not change meanwhile."""
        now = time.monotonic()
        ready = []
        with self.lock:
            for path, entry in list(self.paths.items()):
                if now - entry.last_event < settle:
                    continue
                if entry.writing_since is not None and now - entry.writing_since < self.max_open:
                    continue  # still open for writing: a slow copy, a recorder
                current = _signature(path)
                if current == entry.signature:
                    ready.append(path)
                    del self.paths[path]
                else:  # still changing without events (or a lost event): wait again
                    entry.last_event, entry.signature = now, current
        return ready

    def pending(self, path: str) -> bool:
        return path in self.paths

    def __len__(self) -> int:
        return len(self.paths)


def _signature(path: str) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, os.path.isdir(path))


class Watcher:
    """Index ``roots``, then follow their changes until :meth:`stop`.

    Parameters
    ----------
    file : the library (:class:`~audiodb.store.connection.LibraryFile`: path, params, on_wait).
    roots : folders to watch.
    settle : seconds a file must stay unchanged before it is read.
    reconcile : seconds between full reconcile scans.
    poll : if set, poll the file system every ``poll`` s instead of using
        inotify (for NFS, SMB, SSHFS, where inotify sees nothing).
    on_change : called with each :class:`~audiodb.index.plan.Change`.
    on_notice : called with messages for the user (limits, fallbacks).
    """

    def __init__(
        self,
        file: LibraryFile,
        roots,
        *,
        workers: int | None = None,
        settle: float = 3.0,
        reconcile: float = 300.0,
        poll: float | None = None,
        on_change: Callable[[Change], None] | None = None,
        on_notice: Callable[[str], None] | None = None,
    ):
        self.file = file
        self.roots = [os.path.abspath(os.path.expanduser(os.fspath(r))) for r in roots]
        self.settle, self.reconcile, self.poll = settle, reconcile, poll
        self.on_change, self.on_notice = on_change, on_notice
        self.workers = ProcessPool(workers)
        self.dirty = _Dirty(max_open=max(30.0, 10 * settle))
        self._stop = threading.Event()
        self._observer: Any = None  # a watchdog observer (inotify or polling) while following
        self._limit_told = False
        self._problems_told: set[str] = set()

    # -- the public surface -------------------------------------------------

    def catch_up(self, progress=None) -> ScanReport:
        """The start: a full scan of the roots, like ``audiodb scan``."""
        return self._scan(self.roots, progress=progress, missing_ok=False, full=True)

    def run(self, *, catch_up_progress=None, on_catch_up: Callable[[ScanReport], None] | None = None) -> None:
        """Catch up, then follow events until :meth:`stop` (or KeyboardInterrupt)."""
        self._start_observer()
        try:
            report = self.catch_up(progress=catch_up_progress)
            if on_catch_up:
                on_catch_up(report)
            next_reconcile = time.monotonic() + self.reconcile
            while not self._stop.is_set():
                self._stop.wait(min(0.25, self.settle / 4 if self.settle > 0 else 0.25))
                if self._stop.is_set():
                    break
                self._check_observer()
                ready = self.dirty.settled(self.settle)
                if ready:
                    self._scan(ready, missing_ok=True)
                if time.monotonic() >= next_reconcile:
                    self._reconcile()
                    next_reconcile = time.monotonic() + self.reconcile
        finally:
            self.close()

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        if self._observer is not None:
            try:
                self._observer.stop()
                self._observer.join(timeout=5)
            except Exception:
                pass
            self._observer = None
        self.workers.close(kill=self._stop.is_set())

    # -- inside ---------------------------------------------------------------

    def _scan(self, paths: list[str], *, missing_ok: bool, progress=None, full: bool = False) -> ScanReport:
        # Several dirty paths under one folder: the folder alone would do, but a
        # scan of each path is what is cheap (no walk of the whole tree).
        # Files still waiting to settle are left out, even under a folder being scanned.
        # A watched folder that is gone (an unmounted drive) is not a deletion: nothing
        # under it is scanned until it is back.
        gone = [r for r in self.roots if not os.path.isdir(r)] if missing_ok else []
        paths = [p for p in paths if not any(p == r or p.startswith(r.rstrip(os.sep) + os.sep) for r in gone)]
        problems = [
            f"{to_stored(r)}: the watched folder cannot be read now (unmounted?); its tracks in "
            "the library are kept until it is back"
            for r in gone
        ]
        report = ScanReport()
        if paths:
            # A library held by another program (a duckdb shell) is waited for as long as it takes,
            # not AUDIODB_LOCK_TIMEOUT: a daemon keeps its work and says once who holds the file.
            try:
                with connection.wait_while_locked(self._stop.is_set):
                    report = scan_file(
                        self.file,
                        paths,
                        pool=self.workers,
                        missing_ok=missing_ok,
                        progress=progress,
                        on_change=self.on_change,
                        should_stop=self._stop.is_set,
                        skip=self.dirty.pending,
                    )
            except DatabaseLocked:
                if not self._stop.is_set():
                    raise
                return ScanReport(interrupted=True)  # stopped while waiting: the next start catches up
        problems += report.problems
        # Each problem is said once (a full scan forgets those that went away, so a return is told).
        for message in problems:
            if message not in self._problems_told:
                self._notice("warning: " + message)
        self._problems_told = set(problems) if full else self._problems_told | set(problems)
        return report

    def _reconcile(self) -> ScanReport:
        return self._scan(self.roots, missing_ok=True, full=True)

    def _notice(self, message: str) -> None:
        if self.on_notice:
            self.on_notice(message)

    def _start_observer(self) -> None:
        from watchdog.events import FileSystemEventHandler

        if self.poll:
            from watchdog.observers.polling import PollingObserver

            observer: Any = PollingObserver(timeout=self.poll)
        else:
            from watchdog.observers import Observer

            observer = Observer()
        dirty = self.dirty
        polling = bool(self.poll)

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event):
                kind = event.event_type
                if kind in ("opened", "closed_no_write") or (event.is_directory and kind == "modified"):
                    return  # a folder's own "modified" only echoes the file events inside it
                src, dest = os.fsdecode(event.src_path), os.fsdecode(getattr(event, "dest_path", "") or "")
                paths = [p for p in (src, dest) if p and not _hidden(p) and (event.is_directory or is_audio_path(p))]
                if paths:
                    dirty.touch(*paths, kind=kind if not event.is_directory else "dir", polling=polling)

        for root in self.roots:
            try:
                observer.schedule(Handler(), root, recursive=True)
            except OSError as e:
                self._limit(e)
        try:
            observer.start()
        except OSError as e:
            self._limit(e)
            return
        self._observer = observer

    def _limit(self, e: OSError) -> None:
        if e.errno in (errno.ENOSPC, errno.EMFILE) or "inotify" in str(e):
            if not self._limit_told:
                self._notice(INOTIFY_ADVICE)
                self._limit_told = True
        else:
            self._notice(f"Cannot watch for changes ({e}); relying on the reconcile scan every {self.reconcile:.0f} s.")

    def _check_observer(self) -> None:
        # The emitter threads die when adding a watch fails (the inotify limit on a
        # new subfolder): say so once, and the reconcile scan covers the rest.
        obs = self._observer
        if obs is None or self._limit_told:
            return
        emitters = getattr(obs, "emitters", ())
        if not obs.is_alive() or any(not em.is_alive() for em in emitters):
            self._notice(INOTIFY_ADVICE)
            self._limit_told = True


def _hidden(path: str) -> bool:
    return any(part.startswith(".") for part in path.split(os.sep) if part)
