"""One file to its vectors: the content hash, and decode then embed.

Plain functions of a path; the scanner's workers (:mod:`audiodb.index.worker`)
call them, and so can anyone with a file in hand.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import DecodeError
from .audiohash import content_hash  # here too: what a worker computes of a file
from .notebook import embedding
from .params import NOTEBOOK, FeatureParams

__all__ = ["content_hash", "embed_file", "segment_file"]


def embed_file(
    path: str,
    params: FeatureParams = NOTEBOOK,
    *,
    extended: bool = False,
    segmentations=(),
    long_file_sec: float | None = None,
) -> tuple[np.ndarray, dict]:
    """Decode ``path`` and compute its embedding.

    With ``extended``, the second feature set (:mod:`audiodb.analysis.extended`) is
    computed too, from the same decode and STFT, and returned in ``meta``. With
    ``segmentations`` (:class:`~audiodb.analysis.segments.SegmentParams`), the rows of each,
    from the same decode, in ``meta['segments']`` (segmentation id -> dict of arrays).

    A file longer than ``long_file_sec`` seconds (default
    :func:`audiodb.analysis.chunks.long_file_sec`, 5 minutes) is analysed in
    chunks (:mod:`audiodb.analysis.chunks`), never decoded whole, so memory stays
    bounded; the numbers are the whole-file ones within float32 rounding.

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

    chunked = _embed_long(path, params, extended, long_file_sec, segmentations)
    if chunked is not None:
        return chunked
    decoded = load(path, sr=params.sr)
    # Overflow in the features is reported below, with its cause, not as numpy warnings.
    segments = None
    with np.errstate(over="ignore", invalid="ignore"):
        if extended and segmentations:
            from .segments import embeddings_and_segments

            vec, ext, segments = embeddings_and_segments(decoded.y, list(segmentations))
        elif extended:
            from .extended import embeddings
            from .params import ExtendedParams

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
    if segmentations:
        if segments is None:
            from .segments import segment_signal

            segments = segment_signal(decoded.y, list(segmentations))
        meta["segments"] = {k: vars(rows) for k, rows in segments.items()}
    return vec.astype(np.float32), meta


def _segments(y: np.ndarray, segmentations) -> dict[str, dict]:
    from .segments import segment_signal

    return {k: vars(rows) for k, rows in segment_signal(y, list(segmentations)).items()}


def segment_file(path: str, segmentations, params: FeatureParams = NOTEBOOK) -> dict[str, dict]:
    """Decode ``path`` and compute only the rows of ``segmentations`` (id -> dict of arrays).

    A long file is read in chunks (:func:`audiodb.analysis.chunks.frames_of_file`), never whole.

    Raises
    ------
    DecodeError
    """
    from . import chunks
    from .decode import load
    from .segments import segments_of_frames

    src = _long_source(path, params, None)
    if src is not None:
        try:
            ff = chunks.file_frames(src, params, extended=True)
        except chunks.SplitMismatch:
            pass  # decoded whole below
        else:
            with np.errstate(over="ignore", invalid="ignore"):
                rows = segments_of_frames(ff.frames, list(segmentations), ff.n_samples)
            return {k: vars(r) for k, r in rows.items()}
    return _segments(load(path, sr=params.sr).y, segmentations)


def _long_source(path: str, params: FeatureParams, long_file_sec: float | None):
    """The :class:`~audiodb.analysis.seek.Source` of ``path`` when it is long enough to be read in
    chunks (and can be), else None."""
    from . import chunks

    threshold = chunks.long_file_sec() if long_file_sec is None else long_file_sec
    try:
        if os.path.getsize(path) < threshold * chunks.MIN_BYTES_PER_SEC or not chunks.splittable(params):
            return None
    except OSError:
        return None  # the whole-file decode says what is wrong
    src = chunks.probe(path)
    if src is None or src.duration_sec(params.sr) <= threshold:
        return None
    return src


def _embed_long(path: str, params: FeatureParams, extended: bool, long_file_sec: float | None, segmentations=()):
    """:func:`embed_file`'s result by the chunked path, or None when ``path`` is not long (or not
    readable in chunks exactly: then it is decoded whole). Segments come from the same frames."""
    from . import chunks

    src = _long_source(path, params, long_file_sec)
    if src is None:
        return None
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            ff = chunks.file_frames(src, params, extended=extended or bool(segmentations))
            segments = None
            if segmentations:
                from .segments import segments_of_frames

                # before finish: it consumes the frames (the mel power becomes dB)
                segments = segments_of_frames(ff.frames, list(segmentations), ff.n_samples)
            vec, ext = chunks.finish(ff, params, extended=extended)
    except chunks.SplitMismatch:
        return None  # the data does not end where the header says: the whole-file decode handles it
    vec, meta = chunks.result_of(path, src, params, vec, ext)
    if segments is not None:
        meta["segments"] = {k: vars(rows) for k, rows in segments.items()}
    return vec, meta


def _non_finite_reason(y: np.ndarray) -> str:
    """Why the features of ``y`` came out NaN or infinite, in words."""
    bad = int(np.count_nonzero(~np.isfinite(y)))
    if bad:
        return f"the audio contains non-finite samples ({bad} of {len(y)} are NaN or infinite): the file is damaged"
    peak = float(max(np.max(y), -np.min(y))) if len(y) else 0.0
    return (
        f"samples far outside [-1, 1] (max |x| = {peak:.3g}) make the features overflow: "
        "the file is damaged or holds unscaled float data"
    )
