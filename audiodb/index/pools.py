"""Where files are analysed: a pool of local worker processes, or a Dask cluster.

Both take the same tasks and hand each result to the scan's writer; the scan
does not know which it has (:class:`AnalysisPool`). Without ``--scheduler``
nothing of Dask is imported.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import socket
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

from ..analysis.params import FeatureParams
from ..errors import AudiodbError, UsageError
from .worker import Analysis, analyse, analyse_many, init_worker, one_blas_thread, ready, worker_env
from .writer import BatchWriter

__all__ = ["AnalysisPool", "DaskPool", "ProcessPool", "analyse_chunk_on_worker", "analyse_on_worker"]


class AnalysisPool(Protocol):
    """What a scan needs of a pool: its size, a run over tasks, and closing (also as a context)."""

    n: int

    def run(
        self,
        tasks: Sequence[tuple[str, str | None]],
        params: FeatureParams | Analysis,
        writer: BatchWriter,
        progress: Callable[[int, int, str], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> bool:
        """Analyse ``tasks`` ((path, known hash) pairs), handing each result to ``writer``;
        False if ``should_stop()`` became true before all were done."""

    def wind_down(self) -> None:
        """No more tasks will come: let the workers go now, without waiting (:meth:`close` waits)."""

    def close(self, *, kill: bool = False) -> None:
        """Free the workers (``kill``: without waiting for files in flight)."""

    def __enter__(self) -> AnalysisPool: ...

    def __exit__(self, *exc) -> None: ...


class ProcessPool:
    """A pool of ``spawn`` worker processes that analyse files; reusable across scans.

    Workers never open the database; they return plain values. A worker that
    dies (a decoder crash, the OOM killer) breaks the pool: it is replaced,
    what was in flight is retried once, and a file in flight at two deaths is
    recorded as a failure.
    """

    def __init__(self, n: int | None = None):
        self.n = max(1, n or os.cpu_count() or 1)
        self._pool: ProcessPoolExecutor | None = None
        self._started: Any = None  # a spawn-context Event once the pool starts
        self._leaving: Any = None  # the thread that joins the workers of a pool wound down

    def start(self, workers: int = 1) -> None:
        """Start ``workers`` workers (at most :attr:`n`) now: they load their libraries while the
        caller does something else (the scan makes its plan meanwhile)."""
        with worker_env():
            pool = self._executor()
            for _ in range(max(1, min(workers, self.n))):
                pool.submit(ready)  # a process per submit while none is idle

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            ctx = multiprocessing.get_context("spawn")
            self._started = ctx.Event()
            self._pool = ProcessPoolExecutor(
                max_workers=self.n, mp_context=ctx, initializer=init_worker, initargs=(os.getpid(), self._started)
            )
        return self._pool

    def wind_down(self, *, kill: bool = False) -> None:
        """Let the workers go (``kill``: end them now, files in flight or not) without waiting for
        them: they exit while the caller does something else (a scan writes its last batch);
        :meth:`close` waits. A later :meth:`run` starts new workers."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        # Taken before shutdown(), which forgets it when it does not wait: joined by close().
        self._leaving = getattr(pool, "_executor_manager_thread", None) or self._leaving
        if kill:  # don't wait for a long file to finish: end the processes now
            for proc in list(getattr(pool, "_processes", {}).values()):
                with contextlib.suppress(Exception):
                    proc.terminate()
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self, *, kill: bool = False) -> None:
        self.wind_down(kill=kill)
        leaving, self._leaving = self._leaving, None
        if leaving is not None:
            # The executor's manager thread joins the workers, then closes its wake-up pipe. Left
            # running after a kill, it races concurrent.futures' exit hook, which then writes to the
            # closed pipe and prints a traceback (OSError: Bad file descriptor) as the process exits.
            leaving.join(timeout=10 if kill else None)

    def __enter__(self) -> ProcessPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close(kill=exc[0] is not None)

    def run(
        self, tasks, params: FeatureParams | Analysis, writer: BatchWriter, progress=None, should_stop=None
    ) -> bool:
        """Analyse ``tasks`` ((path, known_hash) pairs), handing results to ``writer``.

        Short files go to the workers in chunks (:func:`chunk_tasks`), so a worker's round trip
        and the parent's writes cost per chunk, not per file; a file in a chunk whose worker died
        is retried alone. Returns False if ``should_stop()`` became true before all were done.
        """
        tasks, progress, finished = self._long_files_first(tasks, params, writer, progress, should_stop)
        if not finished:
            return False
        total, done = len(tasks), 0
        attempts: dict[str, int] = {}
        queue = list(reversed(chunk_tasks(tasks, self.n)))
        n = min(self.n, len(queue))  # no more workers than chunks
        inflight: dict = {}
        while queue or inflight:
            try:
                pool = self._executor()
                # The executor starts a process per submit while none is idle, up to _max_workers
                # (those already started, e.g. by start(), stay).
                pool._max_workers = max(n, len(pool._processes))  # type: ignore[attr-defined]
                with worker_env():  # a submit may start a worker process: it inherits this environment
                    while queue and len(inflight) < 2 * n:
                        chunk = queue.pop()
                        inflight[pool.submit(analyse_many, chunk, params)] = chunk
                finished, _ = wait(list(inflight), timeout=0.25, return_when=FIRST_COMPLETED)
                for fut in finished:
                    results = fut.result()  # analyse() never raises; a dead worker does, and its chunk stays in flight
                    chunk = inflight.pop(fut)
                    for result in results:
                        writer.add(result)
                        done += 1
                        if progress:
                            progress(done, total, result["path"])
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
                        '`if __name__ == "__main__":` and run it again.'
                    ) from None
                for fut, chunk in list(inflight.items()):
                    if fut.done() and not fut.cancelled() and fut.exception() is None:
                        for result in fut.result():
                            writer.add(result)
                            done += 1
                            if progress:
                                progress(done, total, result["path"])
                        continue
                    for path, known in chunk:
                        attempts[path] = attempts.get(path, 0) + 1
                        if attempts[path] >= 2:
                            writer.add(
                                {
                                    "path": path,
                                    "status": "failed",
                                    "reason": "the decoder crashed on this file (worker process died)",
                                }
                            )
                            done += 1
                            if progress:
                                progress(done, total, path)
                        else:
                            queue.append([(path, known)])  # retried alone: one crash fails one file
                inflight.clear()
        return True

    def _long_files_first(self, tasks, params, writer, progress, should_stop):
        """The long files among ``tasks`` in chunks on all the workers (:mod:`.chunks`), combined here.

        Returns the other tasks (with any long file to analyse whole after all),
        ``progress`` for them (counting on from the long files), and False if
        ``should_stop()`` became true. A chunk's worker dying retries the file
        once; a second death records it as a failure.
        """
        from .chunks import LongFile, analyse_chunk, split_long

        jobs, rest = split_long(tasks, params, self.n)
        if not jobs:
            return tasks, progress, True
        done, attempts = 0, {}
        queue = [(job, args) for job in reversed(jobs) for args in reversed(job.tasks())]
        inflight: dict = {}
        live = set(jobs)  # jobs whose result is not written yet (a crash replaces a job)

        def settle(job) -> None:
            nonlocal done
            live.discard(job)
            result = job.result()
            if result["status"] == "whole":  # its data ends before its header says: analysed whole below
                rest.append((job.path, job.known_hash))
                return
            writer.add(result)
            done += 1
            if progress:
                progress(done, done + len(live) + len(rest), job.path)

        while queue or inflight:
            try:
                pool = self._executor()
                with worker_env():
                    while queue and len(inflight) < 2 * self.n:
                        job, args = queue.pop()
                        if job in live and not job.complete:
                            inflight[pool.submit(analyse_chunk, *args)] = job
                finished, _ = wait(list(inflight), timeout=0.25, return_when=FIRST_COMPLETED)
                for fut in finished:
                    job = inflight.pop(fut)
                    if job in live:
                        job.add(fut.result())  # analyse_chunk() never raises; a dead worker does
                        if job.complete:
                            settle(job)
                if should_stop is not None and should_stop():
                    self.close(kill=True)
                    return rest, progress, False
            except BrokenProcessPool:
                started = self._started is not None and self._started.is_set()
                self.close(kill=True)
                if not started:  # the main loop below meets the same and explains it
                    return tasks, progress, True
                for job in {j for j in inflight.values() if j in live}:
                    live.discard(job)
                    attempts[job.path] = attempts.get(job.path, 0) + 1
                    if attempts[job.path] >= 2:
                        writer.add(job.fail("the decoder crashed on this file (worker process died)"))
                        done += 1
                        if progress:
                            progress(done, done + len(live) + len(rest), job.path)
                        continue
                    again = LongFile(job.path, job.known_hash, job.src, job.params, len(job.ranges), job.segmentations)
                    live.add(again)
                    queue.extend((again, args) for args in reversed(again.tasks()))
                inflight.clear()

        def counted(d: int, t: int, path: str) -> None:
            progress(done + d, done + t, path)

        return rest, (counted if progress else None), True


#: A chunk of tasks sent to a worker at once holds files of at most CHUNK_BYTES together (a
#: file larger than that goes alone), at most CHUNK_FILES of them.
CHUNK_BYTES = 2 << 20
CHUNK_FILES = 32


def chunk_tasks(tasks: Sequence[tuple[str, str | None]], workers: int) -> list[list[tuple[str, str | None]]]:
    """``tasks`` in order, cut into chunks of short files (a file at or above the size limit alone).

    A chunk holds at most :data:`CHUNK_FILES` files and :data:`CHUNK_BYTES` bytes, and at most a
    quarter of the tasks' bytes per worker, so the last chunks still spread over the workers.
    """
    sizes = []
    for path, _known in tasks:
        try:
            sizes.append(os.stat(path).st_size)
        except OSError:
            sizes.append(0)  # the worker records why it cannot be read
    limit = max(1, min(CHUNK_BYTES, sum(sizes) // (4 * max(1, workers))))
    chunks: list[list[tuple[str, str | None]]] = []
    chunk: list[tuple[str, str | None]] = []
    held = 0
    for task, size in zip(tasks, sizes):
        if chunk and (held + size > limit or len(chunk) >= CHUNK_FILES):
            chunks.append(chunk)
            chunk, held = [], 0
        chunk.append(task)
        held += size
    if chunk:
        chunks.append(chunk)
    return chunks


CONNECT_TIMEOUT = float(os.environ.get("AUDIODB_DASK_TIMEOUT", "5"))


def analyse_on_worker(path: str, known_hash: str | None, params: FeatureParams) -> dict:
    """:func:`~audiodb.index.worker.analyse` on a Dask worker, naming the worker when a path is missing there.

    BLAS runs on one thread during the analysis, as in a local scan's workers,
    whatever the worker's environment (``dask worker --no-nanny`` keeps the
    machine's thread count): the numbers are identical to a local scan's.
    """
    with one_blas_thread():
        result = analyse(path, known_hash, params)
    if result["status"] == "failed" and not os.path.exists(path):
        result["reason"] = (
            f"not found on Dask worker {socket.gethostname()}: workers must see the files at the same "
            "path as the scanning machine (shared storage)"
        )
    return result


def analyse_chunk_on_worker(*args) -> dict:
    """:func:`~audiodb.index.chunks.analyse_chunk` on a Dask worker, BLAS on one thread (as
    :func:`analyse_on_worker`)."""
    from .chunks import analyse_chunk

    with one_blas_thread():
        return analyse_chunk(*args)


class DaskPool:
    """An :class:`AnalysisPool` on a Dask scheduler, for archives beyond one machine.

    Only the analysis of each file (:func:`~audiodb.index.worker.analyse`) runs on the
    workers, which must see the files at the same paths (shared storage) and have
    audiodb installed. Results come back as plain values and are written by the
    scanning process, so the database never leaves this machine.

    Raises
    ------
    UsageError
        ``distributed`` is not installed.
    AudiodbError
        The scheduler cannot be reached within ``AUDIODB_DASK_TIMEOUT`` seconds.
    """

    def __init__(self, address: str, *, timeout: float = CONNECT_TIMEOUT):
        try:
            from distributed import Client
        except ImportError:
            raise UsageError("--scheduler needs Dask's distributed package: pip install 'audiodb[dask]'") from None
        self.address = address
        try:
            self.client = Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as e:
            raise AudiodbError(
                f"Cannot reach the Dask scheduler at {address} ({type(e).__name__}: {e}). "
                "Check the address and that the scheduler is running. Nothing was written."
            ) from None
        self.n = max(1, sum(w.get("nthreads", 1) for w in self.client.scheduler_info()["workers"].values()))

    def run(
        self, tasks, params: FeatureParams | Analysis, writer: BatchWriter, progress=None, should_stop=None
    ) -> bool:
        from distributed import as_completed

        tasks, progress, finished = self._long_files_first(tasks, params, writer, progress, should_stop)
        if not finished:
            return False
        total, done = len(tasks), 0
        futures = {}
        for path, known in tasks:
            fut = self.client.submit(analyse_on_worker, path, known, params, pure=False, retries=1)
            futures[fut] = path
        pending = as_completed(list(futures), loop=self.client.loop)
        for fut in pending:
            path = futures[fut]
            try:
                result = fut.result()
            except Exception as e:  # e.g. KilledWorker: the file took down workers repeatedly
                result = {
                    "path": path,
                    "status": "failed",
                    "reason": f"Dask could not analyse it ({type(e).__name__}: {e})",
                }
            writer.add(result)
            done += 1
            if progress:
                progress(done, total, path)
            if should_stop is not None and should_stop():
                self.client.cancel([f for f in futures if not f.done()])
                return False
        return True

    def _long_files_first(self, tasks, params, writer, progress, should_stop):
        """The long files among ``tasks`` in chunks spread over the Dask workers, combined here
        (as :meth:`ProcessPool._long_files_first`); a chunk Dask gives up on fails its file."""
        from distributed import as_completed

        from .chunks import split_long

        jobs, rest = split_long(tasks, params, self.n)
        if not jobs:
            return tasks, progress, True
        done, futures = 0, {}
        for job in jobs:
            for args in job.tasks():
                futures[self.client.submit(analyse_chunk_on_worker, *args, pure=False, retries=1)] = job
        live = set(jobs)
        for fut in as_completed(list(futures), loop=self.client.loop):
            job = futures.pop(fut)
            if job not in live:
                continue
            try:
                job.add(fut.result())
            except Exception as e:  # e.g. KilledWorker: the chunk took down workers repeatedly
                job.fail(f"Dask could not analyse a chunk of it ({type(e).__name__}: {e})")
            if job.complete:
                live.discard(job)
                result = job.result()
                if result["status"] == "whole":
                    rest.append((job.path, job.known_hash))
                else:
                    writer.add(result)
                    done += 1
                    if progress:
                        progress(done, done + len(live) + len(rest), job.path)
            if should_stop is not None and should_stop():
                self.client.cancel([f for f in futures if not f.done()])
                return rest, progress, False

        def counted(d: int, t: int, path: str) -> None:
            progress(done + d, done + t, path)

        return rest, (counted if progress else None), True

    def wind_down(self) -> None:
        pass  # the cluster's workers are not this scan's

    def close(self, *, kill: bool = False) -> None:
        self.client.close()

    def __enter__(self) -> DaskPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
