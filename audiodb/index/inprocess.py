"""A small scan analysed in the scanning process itself: no worker process is started.

Starting a ``spawn`` worker costs about 0.65 s of CPU (Python, numpy, the
decoders, the FFT) and its round trips and exit more; a few short files take
less than that to analyse. A scan whose files to analyse hold at most
``AUDIODB_IN_PROCESS_SEC`` seconds of audio in all (:data:`IN_PROCESS_SEC`,
read from the headers; 0: always use workers) analyses them here, one after
the other, with BLAS on one thread as in a worker, so the vectors are the
workers' bits. Only this process writes either way.

A decoder that crashes here takes the scan with it, where a worker's crash
fails only its file. So while files are analysed here their paths are kept in
``<library>.analysing``: a scan that finds that file left behind by a scan
that died analyses with workers (which record a crashing file as a failure),
and removes it once that scan has finished.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..analysis.params import FeatureParams
from .worker import Analysis, analyse, one_blas_thread
from .writer import BatchWriter

__all__ = ["IN_PROCESS_SEC", "InProcessPool", "could_fit", "crash_mark", "fits", "in_process_sec"]

#: Seconds of audio (all files to analyse together) up to which a scan analyses in its own process.
IN_PROCESS_SEC = 60.0
#: More files than this, or more bytes than this per second of the limit, are never read for their
#: length: such a scan uses workers (a 48 kHz 16-bit stereo wav is 192,000 bytes a second).
MAX_FILES = 64
MAX_BYTES_PER_SEC = 200_000


def in_process_sec() -> float:
    """``AUDIODB_IN_PROCESS_SEC``, else :data:`IN_PROCESS_SEC`."""
    return float(os.environ.get("AUDIODB_IN_PROCESS_SEC") or IN_PROCESS_SEC)


def could_fit(sizes: Iterable[int]) -> bool:
    """Could files of these sizes (bytes) be analysed in this process? Nothing is opened: False
    means surely not (too many, too big); True that :func:`fits` has to read their headers."""
    sizes = list(sizes)
    limit = in_process_sec()
    return limit > 0 and len(sizes) <= MAX_FILES and sum(sizes) <= limit * MAX_BYTES_PER_SEC


def fits(tasks: Sequence[tuple[str, str | None]]) -> bool:
    """Do the files of ``tasks`` ((path, known hash) pairs) hold at most :func:`in_process_sec`
    seconds of audio together, by their headers, none of them a long file
    (:func:`~audiodb.analysis.chunks.long_file_sec`, which is split between the workers)?"""
    sizes = []
    for path, _known in tasks:
        try:
            sizes.append(os.path.getsize(path))
        except OSError:
            sizes.append(0)  # analysing it records why it cannot be read
    if not could_fit(sizes):
        return False
    from ..analysis.chunks import MIN_BYTES_PER_SEC, long_file_sec
    from ..analysis.decode import header_seconds

    limit, long, total = in_process_sec(), long_file_sec(), 0.0
    for (path, _known), size in zip(tasks, sizes):
        seconds = header_seconds(path)
        # no length in its header (libsndfile cannot open it): as many seconds as the tightest codec packs
        seconds = seconds if seconds is not None else size / MIN_BYTES_PER_SEC
        total += seconds
        if total > limit or seconds > long:  # a long file is split between the workers
            return False
    return True


def crash_mark(db_path: Path) -> Path:
    """The file that lists what a scan of the library at ``db_path`` is analysing in its own process."""
    return db_path.with_name(db_path.name + ".analysing")


class InProcessPool:
    """An :class:`~audiodb.index.pools.AnalysisPool` that analyses in this process, one file at a
    time; ``mark`` (:func:`crash_mark`) lists the files while they are analysed."""

    n = 1

    def __init__(self, mark: Path | None = None):
        self.mark = mark

    def run(
        self,
        tasks: Sequence[tuple[str, str | None]],
        params: FeatureParams | Analysis,
        writer: BatchWriter,
        progress=None,
        should_stop=None,
    ) -> bool:
        """Analyse ``tasks`` as a worker would, handing each result to ``writer``; False if
        ``should_stop()`` became true before all were done."""
        if self.mark is not None:
            with contextlib.suppress(OSError):  # a read-only place: the library will say what is wrong
                self.mark.write_bytes(b"".join(os.fsencode(p) + b"\n" for p, _ in tasks))
        try:
            with one_blas_thread():
                for done, (path, known) in enumerate(tasks, 1):
                    if should_stop is not None and should_stop():
                        return False
                    with _quiet():
                        result = analyse(path, known, params)
                    writer.add(result)
                    if progress:
                        progress(done, len(tasks), path)
            return True
        finally:
            if self.mark is not None:
                with contextlib.suppress(OSError):
                    self.mark.unlink()

    def wind_down(self) -> None:
        pass

    def close(self, *, kill: bool = False) -> None:
        pass

    def __enter__(self) -> InProcessPool:
        return self

    def __exit__(self, *exc) -> None:
        pass


@contextlib.contextmanager
def _quiet():
    """As in a worker: decoders' notes on fd 2 (mpg123 on a damaged file) and Python's warnings are
    not shown (the reasons go to failures); AUDIODB_DEBUG=1 shows them."""
    if os.environ.get("AUDIODB_DEBUG"):
        yield
        return
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
