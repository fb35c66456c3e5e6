"""Incremental indexing: plan what changed under some folders, then do only that.

:func:`plan_scan` reads the library and the folders and decides (:mod:`.plan`);
a dry run stops there. :func:`apply_plan` writes moves and removals in one
transaction, then has the pool (:mod:`.pools`) analyse the rest in ``spawn``
worker processes or on Dask, while only this process writes, in short batches
(:mod:`.writer`), so a kill at any moment loses at most the batch in flight
and the next scan finishes the job.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterable

from ..analysis.params import NOTEBOOK, FeatureParams
from ..errors import UsageError
from ..paths import to_stored
from ..store import connection, tracks
from ..store.connection import LibraryFile
from .discover import discover
from .plan import Change, Plan, ScanReport, Track, make_plan
from .pools import AnalysisPool, DaskPool, ProcessPool
from .worker import leave_if_worker_bootstrap
from .writer import BatchWriter

__all__ = ["apply_plan", "plan_scan", "scan", "scan_file"]


def scan(
    roots: Iterable[str | os.PathLike],
    *,
    db: str | os.PathLike | None = None,
    workers: int | None = None,
    dry_run: bool = False,
    retry_failed: bool = False,
    params: FeatureParams = NOTEBOOK,
    progress: Callable[[int, int, str], None] | None = None,
    on_change: Callable[[Change], None] | None = None,
    on_wait: Callable[[str], None] | None = None,
    batch_size: int | None = None,
    batch_seconds: float | None = None,
    missing_ok: bool = False,
    pool: AnalysisPool | None = None,
    should_stop: Callable[[], bool] | None = None,
    scheduler: str | None = None,
    skip: Callable[[str], bool] | None = None,
) -> ScanReport:
    """Bring the library in line with what is under ``roots`` now.

    New files are analysed and added; changed ones (size or mtime) are
    re-analysed; a new path whose content matches a vanished track is a move;
    tracks whose files are gone from under ``roots`` are removed. Unchanged
    files are not opened. Files that cannot be analysed are recorded in
    ``failures`` and not retried until they change (or ``retry_failed``).

    ``missing_ok`` lets a root be gone (the watcher passes paths that were
    deleted: their tracks are removed); ``pool`` reuses worker processes;
    ``should_stop`` is polled to end early, keeping what was finished.
    ``skip(path)`` true leaves a file out entirely (the watcher's files still
    being written): not analysed, and its track, if any, not removed.
    ``scheduler`` (``tcp://host:port``) sends the analysis to a Dask cluster
    whose workers see the same paths; it is reached before anything is written.

    Returns
    -------
    ScanReport
        Counts and the list of changes; nothing is written when ``dry_run``.
    """
    file = LibraryFile(connection.resolve_path(db), params, on_wait)
    return scan_file(
        file,
        roots,
        workers=workers,
        dry_run=dry_run,
        retry_failed=retry_failed,
        progress=progress,
        on_change=on_change,
        batch_size=batch_size,
        batch_seconds=batch_seconds,
        missing_ok=missing_ok,
        pool=pool,
        should_stop=should_stop,
        scheduler=scheduler,
        skip=skip,
    )


def scan_file(
    file: LibraryFile,
    roots: Iterable[str | os.PathLike],
    *,
    workers: int | None = None,
    dry_run: bool = False,
    retry_failed: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
    on_change: Callable[[Change], None] | None = None,
    batch_size: int | None = None,
    batch_seconds: float | None = None,
    missing_ok: bool = False,
    pool: AnalysisPool | None = None,
    should_stop: Callable[[], bool] | None = None,
    scheduler: str | None = None,
    skip: Callable[[str], bool] | None = None,
) -> ScanReport:
    """:func:`scan` of the library ``file`` (what :meth:`audiodb.Library.scan` calls)."""
    leave_if_worker_bootstrap()
    started = time.monotonic()
    roots = [os.path.abspath(os.fspath(r)) for r in roots]
    if not roots:
        raise UsageError("Nothing to scan: give one or more folders.")
    missing = [r for r in roots if not os.path.exists(r)]
    if missing and not missing_ok:
        raise UsageError(
            f"Folder not found: {to_stored(missing[0])}. Nothing was changed (a missing folder is not "
            "taken to mean its tracks were deleted; check the path or mount the drive)."
        )
    workers = max(1, workers or os.cpu_count() or 1)
    # Results are written every batch_size results or batch_seconds, whichever first.
    batch_size = batch_size or int(os.environ.get("AUDIODB_BATCH_SIZE", "64"))
    batch_seconds = batch_seconds or float(os.environ.get("AUDIODB_BATCH_SECONDS", "2"))
    report = ScanReport(dry_run=dry_run)
    # ``opened`` closes the pools this scan opens, and only those (a caller's pool is the caller's).
    with contextlib.ExitStack() as opened:
        if scheduler and not dry_run and pool is None:
            # Reached here, before the library is touched: an unreachable scheduler fails at once.
            pool = opened.enter_context(DaskPool(scheduler))
        # One scan of a library at a time: a second waits, then plans on what the first wrote.
        with _scan_lock(file, should_stop, enabled=not dry_run) as free:
            if not free:  # asked to stop while waiting
                report.interrupted = True
            else:
                early = None
                if not dry_run and pool is None and _start_early():
                    # Its first worker loads its libraries while the plan is made; killed if there is no work.
                    early = opened.enter_context(ProcessPool(workers))
                    early.start()
                plan = plan_scan(file, [os.fsdecode(r) for r in roots], report, retry_failed=retry_failed, skip=skip)
                if dry_run:
                    _record_planned(report, plan)
                else:
                    if pool is None and plan.extract:
                        pool = early or opened.enter_context(ProcessPool(min(workers, len(plan.extract))))
                    elif early is not None:
                        early.close(kill=True)
                    writer = BatchWriter(file, plan.existing, report, on_change, batch_size, batch_seconds)
                    # The pools are closed before the last batch is written, the lock released after.
                    apply_plan(
                        file, plan, report, pool, writer, opened.pop_all(), progress=progress, should_stop=should_stop
                    )
    report.seconds = time.monotonic() - started
    return report


def _start_early() -> bool:
    """Start a worker before the plan says there is work? Yes unless AUDIODB_EARLY_WORKER=0: a
    rescan that finds nothing to do kills it (mid-import, within the plan's time)."""
    return os.environ.get("AUDIODB_EARLY_WORKER", "1") != "0"


def plan_scan(
    file: LibraryFile,
    roots: list[str],
    report: ScanReport,
    *,
    retry_failed: bool = False,
    skip: Callable[[str], bool] | None = None,
) -> Plan:
    """What a scan of ``roots`` (absolute) would do; writes nothing (it creates a library that
    does not exist yet). Fills ``report``'s unchanged and skipped counts and its problems."""
    exists = file.path.exists()
    with file.connect(read_only=exists) as con:
        rows, failures = tracks.load_state(con, file.params, file.extended)
    indexed = {r[1]: Track(*r) for r in rows}
    found = discover(roots)
    report.problems = found.problems
    report.skipped = len(found.skipped)
    report.skipped_files = [(to_stored(p), why) for p, why in found.skipped]
    if skip is not None:
        held = {p for p in found.files if skip(p)} | {p for p in indexed if skip(p)}
        for p in held:
            found.files.pop(p, None)
        indexed = {p: t for p, t in indexed.items() if p not in held}
    plan = make_plan(frozenset(roots), found.files, indexed, failures, retry_failed, found.unreadable)
    report.unchanged = plan.unchanged
    report.skipped_failures = plan.skipped
    for folder, why in sorted(found.unreadable.items()):
        n = plan.kept.get(folder, 0)
        report.problems.append(
            f"{to_stored(folder)}: {why}; "
            + (
                f"its {n} track{'s' if n != 1 else ''} in the library {'were' if n != 1 else 'was'} kept "
                "(removed only once it can be read and the files are really gone)"
                if n
                else "skipped"
            )
        )
    return plan


def _record_planned(report: ScanReport, plan: Plan) -> None:
    """A dry run's changes: what :func:`apply_plan` would do."""
    for t, new_path, _, _ in plan.moves:
        report.record(Change("moved", to_stored(new_path), old_path=to_stored(t.path)))
    for t in plan.removes:
        report.record(Change("removed", to_stored(t.path)))
    for path, _ in plan.extract:
        report.record(Change("updated" if path in plan.existing else "added", to_stored(path)))


def apply_plan(
    file: LibraryFile,
    plan: Plan,
    report: ScanReport,
    pool: AnalysisPool | None,
    writer: BatchWriter,
    owned: contextlib.AbstractContextManager | None = None,
    *,
    progress: Callable[[int, int, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> None:
    """Do ``plan``: moves and removals first, in one transaction, with the feature sets; then
    ``pool`` analyses what is to be extracted and ``writer`` writes it. ``owned`` is left (closing
    the pools it holds, at once on an error or Ctrl-C) before the last batch is written: what
    finished is kept, in whole rows."""
    try:
        with owned or contextlib.nullcontext():
            _apply_moves_and_removals(file, plan, report, writer.on_change)
            if plan.extract:
                assert pool is not None, "a plan with files to extract comes with a pool"
                report.interrupted = not pool.run(plan.extract, file.params, writer, progress, should_stop)
    finally:
        writer.flush()


def _apply_moves_and_removals(file: LibraryFile, plan: Plan, report: ScanReport, on_change) -> None:
    with file.connect(read_only=False) as con:
        tracks.apply_moves_and_removals(
            con,
            file.params,
            file.extended,
            moves=[(t.track_id, new_path, size, mtime) for t, new_path, size, mtime in plan.moves],
            touched=[(t.track_id, mtime) for t, mtime in plan.touched],
            removed=[t.track_id for t in plan.removes],
            forget_failures=plan.forget_failures,
        )
    for t, new_path, _, _ in plan.moves:
        report.record(Change("moved", to_stored(new_path), old_path=to_stored(t.path)))
        if on_change:
            on_change(report.changes[-1])
    for t in plan.removes:
        report.record(Change("removed", to_stored(t.path)))
        if on_change:
            on_change(report.changes[-1])


@contextlib.contextmanager
def _scan_lock(file: LibraryFile, should_stop, *, enabled: bool = True):
    """Hold ``<library>.scan.lock`` (an ``fcntl`` lock, freed if the process dies) while
    scanning; yields False if ``should_stop()`` became true while waiting for it."""
    if not enabled:
        yield True
        return
    db_path, on_wait = file.path, file.on_wait
    lock_path = db_path.with_name(db_path.name + ".scan.lock")
    try:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:  # a read-only place: opening the library will say what is wrong
        yield True
        return
    try:
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                pass
            if not told:
                told = True
                pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
                if on_wait:
                    on_wait(
                        f"Another scan of this library ({db_path}) is running (pid {pid}); "
                        "waiting for it to finish, then scanning what it left..."
                    )
            if should_stop is not None and should_stop():
                yield False
                return
            time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield True
    finally:
        os.close(fd)  # releases the lock
