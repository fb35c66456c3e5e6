"""A long file's chunks analysed by several workers, combined in the scanning process.

:func:`split_long` picks the files of a scan longer than
:func:`audiodb.analysis.chunks.long_file_sec` that can be read in chunks exactly
and makes a :class:`LongFile` of each: its ranges of global frames, each a task
for :func:`analyse_chunk` (on a local worker process or a Dask worker). The
parent feeds the chunk results back (:meth:`LongFile.add`) and, when all are in,
:meth:`LongFile.result` gives the same dict as :func:`audiodb.index.worker.analyse`
for the whole file: the statistics are finished once, here.

A chunk that fails to decode makes the file a failure with its reason; a chunk
whose data ends before the header says sends the file back to be analysed whole
(``status`` 'whole'). Nothing of a long file is written before all its chunks are
in, so a killed scan leaves it for the next one.
"""

from __future__ import annotations

import math
import os

import numpy as np

from ..analysis import chunks as achunks
from ..analysis.embed import content_hash
from ..analysis.params import FeatureParams
from ..errors import DecodeError
from .worker import Analysis, failure_reason, read_words

__all__ = ["LongFile", "analyse_chunk", "split_long", "workers_for"]


def analyse_chunk(
    path: str, known_hash: str | None, src: achunks.Source, index: int, first: int, last: int, params: FeatureParams
) -> dict:
    """Per-frame values of global frames ``first..last-1`` of ``src`` as plain values; never raises.

    Chunk 0 also takes the file's size, mtime and content hash (before reading),
    and stops there with ``status`` 'same' when the hash equals ``known_hash``.
    """
    out: dict = {"path": path, "index": index}
    try:
        if index == 0:
            st = os.stat(path)
            out["size"], out["mtime_ns"] = st.st_size, st.st_mtime_ns
            out["content_hash"] = content_hash(path)
            read_words(path, out)  # tags and the audio hash: a retagged long file is not re-analysed
            if known_hash is not None and known_hash in (out["content_hash"], out["audio_hash"]):
                out["status"] = "same"
                return out
        with np.errstate(over="ignore", invalid="ignore"):
            out["frames"] = achunks.range_frames(src, first, last, params, extended=True)
        out["status"] = "ok"
    except achunks.SplitMismatch:
        out["status"] = "whole"
    except Exception as e:  # a decoder surprise in one chunk must not end the scan
        out.update(status="failed", reason=failure_reason(e, f" in chunk {index}"))
    return out


class LongFile:
    """One long file's chunks: the tasks, the results as they come, and the file's result."""

    def __init__(
        self,
        path: str,
        known_hash: str | None,
        src: achunks.Source,
        params: FeatureParams,
        n_chunks: int,
        segmentations: tuple = (),
    ):
        self.path, self.known_hash, self.src, self.params = path, known_hash, src, params
        self.segmentations = tuple(segmentations)  # their rows are computed here, from the combined frames
        self.n_frames = src.n_frames(params.sr, params.hop_length)
        self.ranges = achunks.plan_ranges(self.n_frames, n_chunks)
        self.head: dict | None = None  # chunk 0's file facts
        self.frames: dict[str, np.ndarray] | None = None  # global arrays, filled in place
        self.missing = set(range(len(self.ranges)))
        self.outcome: dict | None = None  # set at the first failure / 'same' / 'whole'

    def tasks(self) -> list[tuple]:
        """Arguments of :func:`analyse_chunk` for every chunk."""
        return [(self.path, self.known_hash, self.src, i, a, b, self.params) for i, (a, b) in enumerate(self.ranges)]

    @property
    def complete(self) -> bool:
        return self.outcome is not None or not self.missing

    def add(self, result: dict) -> None:
        """One chunk's result (from :func:`analyse_chunk`)."""
        i = result["index"]
        self.missing.discard(i)
        if self.outcome is not None:
            return
        status = result["status"]
        if i == 0:
            self.head = {k: v for k, v in result.items() if k not in ("path", "index", "status", "frames", "reason")}
        if status == "same":
            self.outcome = {"path": self.path, **(self.head or {}), "status": "same"}
        elif status == "failed":
            self.outcome = {"path": self.path, **(self.head or {}), "status": "failed", "reason": result["reason"]}
        elif status == "whole":
            self.outcome = {"path": self.path, "status": "whole"}
        else:
            part = result["frames"]
            a, b = self.ranges[i]
            if self.frames is None:
                self.frames = {key: np.empty((*v.shape[:-1], self.n_frames), dtype=v.dtype) for key, v in part.items()}
            for key, v in part.items():
                self.frames[key][..., a:b] = v

    def fail(self, reason: str) -> dict:
        """The file as a failure (a chunk's worker died twice, Dask gave up)."""
        self.outcome = {"path": self.path, **(self.head or {}), "status": "failed", "reason": reason}
        self.missing.clear()
        return self.outcome

    def result(self) -> dict:
        """The file's result, as :func:`audiodb.index.worker.analyse` gives it ('whole': analyse it so)."""
        assert self.complete, "chunks are missing"
        if self.outcome is not None:
            return self.outcome
        assert self.frames is not None and self.head is not None
        ff = achunks.FileFrames(
            self.frames, self.src.n_samples(self.params.sr), self.params.sr, self.params.hop_length, self.src
        )
        self.frames = None
        out = {"path": self.path, **self.head}
        segments = None
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                if self.segmentations:
                    from ..analysis.segments import segments_of_frames

                    # before finish, which consumes the frames
                    segments = segments_of_frames(ff.frames, list(self.segmentations), ff.n_samples)
                vec, ext = achunks.finish(ff, self.params, extended=True)
            vector, meta = achunks.result_of(self.path, self.src, self.params, vec, ext)
        except achunks.SplitMismatch:
            return {"path": self.path, "status": "whole"}
        except DecodeError as e:
            return {**out, "status": "failed", "reason": e.reason}
        except Exception as e:  # the edge frames' decode, a surprise: one file fails, not the scan
            return {**out, "status": "failed", "reason": f"analysis error: {type(e).__name__}: {e}"}
        out["vector"] = vector
        out["extended"] = meta.pop("extended_vector")
        if segments is not None:
            out["segments"] = {k: vars(rows) for k, rows in segments.items()}
        out.update(meta, status="ok")
        return out


def split_long(
    tasks, params: FeatureParams | Analysis, n_workers: int, *, long_file_sec: float | None = None
) -> tuple[list[LongFile], list[tuple[str, str | None]]]:
    """The long files among ``tasks`` ((path, known hash) pairs) as :class:`LongFile`, and the rest.

    Only files big enough on disk to hold ``long_file_sec`` of audio are opened
    (their header); with one worker nothing is split (the worker's own
    :func:`~audiodb.analysis.embed.embed_file` streams long files in chunks).
    ``params`` an :class:`~audiodb.index.worker.Analysis` with segmentations: a split file's
    segments are computed from its combined frames; a segments-only pass is not split.
    """
    spec = params if isinstance(params, Analysis) else Analysis(params)
    params = spec.params
    threshold = achunks.long_file_sec() if long_file_sec is None else long_file_sec
    if n_workers < 2 or spec.segments_only or not achunks.splittable(params):
        return [], list(tasks)
    long, rest = [], []
    for path, known in tasks:
        src = None
        try:
            if os.path.getsize(path) >= threshold * achunks.MIN_BYTES_PER_SEC:
                src = achunks.probe(path)
        except OSError:
            pass
        if src is None or src.duration_sec(params.sr) <= threshold:
            rest.append((path, known))
            continue
        per = max(1.0, src.duration_sec(params.sr) / achunks.chunk_sec())
        n_chunks = n_workers * max(1, math.ceil(per / n_workers))
        long.append(LongFile(path, known, src, params, n_chunks, spec.segmentations))
    return long, rest


def workers_for(tasks, workers: int, *, long_file_sec: float | None = None) -> int:
    """How many worker processes a scan of ``tasks`` needs: no more than there are files, unless one
    may be long enough to be split (judged by its size on disk, nothing opened)."""
    if len(tasks) >= workers:
        return workers
    threshold = achunks.long_file_sec() if long_file_sec is None else long_file_sec
    for path, _known in tasks:
        try:
            if os.path.getsize(path) >= threshold * achunks.MIN_BYTES_PER_SEC:
                return workers
        except OSError:
            pass
    return max(1, len(tasks))
