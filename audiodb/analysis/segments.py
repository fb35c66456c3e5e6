"""Per-window rows of a recording: times, activity statistics and a vector, from per-frame values.

A *segmentation* cuts every file into windows of ``window_ms`` every ``hop_ms``
(:class:`SegmentParams`; presets :data:`PRESETS`). Each window gets:

=============== ==========================================================================
start_ms/end_ms integer milliseconds from the file's start
rms_db          10 log10 of the mean frame power (RMS^2) of its frames (dBFS, absolute)
snr_db          rms_db minus the file's noise floor: the ``floor_percentile`` (10th)
                percentile of the frame dB of the whole untrimmed file
active_fraction the fraction of its frames at least ``active_db`` (3 dB) plus twice the
                background's spread above that floor; the spread is the file's median frame dB
                minus its floor (about 0.3 dB in steady noise, 2-3 dB in gusty wind), so a
                background whose level drifts is not taken for calls
active          active_fraction >= ``min_active_fraction`` (0.1)
vector          :data:`SEGMENT_DIMS` numbers: the notebook's 180 definitions (mel dB mean and
                std, MFCC mean and std, the six spectral statistics) over the window's frames,
                then spectral contrast mean and std (7 + 7), chroma mean and std (12 + 12)
                and onset strength mean and std (2); tempo and pulse clarity are left out
                (a window of a second holds no tempo)
=============== ==========================================================================

The mel dB is absolute (``10 log10(power)``, floor -100 dB) rather than relative to the
file's loudest frame, as the notebook's file-level vectors are: a window's numbers then do
not depend on what else the file holds (a query clip and a two-hour file cut the same call
into the same numbers), and a chunked stream can compute them without a first pass
(see the module's measurement in the segment tests and the closing note).

Windows: window ``k`` starts at ``k * hop_ms``; every window that fits in the file is
kept, plus a last, shorter one ending at the file's end when the tail they leave uncovered
is at least half a hop. A file shorter than a window gives one window, the whole file.
A window's frames are those whose centre (``t * hop_length / sr``) falls inside it.

Pure functions: per-frame values in (:func:`audiodb.analysis.frames.frame_features` of the
UNTRIMMED signal, with ``chroma_basis`` and ``contrast_bands``), arrays out. The frames may
be a slice of a longer stream: ``first_frame`` gives the global index of the first one, and
only windows whose frames all lie in the slice are returned; the file-wide values (noise
floor) come in as :class:`FileLevels` computed from the whole file's frame RMS.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import NothingIndexed, UsageError
from .filters import mfcc_of
from .params import (  # the segmentation's parameters live with the feature sets' (no numpy)
    AMIN,
    NOTEBOOK,
    PRESETS,
    SEGMENT_DIMS,
    ExtendedParams,
    FeatureParams,
    SegmentParams,
    parse_segmentation,
)

__all__ = [
    "PRESETS",
    "SEGMENT_DIMS",
    "FileLevels",
    "SegmentParams",
    "SegmentRows",
    "choose_segmentation",
    "embeddings_and_segments",
    "file_levels",
    "frame_db",
    "frame_matrix",
    "parse_segmentation",
    "segment_rows",
    "segments_of_frames",
    "segment_signal",
    "untrimmed_frames",
    "window_bounds",
    "window_frames",
]


def window_bounds(n_samples: int, sr: float, window_ms: int, hop_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """``(start_ms, end_ms)`` of every window of a signal of ``n_samples`` (int64 arrays); see the module."""
    duration_ms = int(round(n_samples * 1000.0 / sr))
    if duration_ms <= window_ms:
        return np.zeros(1, np.int64), np.array([max(duration_ms, 1)], np.int64)
    n_full = (duration_ms - window_ms) // hop_ms + 1
    start = np.arange(n_full, dtype=np.int64) * hop_ms
    end = start + window_ms
    if duration_ms - int(end[-1]) >= hop_ms / 2:
        start = np.append(start, n_full * hop_ms)
        end = np.append(end, duration_ms)
    return start, end


def window_frames(start_ms: np.ndarray, end_ms: np.ndarray, sr: float, hop_length: int, n_frames: int):
    """``(first, stop)`` global frame indices of each window (frames whose centre is inside; at least one)."""
    per_ms = sr / hop_length / 1000.0
    first = np.ceil(np.asarray(start_ms) * per_ms - 1e-9).astype(np.int64)
    stop = np.ceil(np.asarray(end_ms) * per_ms - 1e-9).astype(np.int64)
    first = np.minimum(first, max(n_frames - 1, 0))
    stop = np.clip(stop, first + 1, max(n_frames, 1))
    return first, stop


def frame_db(rms: np.ndarray) -> np.ndarray:
    """Each frame's power in dB (``10 log10(max(1e-10, rms^2))``), float64."""
    return 10.0 * np.log10(np.maximum(AMIN, np.square(np.asarray(rms, dtype=np.float64))))


@dataclasses.dataclass(frozen=True)
class FileLevels:
    """What the windows of one file share: its noise floor, the background's spread above it
    (median minus floor) and the loudest mel power, all in dB."""

    floor_db: float
    mel_max_db: float
    spread_db: float = 0.0

    def active_threshold_db(self, params: SegmentParams) -> float:
        """The frame dB from which a frame counts as active."""
        return self.floor_db + params.active_db + 2.0 * self.spread_db


def file_levels(rms: np.ndarray, mel_max_power: float, params: SegmentParams) -> FileLevels:
    """The noise floor (the ``floor_percentile`` of the whole file's frame dB) and the mel reference.

    ``rms`` is every frame's RMS of the whole file; ``mel_max_power`` the largest mel power
    of any frame (used only with ``db_reference='file'``). The spread is the median frame dB
    minus the floor.
    """
    db = frame_db(rms)
    floor, median = (
        (float(v) for v in np.percentile(db, [params.floor_percentile, 50.0])) if db.size else (-100.0, -100.0)
    )
    return FileLevels(floor, float(10.0 * np.log10(max(AMIN, float(mel_max_power)))), max(0.0, median - floor))


def frame_matrix(frames: dict[str, np.ndarray], params: SegmentParams, levels: FileLevels) -> np.ndarray:
    """Every per-frame value a window's statistics are taken over, shape (t, 110), float32.

    Columns: mel dB (n_mels), MFCC (n_mfcc), centroid, bandwidth, rolloff, flatness, RMS,
    ZCR, spectral contrast (dB, n_bands + 1), chroma (n_chroma), onset strength (the mean
    positive rise of the mel dB from the previous frame; 0 for the first frame given).
    """
    base = params.base
    mel = np.asarray(frames["mel"], dtype=np.float32)
    mel_db = 10.0 * np.log10(np.maximum(AMIN, mel))
    if params.db_reference == "file":
        mel_db = np.maximum(mel_db - levels.mel_max_db, -80.0)
    t = mel_db.shape[1]
    mfcc = mfcc_of(mel_db, base.n_mfcc)
    contrast = 10.0 * np.log10(np.maximum(AMIN, frames["contrast_peak"])) - 10.0 * np.log10(
        np.maximum(AMIN, frames["contrast_valley"])
    )
    onset = np.zeros(t, dtype=np.float32)
    if t > 1:
        onset[1:] = np.mean(np.maximum(0.0, np.diff(mel_db, axis=1)), axis=0)
    spectral = [frames[k] for k in ("centroid", "bandwidth", "rolloff", "flatness", "rms", "zcr")]
    cols = [mel_db, mfcc, np.stack(spectral), contrast, frames["chroma"], onset[None, :]]
    return np.ascontiguousarray(np.concatenate([np.asarray(c, dtype=np.float32) for c in cols], axis=0).T)


@dataclasses.dataclass
class SegmentRows:
    """The windows of one file (or of the part of it given), as columns."""

    seg_index: np.ndarray  # (n,) int32
    start_ms: np.ndarray  # (n,) int64
    end_ms: np.ndarray  # (n,) int64
    rms_db: np.ndarray  # (n,) float32
    snr_db: np.ndarray  # (n,) float32
    active_fraction: np.ndarray  # (n,) float32
    active: np.ndarray  # (n,) bool
    vectors: np.ndarray  # (n, dims) float32

    def __len__(self) -> int:
        return len(self.seg_index)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _stats_order(params: SegmentParams) -> np.ndarray:
    """Index into concat(means, stds) of the per-frame columns giving the vector's order."""
    base, ext = params.base, params.extended
    m, c, nb, nc = base.n_mels, base.n_mfcc, ext.n_bands + 1, ext.n_chroma
    d = m + c + 6 + nb + nc + 1  # per-frame columns; means are 0..d-1, stds d..2d-1
    order = list(range(0, m)) + list(range(d, d + m))
    order += list(range(m, m + c)) + list(range(d + m, d + m + c))
    for i in range(6):
        order += [m + c + i, d + m + c + i]
    at = m + c + 6
    for width in (nb, nc, 1):
        order += list(range(at, at + width)) + list(range(d + at, d + at + width))
        at += width
    return np.asarray(order)


def segment_rows(
    frames: dict[str, np.ndarray],
    params: SegmentParams,
    *,
    n_samples: int,
    levels: FileLevels,
    first_frame: int = 0,
) -> SegmentRows:
    """The rows of the windows of a file of ``n_samples`` whose frames all lie in ``frames``.

    ``frames`` holds frames ``first_frame .. first_frame + t - 1`` of the file's untrimmed
    per-frame values (:func:`audiodb.analysis.frames.frame_features` with ``chroma_basis``
    and ``contrast_bands``). ``levels`` are the whole file's (:func:`file_levels`).
    """
    base = params.base
    n_frames_file = 1 + n_samples // base.hop_length
    start, end = window_bounds(n_samples, base.sr, params.window_ms, params.hop_ms)
    f0, f1 = window_frames(start, end, base.sr, base.hop_length, n_frames_file)
    t = frames["rms"].shape[0]
    inside = (f0 >= first_frame) & (f1 <= first_frame + t)
    idx = np.flatnonzero(inside)
    # A stream's first chunk sets frame 0's onset to 0; a later chunk's first frame has no
    # predecessor here, so its windows are computed only when the chunk starts at frame 0.
    if first_frame > 0:
        keep = f0[idx] > first_frame
        idx = idx[keep]
    X = frame_matrix(frames, params, levels)
    db = frame_db(frames["rms"])
    power = np.square(np.asarray(frames["rms"], dtype=np.float64))
    active_frames = db >= levels.active_threshold_db(params)
    n = len(idx)
    d = X.shape[1]
    stats = np.empty((n, 2 * d), dtype=np.float64)
    rms_db = np.empty(n)
    frac = np.empty(n)
    for j, w in enumerate(idx):
        a, b = f0[w] - first_frame, f1[w] - first_frame
        block = X[a:b].astype(np.float64)
        stats[j, :d] = block.mean(axis=0)
        stats[j, d:] = block.std(axis=0)
        rms_db[j] = 10.0 * np.log10(max(AMIN, float(power[a:b].mean())))
        frac[j] = float(active_frames[a:b].mean())
    vectors = stats[:, _stats_order(params)].astype(np.float32)
    return SegmentRows(
        seg_index=idx.astype(np.int32),
        start_ms=start[idx],
        end_ms=end[idx],
        rms_db=rms_db.astype(np.float32),
        snr_db=(rms_db - levels.floor_db).astype(np.float32),
        active_fraction=frac.astype(np.float32),
        active=frac >= params.min_active_fraction,
        vectors=vectors,
    )


def untrimmed_frames(y: np.ndarray, params: FeatureParams = NOTEBOOK) -> dict[str, np.ndarray]:
    """:func:`frame_features` of the whole (untrimmed) ``y`` with the second set's per-frame values."""
    from .filters import chroma_filters, contrast_bands
    from .frames import frame_features

    ext = ExtendedParams(base=params)
    return frame_features(
        np.asarray(y, dtype=np.float32),
        sr=params.sr,
        n_fft=params.n_fft,
        hop_length=params.hop_length,
        n_mels=params.n_mels,
        roll_percent=params.roll_percent,
        chroma_basis=chroma_filters(sr=params.sr, n_fft=params.n_fft, n_chroma=ext.n_chroma, tuning=ext.tuning),
        contrast_bands=contrast_bands(
            sr=params.sr, n_fft=params.n_fft, n_bands=ext.n_bands, fmin=ext.fmin, quantile=ext.quantile
        ),
    )


def segments_of_frames(frames: dict, segmentations, n_samples: int) -> dict[str, SegmentRows]:
    """Every segmentation's rows from the untrimmed per-frame values of a whole file, by id.

    ``frames`` as :func:`untrimmed_frames` gives them (or
    :attr:`audiodb.analysis.chunks.FileFrames.frames`); not modified.
    """
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        mel_max = float(frames["mel"].max()) if frames["mel"].size else 0.0
        out = {}
        for s in segmentations:
            levels = file_levels(frames["rms"], mel_max, s)
            out[s.id] = segment_rows(frames, s, n_samples=n_samples, levels=levels)
    return out


def _base_of(segmentations) -> FeatureParams:
    base = segmentations[0].base
    if any(s.base != base for s in segmentations):
        raise ValueError("segmentations of one scan share one feature set")
    return base


def segment_signal(
    y: np.ndarray, segmentations: list[SegmentParams] | tuple[SegmentParams, ...]
) -> dict[str, SegmentRows]:
    """Every segmentation's rows of a whole mono signal at ``base.sr`` (one STFT for all), by id.

    All segmentations must share one ``base`` (the library's feature set).
    """
    if not segmentations:
        return {}
    base = _base_of(segmentations)
    if len(y) == 0:
        y = np.zeros(1, dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        frames = untrimmed_frames(y, base)
    return segments_of_frames(frames, segmentations, len(y))


def embeddings_and_segments(
    y: np.ndarray, segmentations: list[SegmentParams] | tuple[SegmentParams, ...]
) -> tuple[np.ndarray, np.ndarray, dict[str, SegmentRows]]:
    """The file-level vectors (:func:`audiodb.analysis.extended.embeddings`) and every
    segmentation's rows of ``y``, from as few STFTs as exactness allows.

    The segments need the untrimmed signal's frames. When the notebook's trim keeps the whole
    signal (or falls back to it: less than ``min_trimmed_sec`` left), as in most field
    recordings whose background is within ``top_db`` of their loudest sound, those are the very
    frames the file-level sets are computed from (the same function of the same samples), so one
    STFT serves both and the vectors are bit for bit :func:`embeddings`'. Otherwise the trimmed
    signal gets its own transform, as before.
    """
    from .extended import embeddings, summarize_extended
    from .frames import trim_bounds
    from .notebook import summarize

    base = _base_of(segmentations)
    ext = ExtendedParams(base=base)
    if y.ndim != 1 or len(y) == 0:
        raise ValueError("the embedding needs a non-empty mono waveform")
    start, end = trim_bounds(y, top_db=base.top_db, frame_length=base.n_fft, hop_length=base.hop_length)
    whole = (start, end) == (0, len(y)) or (end - start) < int(base.min_trimmed_sec * base.sr)
    frames = untrimmed_frames(y, base)
    rows = segments_of_frames(frames, segmentations, len(y))  # before summarize turns frames['mel'] into dB
    if not whole:
        notebook, extended = embeddings(y, params=ext)
        return notebook, extended, rows
    notebook = summarize(frames, n_mfcc=base.n_mfcc)
    return notebook, summarize_extended(frames, frames["mel"], params=ext), rows


def choose_segmentation(registered: list, name: str | None, length_ms: float | None):
    """The segmentation of ``registered`` named ``name`` (label, WINDOW/HOP, preset or id), else the one
    whose window is closest to ``length_ms`` (the first registered without a length, or on a tie)."""
    if not registered:
        raise NothingIndexed(
            "No segmentation is registered in this library: run audiodb scan DIR --segments calls "
            "(or WINDOW/HOP in seconds) first."
        )
    if name:
        for s in registered:
            if name in (s.id, s.label) or name == f"{s.window_ms / 1000:g}/{s.hop_ms / 1000:g}":
                return s
        if name in PRESETS:
            win, hop = PRESETS[name]
            for s in registered:
                if (s.window_ms, s.hop_ms) == (round(win * 1000), round(hop * 1000)):
                    return s
        raise UsageError(
            f"No segmentation {name!r} is registered; registered: " + ", ".join(s.label for s in registered)
        )
    if length_ms is None or len(registered) == 1:
        return registered[0]
    return min(registered, key=lambda s: abs(s.window_ms - length_ms))  # min keeps the first on ties
