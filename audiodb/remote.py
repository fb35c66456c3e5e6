"""Extraction on a Dask cluster, for archives beyond one machine.

The scan plans and writes as usual, here; only the analysis of each file
(:func:`audiodb.index.worker.analyse`) runs on Dask workers, which must see the
files at the same paths (shared storage) and have audiodb installed. Results
come back as plain values and are written in batches by this process, so the
database never leaves this machine. Without ``--scheduler`` nothing here is
imported.
"""

from __future__ import annotations

import os
import socket

from .errors import AudiodbError, UsageError
from .index.worker import analyse, one_blas_thread
from .analysis.params import FeatureParams

__all__ = ["DaskWorkers", "analyse_on_worker"]

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


class DaskWorkers:
    """Same interface as :class:`audiodb.scan.Workers`, on a Dask scheduler.

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
            raise UsageError(
                "--scheduler needs Dask's distributed package: pip install 'audiodb[dask]'"
            ) from None
        self.address = address
        try:
            self.client = Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as e:
            raise AudiodbError(
                f"Cannot reach the Dask scheduler at {address} ({type(e).__name__}: {e}). "
                "Check the address and that the scheduler is running. Nothing was written."
            ) from None
        self.n = max(1, sum(w.get("nthreads", 1) for w in self.client.scheduler_info()["workers"].values()))

    def run(self, tasks, params: FeatureParams, writer, progress=None, should_stop=None) -> bool:
        from distributed import as_completed

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
                result = {"path": path, "status": "failed",
                          "reason": f"Dask could not analyse it ({type(e).__name__}: {e})"}
            writer.add(result)
            done += 1
            if progress:
                progress(done, total, path)
            if should_stop is not None and should_stop():
                self.client.cancel([f for f in futures if not f.done()])
                return False
        return True

    def close(self, *, kill: bool = False) -> None:
        self.client.close()

    def __enter__(self) -> DaskWorkers:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
