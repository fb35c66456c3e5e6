"""What runs in the scanner's worker processes: one file analysed, as plain values.

Workers are started with ``spawn`` and return plain values; they never touch
the database. BLAS/OpenMP pools are pinned to one thread in them (the
environment variables at start, then threadpoolctl for what is already
loaded): parallelism comes from the processes, and one thread is also what
makes the numbers identical everywhere (a multi-threaded matrix product sums
in another order, changing the last bits of some features).
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import sys
import threading

from ..analysis.audiohash import content_hash
from ..analysis.heap import retain_freed_memory
from ..analysis.params import NOTEBOOK, FeatureParams, SegmentParams
from ..errors import DecodeError

__all__ = [
    "BOOTSTRAP_EXIT",
    "Analysis",
    "THREAD_ENV",
    "WORKER_MARK",
    "analyse",
    "analyse_many",
    "failure_reason",
    "init_worker",
    "leave_if_worker_bootstrap",
    "one_blas_thread",
    "read_words",
    "ready",
    "worker_env",
]

THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")

_limit_lock = threading.Lock()
_limit_users = 0
_limit = None


def _load_analysis_libraries() -> None:
    # threadpoolctl limits the libraries loaded when it is called: load every one the analysis uses first
    # (numpy's BLAS; the analysis no longer imports scipy, 0.15-0.2 s of every worker's start).
    from ..analysis import decode, embed, extended  # noqa: F401


@contextlib.contextmanager
def one_blas_thread():
    """BLAS/OpenMP limited to one thread in this process while any caller is inside.

    For analyses in a process audiodb does not own (a Dask worker, started
    with or without OMP_NUM_THREADS): the limit is process-wide, so it is set
    when the first concurrent caller enters and restored when the last leaves
    (best effort: OpenBLAS may ignore raising the count again from a thread
    other than the one that started it, leaving the worker at one thread, as
    Dask's nanny sets it anyway).
    """
    global _limit, _limit_users
    from threadpoolctl import threadpool_limits

    _load_analysis_libraries()
    with _limit_lock:
        if _limit_users == 0:
            _limit = threadpool_limits(limits=1)
        _limit_users += 1
    try:
        yield
    finally:
        with _limit_lock:
            _limit_users -= 1
            if _limit_users == 0:
                _limit.restore_original_limits()
                _limit = None


def init_worker(parent: int | None = None, started=None) -> None:
    """Worker initializer.

    Decoders (mpg123) print notes on fd 2 for damaged files; the reasons are
    recorded in failures instead (AUDIODB_DEBUG=1 keeps them). And a worker
    whose parent dies (``kill -9`` of a scan) exits instead of waiting forever.
    BLAS pools get one thread for the worker's life (whatever the environment).
    ``started`` (an Event) is set once the worker is up: a pool whose workers
    die before that failed to start, which is not a decoder crash.
    """
    import time

    # First of all: a worker whose scan is killed while it is still loading libraries must not outlive it.
    parent = parent or os.getppid()
    if os.getppid() != parent:  # the scan died before this worker started
        os._exit(0)

    def watch_parent() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch_parent, name="audiodb-parent-watch", daemon=True).start()
    if not os.environ.get("AUDIODB_DEBUG"):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
    from threadpoolctl import threadpool_limits

    _load_analysis_libraries()
    threadpool_limits(limits=1)  # kept: this process only analyses
    retain_freed_memory()  # no page faults per file: a third of a short file's CPU (analysis/heap.py)
    if started is not None:
        started.set()


@dataclasses.dataclass(frozen=True)
class Analysis:
    """What the workers compute for each file, when segmentations are registered: the feature
    set, the segmentations, and whether only the segments are wanted (files whose vectors are
    current). Passed where :func:`analyse` takes ``params``."""

    params: FeatureParams = NOTEBOOK
    segmentations: tuple[SegmentParams, ...] = ()
    segments_only: bool = False


def analyse(path: str, known_hash: str | None = None, params: FeatureParams | Analysis = NOTEBOOK) -> dict:
    """Everything the scanner needs about one file, as plain values; never raises.

    ``status`` is 'ok' (with ``vector``, ``extended`` (the second feature set) and metadata), 'same' (content hash
    or audio hash equals ``known_hash``: no decoding done; a tag edit) or 'failed' (with ``reason``). 'ok' and
    'same' carry the tags and ``audio_hash`` (:func:`read_words`).
    ``size`` and ``mtime_ns`` are taken before reading, so a file that changes
    while it is read looks changed to the next scan.

    ``params`` an :class:`Analysis` adds ``segments`` (segmentation id -> rows); with its
    ``segments_only``, only those are computed (status 'segments'), or nothing if the content
    is no longer ``known_hash`` or they cannot be computed (status 'skip': the file keeps its
    vectors, and the next scan sees the change or tries again).
    """
    spec = params if isinstance(params, Analysis) else Analysis(params)
    params = spec.params
    out: dict = {"path": path}
    try:
        st = os.stat(path)
        out["size"], out["mtime_ns"] = st.st_size, st.st_mtime_ns
        out["content_hash"] = content_hash(path)
        if spec.segments_only:
            if known_hash is not None and out["content_hash"] != known_hash:
                out["status"] = "skip"
                return out
            try:
                from ..analysis.embed import segment_file

                out["segments"] = segment_file(path, spec.segmentations, params)
            except Exception as e:  # its vectors stay; the segments are tried again next scan
                out.update(status="skip", reason=f"segments not computed: {type(e).__name__}: {e}")
                return out
            out["status"] = "segments"
            return out
        read_words(path, out)
        if known_hash is not None and known_hash in (out["content_hash"], out["audio_hash"]):
            out["status"] = "same"
            return out
        from ..analysis.embed import embed_file  # numpy and the analysis: loaded by a worker at its start

        out["vector"], meta = embed_file(path, params, extended=True, segmentations=spec.segmentations)
        out["extended"] = meta.pop("extended_vector")
        out.update(meta)
        out["status"] = "ok"
    except Exception as e:  # a bug or a decoder surprise must not end the scan
        out.update(status="failed", reason=failure_reason(e))
    return out


def failure_reason(e: Exception, where: str = "") -> str:
    """Why a file could not be analysed, in words, from what its analysis raised (``where``: e.g.
    ' in chunk 3', added to an unexpected error's reason)."""
    if isinstance(e, FileNotFoundError):
        return "file vanished before it could be read"
    if isinstance(e, DecodeError):
        return e.reason
    if isinstance(e, MemoryError):
        return "not enough memory to analyse this file"
    if isinstance(e, OSError):
        return f"cannot read the file ({e.strerror or e})"
    return f"analysis error{where}: {type(e).__name__}: {e}"


def read_words(path: str, out: dict) -> None:
    """Add the file's tags (:func:`audiodb.analysis.tags.read_tags`: never raises; a broken tag
    block is ``tag_error``) and its ``audio_hash`` (the audio payload only) to ``out``."""
    from ..analysis.audiohash import audio_hash
    from ..analysis.tags import read_tags

    out.update(read_tags(path))
    out["audio_hash"] = audio_hash(path)


def analyse_many(tasks: list[tuple[str, str | None]], params: FeatureParams | Analysis = NOTEBOOK) -> list[dict]:
    """:func:`analyse` of several ``(path, known_hash)`` tasks in one call (short files go to the
    workers in chunks: one round trip, one pickled result list, instead of one per file)."""
    return [analyse(path, known, params) for path, known in tasks]


def ready() -> bool:
    """A task that does nothing: submitted to start a worker process early (it loads its libraries)."""
    return True


WORKER_MARK = "AUDIODB_SCAN_WORKER"  # set in our workers' environment
BOOTSTRAP_EXIT = 75


def leave_if_worker_bootstrap() -> None:
    """A worker re-running an unguarded main script reached a scan: leave quietly.

    ``spawn`` workers run the main script's top level again (as ``__mp_main__``)
    before they take work. Scanning there would plan and write again and start
    workers of its own; the parent sees its pool die before any worker started
    and explains what to add (:meth:`audiodb.index.pools.ProcessPool.run`).
    """
    if not os.environ.get(WORKER_MARK):
        return
    rerun = sys.modules.get("__mp_main__")  # runpy's module for the script while it runs again
    if getattr(multiprocessing.current_process(), "_inheriting", False) or (
        rerun is not None and rerun is not sys.modules.get("__main__")
    ):
        os._exit(BOOTSTRAP_EXIT)


@contextlib.contextmanager
def worker_env():
    # Spawned workers inherit this environment: one BLAS thread each, and the mark of an audiodb worker.
    saved = {k: os.environ.get(k) for k in (*THREAD_ENV, WORKER_MARK)}
    os.environ.update({k: "1" for k in (*THREAD_ENV, WORKER_MARK)})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
