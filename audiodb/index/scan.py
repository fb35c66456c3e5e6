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

from ..analysis.params import NOTEBOOK, FeatureParams, SegmentParams, parse_segmentation
from ..errors import UsageError
from ..paths import to_stored
from ..store import connection, tracks
from ..store import segments as segment_store
from ..store.connection import Creating, LibraryFile
from . import inprocess
from .discover import Found, discover
from .inprocess import InProcessPool, crash_mark
from .plan import Change, Plan, ScanReport, Track, make_plan
from .pools import AnalysisPool, DaskPool, ProcessPool
from .worker import Analysis, leave_if_worker_bootstrap
from .writer import BatchWriter

__all__ = ["apply_plan", "plan_scan", "register_segmentation", "scan", "scan_file"]


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
    segments: str | SegmentParams | None = None,
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
    ``segments`` (``'1.0/0.5'``, a preset such as ``'calls'``, or a :class:`SegmentParams`)
    registers that segmentation first; every scan keeps every registered one current.

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
        segments=segments,
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
    segments: str | SegmentParams | None = None,
) -> ScanReport:
    """:func:`scan` of the library ``file`` (what :meth:`audiodb.Library.scan` calls)."""
    leave_if_worker_bootstrap()
    given = pool  # a caller's pool (a watcher's, kept across scans) is the caller's to close
    segmentation = as_segmentation(segments, file) if segments is not None else None
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
    # Results are written every batch_size results or batch_seconds, whichever first. A batch costs
    # about 80 ms of this process's CPU whatever its size (open, write, checkpoint): on short clips,
    # which come back at a hundred or more a second, the 2 s bound decides, not the count.
    batch_size = batch_size or int(os.environ.get("AUDIODB_BATCH_SIZE", "512"))
    batch_seconds = batch_seconds or float(os.environ.get("AUDIODB_BATCH_SECONDS", "2"))
    report = ScanReport(dry_run=dry_run)
    # ``opened`` closes the pools this scan opens, and only those (a caller's pool is the caller's).
    # ``made`` closes a new library's first connection if no batch used it (an empty folder).
    with contextlib.ExitStack() as opened, contextlib.ExitStack() as made:
        if scheduler and not dry_run and pool is None:
            # Reached here, before the library is touched: an unreachable scheduler fails at once.
            pool = opened.enter_context(DaskPool(scheduler))
        # One scan of a library at a time: a second waits, then plans on what the first wrote.
        with _scan_lock(file, should_stop, enabled=not dry_run) as free:
            if not free:  # asked to stop while waiting
                report.interrupted = True
            else:
                if segmentation is not None and not dry_run:
                    register_segmentation(file, segmentation)
                decoded = [os.fsdecode(r) for r in roots]
                new = not file.path.exists()
                found = discover(decoded)
                # A scan that died analysing in its own process (a decoder crash?) left this: use workers.
                mark = crash_mark(file.path)
                crashed = not dry_run and pool is None and mark.exists()
                early = None
                small = not crashed and inprocess.could_fit(size for size, _ in found.files.values())
                if not dry_run and pool is None and not small and _start_early():
                    # Its first worker loads its libraries while the plan is made; killed if there is no work.
                    # A new library has every file found to analyse: every worker it will use starts now.
                    early = opened.enter_context(ProcessPool(workers))
                    early.start(min(workers, len(found.files)) if new else 1)
                # A new library is made in a thread while the first files are analysed.
                creating = made.enter_context(Creating(file.path, file.on_wait)) if new and not dry_run else None
                plan = plan_scan(file, decoded, report, retry_failed=retry_failed, skip=skip, found=found, new=new)
                if dry_run:
                    _record_planned(report, plan)
                else:
                    tasks = plan.extract + [t for ts in plan.segment_tasks.values() for t in ts]
                    if pool is None and tasks and not crashed and inprocess.fits(tasks):
                        pool = InProcessPool(mark)  # a few short files: less work than starting a worker
                        if early is not None:
                            early.close(kill=True)
                    elif pool is None and tasks:
                        from .chunks import workers_for  # a long file uses every worker

                        n = max(min(workers, len(tasks)), workers_for(plan.extract, workers))
                        pool = early or opened.enter_context(ProcessPool(n))
                    elif early is not None:
                        early.close(kill=True)
                    writer = BatchWriter(
                        file,
                        plan.existing,
                        report,
                        on_change,
                        batch_size,
                        batch_seconds,
                        backfill=plan.backfill,
                        first_connection=creating.connection if creating else None,
                    )
                    # The pools are let go before the last batch is written (closed after it on success, at once on
                    # an error or Ctrl-C), the lock released after.
                    apply_plan(
                        file,
                        plan,
                        report,
                        pool,
                        writer,
                        opened.pop_all(),
                        progress=progress,
                        should_stop=should_stop,
                        wind_down=pool is not None and pool is not given,
                    )
                    if crashed and not report.interrupted:
                        mark.unlink(missing_ok=True)  # its files are done, by workers
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
    found: Found | None = None,
    new: bool = False,
) -> Plan:
    """What a scan of ``roots`` (absolute) would do; writes nothing. Fills ``report``'s unchanged
    and skipped counts and its problems. ``found``: what :func:`~audiodb.index.discover.discover`
    saw under ``roots`` already. ``new``: the library does not exist yet (it is not opened: every
    file is new)."""
    rows: list = []
    failures: dict = {}
    segmentations: tuple[SegmentParams, ...] = ()
    lacking: dict[int, list[str]] = {}
    if not new:
        with file.connect(read_only=True) as con:
            rows, failures = tracks.load_state(con, file.params, file.extended)
            segmentations = tuple(segment_store.registered(con, file.params))
            lacking = segment_store.missing_segmentations(con, [s.id for s in segmentations])
    indexed = {r[1]: Track(*r) for r in rows}
    found = discover(roots) if found is None else found
    report.problems = found.problems
    report.skipped = len(found.skipped)
    report.skipped_files = [(to_stored(p), why) for p, why in found.skipped]
    if skip is not None:
        held = {p for p in found.files if skip(p)} | {p for p in indexed if skip(p)}
        for p in held:
            found.files.pop(p, None)
        indexed = {p: t for p, t in indexed.items() if p not in held}
    plan = make_plan(frozenset(roots), found.files, indexed, failures, retry_failed, found.unreadable)
    _plan_segments(plan, segmentations, lacking, indexed, found.files)
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


def as_segmentation(segments: str | SegmentParams, file: LibraryFile) -> SegmentParams:
    """``--segments``' value as the library's :class:`SegmentParams` (UsageError if it is not one)."""
    if isinstance(segments, SegmentParams):
        return segments
    try:
        return parse_segmentation(str(segments), file.params)
    except ValueError as e:
        raise UsageError(str(e)) from None


def register_segmentation(file: LibraryFile, segmentation: SegmentParams) -> bool:
    """Register ``segmentation`` in the library (once); True if it is new."""
    with file.connect(read_only=False) as con:
        con.execute("BEGIN TRANSACTION")
        new = segment_store.register_segmentation(con, segmentation)
        con.execute("COMMIT")
    return new


def _plan_segments(plan: Plan, segmentations, lacking: dict[int, list[str]], indexed, files) -> None:
    """The files a scan gives segments only: indexed, found, not re-analysed, lacking some."""
    plan.segmentations = segmentations
    if not lacking:
        return
    extract = {p for p, _ in plan.extract}
    staying = [(p, t) for p, t in indexed.items() if p in files and p not in extract]
    staying += [(new_path, t) for t, new_path, _, _ in plan.moves]
    for path, t in sorted(staying, key=lambda pt: pt[0]):
        ids = lacking.get(t.track_id)
        if ids:
            plan.segment_tasks.setdefault(tuple(ids), []).append((path, t.content_hash))


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
    wind_down: bool = False,
) -> None:
    """Do ``plan``: moves and removals first, in one transaction, with the feature sets; then
    ``pool`` analyses what is to be extracted and ``writer`` writes it. ``owned`` is left (closing
    the pools it holds, at once on an error or Ctrl-C) before the last batch is written: what
    finished is kept, in whole rows. ``wind_down``: ``pool`` is this scan's, and its workers exit
    while the last batch is written (``owned`` then waits for them)."""
    try:
        with owned or contextlib.nullcontext():
            _apply_moves_and_removals(file, plan, report, writer.on_change)
            # With segmentations registered, the workers compute them from the same decode.
            work = Analysis(file.params, plan.segmentations) if plan.segmentations else file.params
            if plan.extract:
                assert pool is not None, "a plan with files to extract comes with a pool"
                report.interrupted = not pool.run(plan.extract, work, writer, progress, should_stop)
            for ids, tasks in plan.segment_tasks.items():
                if report.interrupted:
                    break
                assert pool is not None, "a plan with segments to compute comes with a pool"
                only = tuple(s for s in plan.segmentations if s.id in ids)
                work = Analysis(file.params, only, segments_only=True)
                report.interrupted = not pool.run(tasks, work, writer, progress, should_stop)
            if wind_down and pool is not None and not report.interrupted:
                pool.wind_down()
                writer.flush()
    finally:
        writer.flush()


def _apply_moves_and_removals(file: LibraryFile, plan: Plan, report: ScanReport, on_change) -> None:
    if not (plan.moves or plan.touched or plan.removes or plan.forget_failures):
        return  # nothing to write: the library is not opened (the feature sets go in with the first vectors)
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
