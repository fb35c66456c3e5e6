"""Writing what the workers return, in short batches of one transaction each.

Only the scanning process writes; a kill at any moment loses at most the
batch in flight, and the next scan finishes the job.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager

from ..paths import to_stored
from ..store import tracks
from ..store.connection import LibraryFile
from .plan import Change, ScanReport

__all__ = ["BatchWriter"]


class BatchWriter:
    """Collects worker results and writes them in batches, one transaction each.

    A batch is written every ``batch_size`` results or ``batch_seconds`` after its
    first, whichever comes first, and by :meth:`flush`; each written result becomes
    a :class:`Change` in ``report`` (and goes to ``on_change``).
    """

    def __init__(
        self,
        file: LibraryFile,
        existing: set[str],
        report: ScanReport,
        on_change: Callable[[Change], None] | None,
        batch_size: int,
        batch_seconds: float,
        backfill: set[str] | frozenset[str] = frozenset(),
        first_connection: Callable[[], AbstractContextManager] | None = None,
    ):
        self.file, self.existing, self.report, self.on_change = file, existing, report, on_change
        self.backfill = backfill  # files whose tags are read for the first time: unchanged, not updated
        self.batch_size, self.batch_seconds = batch_size, batch_seconds
        self.pending: dict[str, dict] = {}  # by path: a batch never holds one path twice
        self.last_flush = time.monotonic()
        self.broken = False  # a batch failed to write: the error is on its way to the caller
        self.described = False  # the feature sets are in the library (written with the first vectors)
        # The first batch's connection, if not a new one (a new library's, open already).
        self.first_connection = first_connection

    def add(self, result: dict) -> None:
        if result["status"] == "ok" and "extended" not in result:
            # A Dask worker running an audiodb from before the second feature set.
            result = {
                "path": result["path"],
                "size": result.get("size"),
                "mtime_ns": result.get("mtime_ns"),
                "status": "failed",
                "reason": "the worker that analysed it runs an older audiodb (no extended features); "
                "install the same audiodb version on every Dask worker",
            }
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
        segmented = [r for r in results if r["status"] == "segments"]  # files whose vectors are current
        opening = self.first_connection() if self.first_connection else self.file.connect(read_only=False)
        self.first_connection = None
        try:
            with opening as con:
                tracks.write_results(
                    con, self.file.params, self.file.extended, ok, same, failed, segmented, describe=not self.described
                )
        except Exception:
            # scan()'s closing flush must not try a batch that failed to write (or a library that
            # could not be opened or made) again; after Ctrl-C it does: what finished is kept.
            self.broken = True
            raise
        self.pending.clear()
        self.described = self.described or bool(ok)
        self.report.segments_only += len(segmented)
        filled = [r for r in same if r["path"] in self.backfill]
        same = [r for r in same if r["path"] not in self.backfill]
        self.report.unchanged += len(filled)
        for r in ok + same:
            kind = "updated" if r["path"] in self.existing else "added"
            self._emit(Change(kind, to_stored(r["path"])))
        self.report.retagged += sum("audio_hash" in r for r in same)
        for r in failed:
            self._emit(Change("failed", to_stored(r["path"]), reason=r["reason"]))

    def _emit(self, change: Change) -> None:
        self.report.record(change)
        if self.on_change:
            self.on_change(change)
