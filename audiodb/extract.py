"""Analysing one file: hash, decode, embed. Runs in worker processes.

Workers are started with ``spawn`` and return plain values; they never touch
the database. BLAS/OpenMP pools are pinned to one thread in them (the
environment variables at start, then threadpoolctl for what is already
loaded): parallelism comes from the processes, and one thread is also what
makes the numbers identical everywhere (a multi-threaded matrix product sums
in another order, changing the last bits of some features).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading

import numpy as np

from .errors import DecodeError
from .analysis.notebook import embedding
from .analysis.params import NOTEBOOK, FeatureParams

__all__ = ["analyse", "content_hash", "embed_file", "one_blas_thread", "quiet_worker"]

THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")

_limit_lock = threading.Lock()
_limit_users = 0
_limit = None


def _load_analysis_libraries() -> None:
    # threadpoolctl limits the libraries loaded when it is called: load every one the analysis uses first.
    import scipy.fft  # noqa: F401

    from . import decode  # noqa: F401
    from .analysis import extended  # noqa: F401


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


def quiet_worker(parent: int | None = None, started=None) -> None:
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
    if started is not None:
        started.set()


def content_hash(path: str) -> str:
    """blake2b-128 of the whole file, hex."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def embed_file(path: str, params: FeatureParams = NOTEBOOK, *, extended: bool = False
               ) -> tuple[np.ndarray, dict]:
    """Decode ``path`` and compute its embedding.

    With ``extended``, the second feature set (:mod:`audiodb.analysis.extended`) is
    computed too, from the same decode and STFT, and returned in ``meta``.

    Returns
    -------
    vector : np.ndarray, shape (params.dims,), float32
    meta : dict
        duration_sec, sample_rate (the analysis rate, as the notebook reports),
        native_sample_rate, channels, codec, container, decoder; with
        ``extended``, also ``extended_vector`` (float32, 42 numbers).

    Raises
    ------
    DecodeError
    """
    from .decode import load

    decoded = load(path, sr=params.sr)
    # Overflow in the features is reported below, with its cause, not as numpy warnings.
    with np.errstate(over="ignore", invalid="ignore"):
        if extended:
            from .analysis.extended import embeddings
            from .analysis.params import ExtendedParams

            vec, ext = embeddings(decoded.y, params=ExtendedParams(base=params))
        else:
            vec, ext = embedding(decoded.y, params=params), None
    if not np.all(np.isfinite(vec)) or (ext is not None and not np.all(np.isfinite(ext))):
        raise DecodeError(path, _non_finite_reason(decoded.y))
    meta = {
        "duration_sec": decoded.duration_sec,
        "sample_rate": decoded.sr,
        "native_sample_rate": decoded.native_sr,
        "channels": decoded.channels,
        "codec": decoded.codec,
        "container": decoded.container,
        "decoder": decoded.decoder,
    }
    if ext is not None:
        meta["extended_vector"] = ext.astype(np.float32)
    return vec.astype(np.float32), meta


def _non_finite_reason(y: np.ndarray) -> str:
    """Why the features of ``y`` came out NaN or infinite, in words."""
    bad = int(np.count_nonzero(~np.isfinite(y)))
    if bad:
        return f"the audio contains non-finite samples ({bad} of {len(y)} are NaN or infinite): the file is damaged"
    peak = float(max(np.max(y), -np.min(y))) if len(y) else 0.0
    return (f"samples far outside [-1, 1] (max |x| = {peak:.3g}) make the features overflow: "
            "the file is damaged or holds unscaled float data")


def analyse(path: str, known_hash: str | None = None, params: FeatureParams = NOTEBOOK) -> dict:
    """Everything the scanner needs about one file, as plain values; never raises.

    ``status`` is 'ok' (with ``vector``, ``extended`` (the second feature set) and metadata), 'same' (content hash
    equals ``known_hash``: no decoding done) or 'failed' (with ``reason``).
    ``size`` and ``mtime_ns`` are taken before reading, so a file that changes
    while it is read looks changed to the next scan.
    """
    out: dict = {"path": path}
    try:
        st = os.stat(path)
        out["size"], out["mtime_ns"] = st.st_size, st.st_mtime_ns
        out["content_hash"] = content_hash(path)
        if known_hash is not None and out["content_hash"] == known_hash:
            out["status"] = "same"
            return out
        out["vector"], meta = embed_file(path, params, extended=True)
        out["extended"] = meta.pop("extended_vector")
        out.update(meta)
        out["status"] = "ok"
    except FileNotFoundError:
        out.update(status="failed", reason="file vanished before it could be read")
    except DecodeError as e:
        out.update(status="failed", reason=e.reason)
    except MemoryError:
        out.update(status="failed", reason="not enough memory to analyse this file")
    except OSError as e:
        out.update(status="failed", reason=f"cannot read the file ({e.strerror or e})")
    except Exception as e:  # a bug or a decoder surprise must not end the scan
        out.update(status="failed", reason=f"analysis error: {type(e).__name__}: {e}")
    return out
