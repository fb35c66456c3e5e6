"""Incremental indexing: plan what changed under some folders, then do only that.

A file's signature (size, mtime) decides whether to look closer; its content
hash decides whether it really changed or merely moved; the feature-set id
decides whether its stored vector is current. Extraction runs in ``spawn``
worker processes; only this process writes, in short batches of one
transaction each, so a kill at any moment loses at most the batch in flight
and the next scan finishes the job.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from .store import connection
from .discover import discover
from .errors import UsageError
from .paths import from_stored, to_stored
from .analysis.params import ExtendedParams
from .analysis.embed import content_hash
from .index.worker import THREAD_ENV, analyse, init_worker
from .analysis.params import NOTEBOOK, FeatureParams

__all__ = ["Change", "ScanReport", "Workers", "scan"]

COUNT_KEYS = ("added", "updated", "moved", "removed", "unchanged", "failed")


@dataclasses.dataclass
class Change:
    """One change to the library: kind is added, updated, moved, removed or failed.

    Paths are as stored in the library (:func:`audiodb.paths.to_stored`: printable;
    :func:`audiodb.paths.from_stored` gives the real path).
    """

    kind: str
    path: str
    old_path: str | None = None
    reason: str | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclasses.dataclass
class ScanReport:
    """What a scan did (or, with ``dry_run``, would do)."""

    added: int = 0
    updated: int = 0
    moved: int = 0
    removed: int = 0
    unchanged: int = 0
    failed: int = 0
    skipped_failures: int = 0  # known failures, unchanged since, not retried
    skipped: int = 0  # files seen but not read (unsupported type, not audio), see skipped_files
    skipped_files: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (path, reason)
    dry_run: bool = False
    interrupted: bool = False
    changes: list[Change] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in COUNT_KEYS}

    def _record(self, change: Change) -> None:
        self.changes.append(change)
        setattr(self, change.kind, getattr(self, change.kind) + 1)


@dataclasses.dataclass
class _Track:
    track_id: int
    path: str
    size: int
    mtime_ns: int
    content_hash: str
    current: bool


@dataclasses.dataclass
class _Plan:
    unchanged: int = 0
    skipped: int = 0
    extract: list[tuple[str, str | None]] = dataclasses.field(default_factory=list)  # path, known hash
    existing: set[str] = dataclasses.field(default_factory=set)  # extract paths already indexed
    moves: list[tuple[_Track, str, int, int]] = dataclasses.field(default_factory=list)
    touched: list[tuple[_Track, int]] = dataclasses.field(default_factory=list)  # same content, new mtime
    kept: dict[str, int] = dataclasses.field(default_factory=dict)  # unreadable folder -> tracks kept
    removes: list[_Track] = dataclasses.field(default_factory=list)
    forget_failures: list[str] = dataclasses.field(default_factory=list)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def _under(path: str, roots: frozenset[str]) -> bool:
    """Is ``path`` one of ``roots`` or inside one? O(depth), for many roots."""
    while True:
        if path in roots:
            return True
        parent = os.path.dirname(path)
        if parent == path:
            return False
        path = parent


def _load_state(con, params: FeatureParams) -> tuple[dict[str, _Track], dict[str, tuple[int, int]]]:
    # Current: both feature sets' vectors are there (a library from before the second set
    # gets it on its next scan, one decode per file).
    rows = con.execute(
        """SELECT t.track_id, t.path, t.size, t.mtime_ns, t.content_hash,
                  e.track_id IS NOT NULL AND x.track_id IS NOT NULL
           FROM track_files t
           LEFT JOIN embeddings e ON e.track_id = t.track_id AND e.feature_set = ?
           LEFT JOIN extended_embeddings x ON x.track_id = t.track_id AND x.feature_set = ?""",
        [params.id, ExtendedParams(base=params).id],
    ).fetchall()
    # Keyed by the real path (what discover sees); see audiodb.paths.
    tracks = {}
    for r in rows:
        t = _Track(*r)
        t.path = from_stored(t.path)
        tracks[t.path] = t
    failures = {from_stored(p): (s, m)
                for p, s, m in con.execute("SELECT path, size, mtime_ns FROM failures").fetchall()}
    return tracks, failures


def _plan(
    roots: frozenset[str],
    files: dict[str, tuple[int, int]],
    tracks: dict[str, _Track],
    failures: dict[str, tuple[int, int]],
    retry_failed: bool,
    unreadable: dict[str, str] | None = None,
) -> _Plan:
    plan = _Plan()
    new: list[str] = []
    for path, (size, mtime) in sorted(files.items()):
        t = tracks.get(path)
        if t is not None:
            if t.size == size and t.mtime_ns == mtime and t.current:
                plan.unchanged += 1
                continue
            if t.size == size and t.current:
                # Only touched (a copy, a tag editor that wrote nothing): same content is
                # unchanged; its mtime is updated, nothing is decoded, no worker started.
                try:
                    same = content_hash(path) == t.content_hash
                except OSError:
                    same = False  # the worker will record why it cannot be read
                if same:
                    plan.touched.append((t, mtime))
                    plan.unchanged += 1
                    continue
            plan.extract.append((path, None))
            plan.existing.add(path)
        elif not retry_failed and failures.get(path) == (size, mtime):
            plan.skipped += 1
        else:
            new.append(path)

    # An unreadable folder, or a symlink to an unmounted drive, is not a deletion.
    cannot_see = frozenset(unreadable or ())
    vanished = []
    for p, t in tracks.items():
        if p in files or not _under(p, roots):
            continue
        if cannot_see and _under(p, cannot_see):
            top = next(u for u in _ancestors(p) if u in cannot_see)
            plan.kept[top] = plan.kept.get(top, 0) + 1
        else:
            vanished.append(t)
    # A move keeps the size: only new files of a vanished track's size are hashed.
    # Tracks outside the scanned folders count as vanished only if their file is gone.
    by_size: dict[int, list[_Track]] = {}
    for t in vanished:
        by_size.setdefault(t.size, []).append(t)
    outside_sizes: dict[int, list[_Track]] = {}
    for p, t in tracks.items():
        if not _under(p, roots):
            outside_sizes.setdefault(t.size, []).append(t)
    claimed: set[int] = set()
    for path in new:
        size, mtime = files[path]
        candidates = by_size.get(size, []) + [
            t for t in outside_sizes.get(size, []) if not os.path.exists(t.path)
        ]
        candidates = [t for t in candidates if t.track_id not in claimed]
        if candidates:
            try:
                digest = content_hash(path)
            except OSError:
                digest = None
            match = next((t for t in candidates if t.content_hash == digest), None)
            if match is not None:
                claimed.add(match.track_id)
                plan.moves.append((match, path, size, mtime))
                continue
        plan.extract.append((path, None))
    plan.removes = [t for t in vanished if t.track_id not in claimed]
    plan.forget_failures = [p for p in failures if _under(p, roots) and p not in files
                            and not (cannot_see and _under(p, cannot_see))]
    return plan


def _ancestors(path: str):
    while True:
        yield path
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent


def _register_feature_set(con, params: FeatureParams) -> None:
    for fs in (params, ExtendedParams(base=params)):
        con.execute(
            "INSERT INTO feature_sets VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [fs.id, fs.name, fs.dims, fs.as_json(), fs.feature_names(), _now()],
        )


def _delete_tracks(con, track_ids: list[int]) -> None:
    if track_ids:
        con.execute("DELETE FROM cluster_assignments WHERE list_contains(?, track_id)", [track_ids])
        con.execute("DELETE FROM embeddings WHERE list_contains(?, track_id)", [track_ids])
        con.execute("DELETE FROM extended_embeddings WHERE list_contains(?, track_id)", [track_ids])
        con.execute("DELETE FROM track_files WHERE list_contains(?, track_id)", [track_ids])


_WORKER_MARK = "AUDIODB_SCAN_WORKER"  # set in our workers' environment
_BOOTSTRAP_EXIT = 75


def _leave_if_worker_bootstrap() -> None:
    """A worker re-running an unguarded main script reached a scan: leave quietly.

    ``spawn`` workers run the main script's top level again (as ``__mp_main__``)
    before they take work. Scanning there would plan and write again and start
    workers of its own; the parent sees its pool die before any worker started
    and explains what to add (:meth:`Workers.run`).
    """
    if not os.environ.get(_WORKER_MARK):
        return
    rerun = sys.modules.get("__mp_main__")  # runpy's module for the script while it runs again
    if getattr(multiprocessing.current_process(), "_inheriting", False) or (
            rerun is not None and rerun is not sys.modules.get("__main__")):
        os._exit(_BOOTSTRAP_EXIT)


@contextlib.contextmanager
def _worker_env():
    # Spawned workers inherit this environment: one BLAS thread each, and the mark of an audiodb worker.
    saved = {k: os.environ.get(k) for k in (*THREAD_ENV, _WORKER_MARK)}
    os.environ.update({k: "1" for k in (*THREAD_ENV, _WORKER_MARK)})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class _Writer:
    """Collects worker results and writes them in batches, one transaction each."""

    def __init__(self, db_path, params: FeatureParams, existing: set[str], report: ScanReport,
                 on_change, on_wait, batch_size: int, batch_seconds: float):
        self.db_path, self.params, self.existing, self.report = db_path, params, existing, report
        self.on_change, self.on_wait = on_change, on_wait
        self.batch_size, self.batch_seconds = batch_size, batch_seconds
        self.pending: dict[str, dict] = {}  # by path: a batch never holds one path twice
        self.last_flush = time.monotonic()
        self.broken = False  # a batch failed to write: the error is on its way to the caller

    def add(self, result: dict) -> None:
        if result["status"] == "ok" and "extended" not in result:
            # A Dask worker running an audiodb from before the second feature set.
            result = {"path": result["path"], "size": result.get("size"), "mtime_ns": result.get("mtime_ns"),
                      "status": "failed",
                      "reason": "the worker that analysed it runs an older audiodb (no extended features); "
                                "install the same audiodb version on every Dask worker"}
        if not self.pending:
            self.last_flush = time.monotonic()  # a batch's clock starts with its first result
        self.pending[result["path"]] = result
        if len(self.pending) >= self.batch_size or time.monotonic() - self.last_flush > self.batch_seconds:
            self.flush()

    def flush(self) -> None:
        self.last_flush = time.monotonic()
        if not self.pending or self.broken:
            return
        results = list(self.pending.values())
        ok = [r for r in results if r["status"] == "ok"]
        same = [r for r in results if r["status"] == "same"]
        failed = [r for r in results if r["status"] == "failed"]
        now = _now()
        with connection.connect(self.db_path, on_wait=self.on_wait) as con:
            con.execute("BEGIN TRANSACTION")
            try:
                if ok:
                    self._write_ok(con, ok, now)
                for r in same:
                    con.execute(
                        "UPDATE track_files SET size = ?, mtime_ns = ? WHERE path = ?",
                        [r["size"], r["mtime_ns"], to_stored(r["path"])],
                    )
                for r in failed:
                    con.execute(
                        "INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?, ?)",
                        [to_stored(r["path"]), r.get("size"), r.get("mtime_ns"), r["reason"], now],
                    )
                    # A changed file that no longer decodes: its old vector is stale.
                    ids = [row[0] for row in con.execute(
                        "SELECT track_id FROM track_files WHERE path = ?", [to_stored(r["path"])]).fetchall()]
                    _delete_tracks(con, ids)
                con.execute("COMMIT")
            except BaseException as e:
                # scan()'s closing flush must not try a batch that failed to write again (after
                # Ctrl-C it does: what finished is kept).
                self.broken = isinstance(e, Exception)
                # A COMMIT that failed (a full disk) has already ended the transaction.
                with contextlib.suppress(Exception):
                    con.execute("ROLLBACK")
                raise
        self.pending.clear()
        for r in ok + same:
            kind = "updated" if r["path"] in self.existing else "added"
            self._emit(Change(kind, to_stored(r["path"])))
        for r in failed:
            self._emit(Change("failed", to_stored(r["path"]), reason=r["reason"]))

    def _emit(self, change: Change) -> None:
        self.report._record(change)
        if self.on_change:
            self.on_change(change)

    def _write_ok(self, con, ok: list[dict], now) -> None:
        import numpy as np
        import pyarrow as pa

        dims = self.params.dims
        ext = ExtendedParams(base=self.params)
        vectors = np.stack([r["vector"] for r in ok]).astype(np.float32).reshape(-1)
        extended = np.stack([r["extended"] for r in ok]).astype(np.float32).reshape(-1)
        batch = pa.table({
            "path": [to_stored(r["path"]) for r in ok],
            "file_name": [to_stored(os.path.basename(r["path"])) for r in ok],
            "folder": [to_stored(os.path.dirname(r["path"])) for r in ok],
            "size": pa.array([r["size"] for r in ok], pa.int64()),
            "mtime_ns": pa.array([r["mtime_ns"] for r in ok], pa.int64()),
            "content_hash": [r["content_hash"] for r in ok],
            "duration_sec": pa.array([r["duration_sec"] for r in ok], pa.float64()),
            "sample_rate": pa.array([r["sample_rate"] for r in ok], pa.int32()),
            "native_sample_rate": pa.array([r["native_sample_rate"] for r in ok], pa.int32()),
            "channels": pa.array([r["channels"] for r in ok], pa.int32()),
            "codec": [r["codec"] for r in ok],
            "container": [r["container"] for r in ok],
            "decoder": [r["decoder"] for r in ok],
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors, pa.float32()), dims),
            "extended": pa.FixedSizeListArray.from_arrays(pa.array(extended, pa.float32()), ext.dims),
        })
        con.register("scan_batch", batch)
        try:
            con.execute(
                """INSERT INTO track_files (path, file_name, folder, size, mtime_ns, content_hash,
                       duration_sec, sample_rate, native_sample_rate, channels, codec, container,
                       decoder, indexed_at)
                   SELECT path, file_name, folder, size, mtime_ns, content_hash, duration_sec,
                       sample_rate, native_sample_rate, channels, codec, container, decoder, ?
                   FROM scan_batch
                   ON CONFLICT (path) DO UPDATE SET
                       size = excluded.size, mtime_ns = excluded.mtime_ns,
                       content_hash = excluded.content_hash, duration_sec = excluded.duration_sec,
                       sample_rate = excluded.sample_rate,
                       native_sample_rate = excluded.native_sample_rate,
                       channels = excluded.channels, codec = excluded.codec,
                       container = excluded.container, decoder = excluded.decoder,
                       indexed_at = excluded.indexed_at""",
                [now],
            )
            con.execute(
                f"""INSERT OR REPLACE INTO embeddings
                    SELECT t.track_id, ?, b.vector::FLOAT[{dims}], ?
                    FROM scan_batch b JOIN track_files t USING (path)""",
                [self.params.id, now],
            )
            con.execute(
                f"""INSERT OR REPLACE INTO extended_embeddings
                    SELECT t.track_id, ?, b.extended::FLOAT[{ext.dims}], ?
                    FROM scan_batch b JOIN track_files t USING (path)""",
                [ext.id, now],
            )
            con.execute("DELETE FROM failures WHERE path IN (SELECT path FROM scan_batch)")
        finally:
            con.unregister("scan_batch")


class Workers:
    """A pool of ``spawn`` worker processes that analyse files; reusable across scans.

    Workers never open the database; they return plain values. A worker that
    dies (a decoder crash, the OOM killer) breaks the pool: it is replaced,
    what was in flight is retried once, and a file in flight at two deaths is
    recorded as a failure.
    """

    def __init__(self, n: int | None = None):
        self.n = max(1, n or os.cpu_count() or 1)
        self._pool: ProcessPoolExecutor | None = None
        self._started = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            ctx = multiprocessing.get_context("spawn")
            self._started = ctx.Event()
            self._pool = ProcessPoolExecutor(
                max_workers=self.n, mp_context=ctx,
                initializer=init_worker, initargs=(os.getpid(), self._started))
        return self._pool

    def close(self, *, kill: bool = False) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if kill:  # don't wait for a long file to finish: end the processes now
            for proc in list(getattr(pool, "_processes", {}).values()):
                with contextlib.suppress(Exception):
                    proc.terminate()
        pool.shutdown(wait=not kill, cancel_futures=True)

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc) -> None:
        self.close(kill=exc[0] is not None)

    def run(self, tasks, params: FeatureParams, writer: _Writer, progress=None, should_stop=None) -> bool:
        """Analyse ``tasks`` ((path, known_hash) pairs), handing results to ``writer``.

        Returns False if ``should_stop()`` became true before all were done.
        """
        total, done = len(tasks), 0
        attempts: dict[str, int] = {}
        queue = list(reversed(tasks))
        inflight: dict = {}
        while queue or inflight:
            try:
                pool = self._executor()
                with _worker_env():  # a submit may start a worker process: it inherits this environment
                    while queue and len(inflight) < 2 * self.n:
                        path, known = queue.pop()
                        inflight[pool.submit(analyse, path, known, params)] = (path, known)
                finished, _ = wait(list(inflight), timeout=0.25, return_when=FIRST_COMPLETED)
                for fut in finished:
                    result = fut.result()  # analyse() never raises; a dead worker does, and its file stays in flight
                    path, _known = inflight.pop(fut)
                    writer.add(result)
                    done += 1
                    if progress:
                        progress(done, total, path)
                if should_stop is not None and should_stop():
                    self.close(kill=True)
                    return False
            except BrokenProcessPool:
                started = self._started is not None and self._started.is_set()
                self.close(kill=True)
                if not started:
                    raise UsageError(
                        "The worker processes that analyse files died while starting, before any file was "
                        "analysed (none is recorded as failed). They are started with 'spawn', which runs the "
                        "main script's top level again in each: if your script calls Library.scan (or "
                        "audiodb.scan) at its top level, put that call under "
                        "`if __name__ == \"__main__\":` and run it again."
                    ) from None
                for fut, (path, known) in list(inflight.items()):
                    if fut.done() and not fut.cancelled() and fut.exception() is None:
                        writer.add(fut.result())
                        done += 1
                        continue
                    attempts[path] = attempts.get(path, 0) + 1
                    if attempts[path] >= 2:
                        writer.add({"path": path, "status": "failed",
                                    "reason": "the decoder crashed on this file (worker process died)"})
                        done += 1
                        if progress:
                            progress(done, total, path)
                    else:
                        queue.append((path, known))
                inflight.clear()
        return True


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
    pool: Workers | None = None,
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
    _leave_if_worker_bootstrap()
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
    if scheduler and not dry_run and pool is None:
        from .remote import DaskWorkers

        pool = DaskWorkers(scheduler)  # fails here, before the library is touched, if unreachable

    db_path = connection.resolve_path(db)
    # One scan of a library at a time: a second waits, then plans on what the first wrote.
    with _scan_lock(db_path, on_wait, should_stop, enabled=not dry_run) as free:
        if not free:  # asked to stop while waiting
            if scheduler and pool is not None:
                pool.close()
            report.interrupted = True
            report.seconds = time.monotonic() - started
            return report
        return _scan_locked(
            roots, db_path, report, started, workers=workers, dry_run=dry_run, retry_failed=retry_failed,
            params=params, progress=progress, on_change=on_change, on_wait=on_wait, batch_size=batch_size,
            batch_seconds=batch_seconds, pool=pool, should_stop=should_stop, scheduler=scheduler, skip=skip)


@contextlib.contextmanager
def _scan_lock(db_path, on_wait, should_stop, *, enabled: bool = True):
    """Hold ``<library>.scan.lock`` (an ``fcntl`` lock, freed if the process dies) while
    scanning; yields False if ``should_stop()`` became true while waiting for it."""
    if not enabled:
        yield True
        return
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
                    on_wait(f"Another scan of this library ({db_path}) is running (pid {pid}); "
                            "waiting for it to finish, then scanning what it left...")
            if should_stop is not None and should_stop():
                yield False
                return
            time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield True
    finally:
        os.close(fd)  # releases the lock


def _scan_locked(roots, db_path, report: ScanReport, started: float, *, workers, dry_run, retry_failed,
                 params, progress, on_change, on_wait, batch_size, batch_seconds, pool, should_stop,
                 scheduler, skip) -> ScanReport:
    exists = db_path.exists()
    with connection.connect(db_path, read_only=exists, on_wait=on_wait) as con:
        tracks, failures = _load_state(con, params)
    found = discover(roots)
    report.problems = found.problems
    report.skipped = len(found.skipped)
    report.skipped_files = [(to_stored(p), why) for p, why in found.skipped]
    if skip is not None:
        held = {p for p in found.files if skip(p)} | {p for p in tracks if skip(p)}
        for p in held:
            found.files.pop(p, None)
        tracks = {p: t for p, t in tracks.items() if p not in held}
    plan = _plan(frozenset(roots), found.files, tracks, failures, retry_failed, found.unreadable)
    report.unchanged = plan.unchanged
    report.skipped_failures = plan.skipped
    for folder, why in sorted(found.unreadable.items()):
        n = plan.kept.get(folder, 0)
        report.problems.append(
            f"{to_stored(folder)}: {why}; " + (
                f"its {n} track{'s' if n != 1 else ''} in the library {'were' if n != 1 else 'was'} kept "
                "(removed only once it can be read and the files are really gone)" if n else "skipped"))

    if dry_run:
        for t, new_path, _, _ in plan.moves:
            report._record(Change("moved", to_stored(new_path), old_path=to_stored(t.path)))
        for t in plan.removes:
            report._record(Change("removed", to_stored(t.path)))
        for path, _ in plan.extract:
            report._record(Change("updated" if path in plan.existing else "added", to_stored(path)))
        report.seconds = time.monotonic() - started
        return report

    own = (pool is None and bool(plan.extract)) or bool(scheduler)
    if pool is None and plan.extract:
        pool = Workers(min(workers, len(plan.extract)))

    # Moves and removals first, in one transaction, with the feature set.
    try:
        _apply_moves_and_removals(db_path, plan, params, report, on_change, on_wait)
    except BaseException:
        if own:
            pool.close()
        raise

    writer = _Writer(db_path, params, plan.existing, report, on_change, on_wait, batch_size, batch_seconds)
    try:
        if plan.extract:
            report.interrupted = not pool.run(plan.extract, params, writer, progress, should_stop)
    except BaseException:
        if own:
            pool.close(kill=True)
            own = False
        raise
    finally:
        if own:
            pool.close()
        writer.flush()  # what finished is kept, in whole rows
    report.seconds = time.monotonic() - started
    return report


def _apply_moves_and_removals(db_path, plan: _Plan, params: FeatureParams, report: ScanReport,
                              on_change, on_wait) -> None:
    """Moves and removals first, in one transaction, with the feature set."""
    with connection.connect(db_path, on_wait=on_wait) as con:
        con.execute("BEGIN TRANSACTION")
        _register_feature_set(con, params)
        now = _now()
        for t, new_path, size, mtime in plan.moves:
            con.execute(
                "UPDATE track_files SET path = ?, file_name = ?, folder = ?, size = ?, mtime_ns = ?, "
                "indexed_at = ? WHERE track_id = ?",
                [to_stored(new_path), to_stored(os.path.basename(new_path)),
                 to_stored(os.path.dirname(new_path)), size, mtime, now, t.track_id],
            )
        for t, mtime in plan.touched:
            con.execute("UPDATE track_files SET mtime_ns = ? WHERE track_id = ?", [mtime, t.track_id])
        _delete_tracks(con, [t.track_id for t in plan.removes])
        if plan.forget_failures:
            con.execute("DELETE FROM failures WHERE list_contains(?, path)",
                        [[to_stored(p) for p in plan.forget_failures]])
        con.execute("COMMIT")
    for t, new_path, _, _ in plan.moves:
        report._record(Change("moved", to_stored(new_path), old_path=to_stored(t.path)))
        if on_change:
            on_change(report.changes[-1])
    for t in plan.removes:
        report._record(Change("removed", to_stored(t.path)))
        if on_change:
            on_change(report.changes[-1])
