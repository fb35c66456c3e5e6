"""Long recordings analysed in chunks: never decoded whole, the numbers of a whole-file analysis.

A whole-file analysis (:func:`audiodb.analysis.embed.embed_file` below the length
threshold) decodes the file to one waveform at the analysis rate, trims its
silence, computes per-frame values from one STFT and collapses them. Here the
same numbers come from pieces:

1. :func:`~audiodb.analysis.seek.probe` reads the header: rate, channels,
   length, and whether the file can be read from an offset exactly
   (:mod:`audiodb.analysis.seek`: libsndfile seeks to the very sample a whole
   decode has there for WAV, FLAC, Ogg Vorbis and MP3; Ogg Opus is read with
   libopus, as the whole-file decode reads it, seeking with a 2 s pre-roll).
   Files only FFmpeg decodes (m4a) are analysed whole.
2. :func:`plan_ranges` cuts the file's frame grid into ranges of global frames.
3. :func:`range_frames` decodes the samples a range needs (a fresh soxr stream
   started a warm-up before the range, on the resampler's seam period
   (:data:`~audiodb.analysis.seek.SEAM_PERIODS`): the very bits of a whole-file
   resample) and computes the per-frame values of the **untrimmed** signal on
   its global frame grid, streaming in blocks of frames so a worker's memory is
   bounded whatever the range's length.
4. :func:`combine` joins the ranges into a :class:`FileFrames` (the hook for
   per-segment features: every frame of the untrimmed signal with its global
   index and time), and :func:`finish` trims it as the notebook does (bounds
   from the frames' RMS, the few frames whose window crosses a trim bound
   recomputed from the trimmed signal, which is zero-padded there; the
   ``min_trimmed_sec`` fallback) and collapses it once with the whole-file code
   (:func:`audiodb.analysis.notebook.summarize`,
   :func:`audiodb.analysis.extended.summarize_extended`).

Everything but :func:`range_frames` and :func:`finish` (which reads the few trim-edge
frames' samples again) is pure.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from ..errors import DecodeError
from .frames import frame_features, trim_bounds_from_rms
from .params import NOTEBOOK, ExtendedParams, FeatureParams
from .seek import SEAM_PERIODS, Source, SplitMismatch, decode_range, iter_samples, probe, seam_periods

__all__ = [
    "CHUNK_SEC",
    "LONG_FILE_SEC",
    "chunk_sec",
    "long_file_sec",
    "MIN_BYTES_PER_SEC",
    "SEAM_PERIODS",
    "SplitMismatch",
    "FileFrames",
    "Source",
    "combine",
    "decode_range",
    "embed_chunked",
    "feature_bases",
    "file_frames",
    "finish",
    "frames_of_file",
    "iter_samples",
    "meta_of",
    "plan_ranges",
    "probe",
    "range_frames",
    "result_of",
    "seam_periods",
    "splittable",
]

#: Files longer than this (seconds of audio) are analysed in chunks, even on one worker;
#: the environment variable ``AUDIODB_LONG_FILE_SEC`` overrides it (:func:`long_file_sec`).
LONG_FILE_SEC = 300.0

#: Length of one chunk (seconds of audio); ``AUDIODB_CHUNK_SEC`` overrides it (:func:`chunk_sec`).
CHUNK_SEC = 300.0


def long_file_sec() -> float:
    """The length (seconds) above which a file is analysed in chunks, now."""
    return float(os.environ.get("AUDIODB_LONG_FILE_SEC") or LONG_FILE_SEC)


def chunk_sec() -> float:
    """The length (seconds of audio) of one chunk, now."""
    return float(os.environ.get("AUDIODB_CHUNK_SEC") or CHUNK_SEC)


#: Files smaller than this many bytes per second of the threshold are not probed (no codec packs
#: audio tighter than 16 kbit/s in what audiodb reads).
MIN_BYTES_PER_SEC = 2000

#: Frames computed at a time inside a range (bounds a worker's working memory).
_BLOCK_FRAMES = 8192


def plan_ranges(n_frames: int, n_chunks: int, *, min_frames: int = 64) -> list[tuple[int, int]]:
    """``n_frames`` global frames cut into ``n_chunks`` consecutive ranges ``(first, last)``."""
    n_chunks = max(1, min(n_chunks, n_frames // max(1, min_frames)))
    bounds = [round(i * n_frames / n_chunks) for i in range(n_chunks + 1)]
    return [(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


def feature_bases(params: FeatureParams, extended: bool) -> dict:
    """The ``chroma_basis`` and ``contrast_bands`` :func:`~audiodb.analysis.frames.frame_features` takes
    for the second feature set (empty without ``extended``)."""
    if not extended:
        return {}
    from .filters import chroma_filters, contrast_bands

    ext = ExtendedParams(base=params)
    return {
        "chroma_basis": chroma_filters(sr=params.sr, n_fft=params.n_fft, n_chroma=ext.n_chroma, tuning=ext.tuning),
        "contrast_bands": contrast_bands(
            sr=params.sr, n_fft=params.n_fft, n_bands=ext.n_bands, fmin=ext.fmin, quantile=ext.quantile
        ),
    }


def _features(y: np.ndarray, params: FeatureParams, extras: dict) -> dict[str, np.ndarray]:
    return frame_features(
        y,
        sr=params.sr,
        n_fft=params.n_fft,
        hop_length=params.hop_length,
        n_mels=params.n_mels,
        roll_percent=params.roll_percent,
        **extras,
    )


def splittable(params: FeatureParams) -> bool:
    """Whether frames of ``params`` fall on hop boundaries (the chunked path needs it)."""
    return (params.n_fft // 2) % params.hop_length == 0


def range_frames(
    src: Source, first: int, last: int, params: FeatureParams = NOTEBOOK, *, extended: bool = False
) -> dict[str, np.ndarray]:
    """Per-frame values of global frames ``first..last-1`` of the untrimmed whole-file signal.

    The same dict as :func:`audiodb.analysis.frames.frame_features` of the whole
    decode, restricted to those frames (columns of 2-D values). Streams: at most
    a block of frames' samples is held.
    """
    sr, hop, half = params.sr, params.hop_length, params.n_fft // 2
    if not splittable(params):
        raise ValueError("chunked analysis needs n_fft / 2 to be a multiple of hop_length")
    extras = feature_bases(params, extended)
    total = src.n_samples(sr)
    n_all = 1 + total // hop
    last = min(last, n_all)
    lo = max(0, first * hop - half)
    hi = min(total, (last - 1) * hop + half)
    parts: list[dict[str, np.ndarray]] = []
    buf = np.zeros(0, np.float32)
    buf0 = lo  # global index of buf[0]
    pending: list[np.ndarray] = []  # pieces after buf, joined once a block of frames is ready
    end = lo
    g = first
    for offset, piece in iter_samples(src, lo, hi, sr):
        assert offset == end, "iter_samples yields consecutive pieces"
        pending.append(piece)
        end += len(piece)
        while g < last:
            gb = min(last, g + _BLOCK_FRAMES)
            need = min(total, (gb - 1) * hop + half)
            if end < need:
                break
            if pending:
                buf, pending = np.concatenate([buf, *pending]), []
            z0 = max(0, g * hop - half)
            fr = _features(buf[z0 - buf0 : need - buf0], params, extras)
            k = (g * hop - z0) // hop
            parts.append({key: np.array(v[..., k : k + gb - g]) for key, v in fr.items()})
            del fr
            g = gb
            keep = max(0, g * hop - half)
            buf, buf0 = buf[keep - buf0 :], keep
    if g < last:  # never reached: iter_samples yields up to ``hi`` or raises
        raise SplitMismatch(src.path, "fewer samples than the header says")
    return {key: np.concatenate([p[key] for p in parts], axis=-1) for key in parts[0]}


@dataclasses.dataclass
class FileFrames:
    """Every frame of a file's **untrimmed** signal, before any statistic: the hook for segments.

    ``frames`` is :func:`audiodb.analysis.frames.frame_features`'s dict of the
    whole decode (``mel`` (n_mels, t) power, ``centroid`` ... ``zcr`` (t,), and
    with the second set ``chroma``, ``contrast_peak``, ``contrast_valley``),
    column ``i`` being global frame ``i``, centred on sample ``i * hop_length``
    (time :attr:`times`). ``n_samples`` is the decode's length at ``sr``.
    :func:`finish` trims and collapses it; a per-segment summary may slice it first.
    """

    frames: dict[str, np.ndarray]
    n_samples: int
    sr: int
    hop_length: int
    source: Source | None
    y: np.ndarray | None = None  # the waveform, when it was decoded whole (:func:`frames_of_file`)

    @property
    def n_frames(self) -> int:
        return self.frames["rms"].shape[-1]

    @property
    def times(self) -> np.ndarray:
        """Centre of each frame, seconds."""
        return np.arange(self.n_frames) * (self.hop_length / self.sr)

    def trim_bounds(self, params: FeatureParams = NOTEBOOK) -> tuple[int, int]:
        """The sample bounds ``librosa.effects.trim`` keeps (as :func:`audiodb.analysis.frames.trim_bounds`)."""
        return trim_bounds_from_rms(
            self.frames["rms"], self.n_samples, top_db=params.top_db, hop_length=self.hop_length
        )


def combine(src: Source, ranges: list[tuple[int, int]], parts: list[dict[str, np.ndarray]], params: FeatureParams):
    """The :class:`FileFrames` of a file from :func:`range_frames` of consecutive ``ranges``."""
    n_all = src.n_frames(params.sr, params.hop_length)
    if not ranges or ranges[0][0] != 0 or ranges[-1][1] != n_all:
        raise ValueError(f"the ranges do not cover the file's {n_all} frames")
    for (_, b), (a, _) in zip(ranges, ranges[1:], strict=False):
        if a != b:
            raise ValueError("the ranges are not consecutive")
    if len(parts) == 1:
        frames = parts[0]
    else:
        frames = {}
        for key in parts[0]:
            first = parts[0][key]
            out = np.empty((*first.shape[:-1], n_all), dtype=first.dtype)
            for (a, b), p in zip(ranges, parts, strict=True):
                out[..., a:b] = p[key]
            frames[key] = out
    return FileFrames(frames, src.n_samples(params.sr), params.sr, params.hop_length, src)


def _edge_frames(
    ff: FileFrames, start: int, end: int, params: FeatureParams, extras: dict
) -> tuple[dict[int, dict[str, np.ndarray]], int]:
    """Frames of the trimmed signal ``y[start:end]`` whose windows cross its ends, by trimmed index."""
    hop, half, sr = params.hop_length, params.n_fft // 2, params.sr
    length = end - start
    n_trim = 1 + length // hop
    head = [u for u in range(n_trim) if u * hop - half < 0]
    tail = [u for u in range(n_trim) if u * hop + half > length]
    out: dict[int, dict[str, np.ndarray]] = {}

    def read(a: int, b: int) -> np.ndarray:
        if ff.y is not None:
            return ff.y[a:b]
        assert ff.source is not None, "FileFrames need a source or the waveform"
        return decode_range(ff.source, a, b, sr)

    if start > 0 and head:
        k = (head[-1] + 1) * hop + half
        fr = _features(read(start, min(end, start + k)), params, extras)
        for u in head:
            out[u] = {key: v[..., u] for key, v in fr.items()}
    if end < ff.n_samples and tail:
        u0 = max(0, tail[0] - half // hop - 1)  # the piece starts on a hop of the trimmed signal
        a = start + u0 * hop
        fr = _features(read(a, end), params, extras)
        for u in tail:
            out[u] = {key: v[..., u - u0] for key, v in fr.items()}
    return out, n_trim


def finish(ff: FileFrames, params: FeatureParams = NOTEBOOK, *, extended: bool = False):
    """The whole-file embedding(s) of ``ff``: trim as the notebook does, then the same statistics.

    Returns ``(vector, extended_vector or None)``, float64, equal to
    :func:`audiodb.analysis.notebook.embedding` / :func:`audiodb.analysis.extended.embeddings`
    of the whole decode within float32 rounding. Consumes ``ff.frames``.
    """
    from .notebook import summarize

    if ff.n_samples == 0:
        raise ValueError("the embedding needs a non-empty mono waveform")
    start, end = ff.trim_bounds(params)
    hop = params.hop_length
    if end - start < int(params.min_trimmed_sec * params.sr):
        start, end = 0, ff.n_samples  # the notebook's fallback: the untrimmed signal
    frames = ff.frames
    if (start, end) != (0, ff.n_samples):
        edges, n_trim = _edge_frames(ff, start, end, params, feature_bases(params, extended))
        g0 = start // hop
        # views, not copies (``ff.frames`` is consumed): the edge columns are overwritten in place
        frames = {key: v[..., g0 : g0 + n_trim] for key, v in ff.frames.items()}
        for u, values in edges.items():
            for key, v in values.items():
                frames[key][..., u] = v
    vec = summarize(frames, n_mfcc=params.n_mfcc)  # frames['mel'] is now in dB
    if not extended:
        return vec, None
    from .extended import summarize_extended

    return vec, summarize_extended(frames, frames["mel"], params=ExtendedParams(base=params))


def file_frames(
    src: Source, params: FeatureParams = NOTEBOOK, *, extended: bool = False, chunks: int = 1
) -> FileFrames:
    """The :class:`FileFrames` of ``src`` computed here, range after range (bounded memory)."""
    n_all = src.n_frames(params.sr, params.hop_length)
    per = max(1, int(chunk_sec() * params.sr / params.hop_length))
    ranges = plan_ranges(n_all, max(chunks, -(-n_all // per)))
    frames: dict[str, np.ndarray] = {}
    for a, b in ranges:  # each range's values copied into the file's arrays at once: one copy held
        part = range_frames(src, a, b, params, extended=extended)
        for key, v in part.items():
            if key not in frames:
                frames[key] = np.empty((*v.shape[:-1], n_all), dtype=v.dtype)
            frames[key][..., a:b] = v
        del part
    return FileFrames(frames, src.n_samples(params.sr), params.sr, params.hop_length, src)


def frames_of_file(path: str, params: FeatureParams = NOTEBOOK, *, extended: bool = False) -> FileFrames:
    """The :class:`FileFrames` of any file: in chunks when it can be read so (bounded memory),
    else from a whole-file decode (:func:`audiodb.analysis.decode.load`; m4a, damaged files).

    The entry point for per-segment features: slice ``frames`` by global frame
    index (``times`` gives each frame's centre) before :func:`finish` consumes them.
    """
    src = probe(path)
    if src is not None:
        try:
            return file_frames(src, params, extended=extended)
        except SplitMismatch:
            pass
    from .decode import load

    y = load(path, sr=params.sr).y
    frames = _features(y, params, feature_bases(params, extended))
    return FileFrames(frames, len(y), params.sr, params.hop_length, None, y)


def embed_chunked(src: Source, params: FeatureParams = NOTEBOOK, *, extended: bool = False):
    """``(vector, extended_vector or None)`` of ``src`` in one process, chunk after chunk."""
    return finish(file_frames(src, params, extended=extended), params, extended=extended)


def meta_of(src: Source, params: FeatureParams) -> dict:
    """The metadata :func:`audiodb.analysis.embed.embed_file` returns, from the header."""
    return {
        "duration_sec": src.duration_sec(params.sr),
        "sample_rate": params.sr,
        "native_sample_rate": src.native_sr,
        "channels": src.channels,
        "codec": src.codec,
        "container": src.container,
        "decoder": src.decoder,
    }


def result_of(path: str, src: Source, params: FeatureParams, vec: np.ndarray, ext: np.ndarray | None):
    """``(vector, meta)`` as :func:`audiodb.analysis.embed.embed_file` returns them."""
    if not np.all(np.isfinite(vec)) or (ext is not None and not np.all(np.isfinite(ext))):
        raise DecodeError(
            path,
            "the features came out NaN or infinite (non-finite samples, or samples far outside [-1, 1]): "
            "the file is damaged or holds unscaled float data",
        )
    meta = meta_of(src, params)
    if ext is not None:
        meta["extended_vector"] = ext.astype(np.float32)
    return vec.astype(np.float32), meta
