"""Per-frame values of every feature, computed from one STFT.

These functions reproduce ``extract_acoustic_embedding`` from the original
notebook (librosa 0.11: ``effects.trim``, ``feature.melspectrogram``,
``power_to_db(ref=np.max)``, ``feature.mfcc``, spectral centroid, bandwidth,
rolloff, flatness, RMS and zero-crossing rate), but compute the short-time
Fourier transform once, in blocks of frames, and derive every feature from it.
Memory stays proportional to the number of frames times the number of mel
bands, not to the full complex spectrogram.

They are pure: arrays in, arrays out, no I/O. They never import librosa.
:mod:`audiodb.analysis.notebook` collapses the frames into the 180 numbers,
:mod:`audiodb.analysis.extended` into the second set's 42.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from .filters import chroma_frames, contrast_peaks, hann_window, mel_filters_t
from .params import AMIN, NOTEBOOK, FeatureParams

__all__ = [
    "analysis_frames",
    "frame_features",
    "trim_bounds",
    "trim_bounds_from_rms",
]


#: Frames windowed and transformed at a time inside a block (see frame_features).
_SUB = 128


@functools.lru_cache(maxsize=16)
def _bin_frequencies(sr: float, n_fft: int) -> tuple[np.ndarray, np.ndarray]:
    """Each FFT bin's frequency (Hz), and (1, f, f^2) per bin, shape (bins, 3); read-only, cached."""
    freq = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    moments = np.stack([np.ones_like(freq), freq, freq**2], axis=1)
    freq.flags.writeable = False
    moments.flags.writeable = False
    return freq, moments


def _n_frames(n: int, hop_length: int) -> int:
    # Frames of a centred analysis (padding n_fft // 2 on each side).
    return 1 + n // hop_length


def _frame_block(
    y: np.ndarray, first: int, last: int, *, frame_length: int, hop_length: int, pad_mode: str
) -> np.ndarray:
    """Frames ``first..last-1`` of the centred framing of ``y``, shape (frames, frame_length).

    Only the samples those frames touch are copied; padding beyond the ends of
    ``y`` is zeros (``pad_mode='constant'``) or the edge sample (``'edge'``).
    """
    half = frame_length // 2
    lo = first * hop_length - half
    hi = (last - 1) * hop_length + half
    seg = y[max(lo, 0) : min(hi, len(y))]
    pad_l, pad_r = max(0, -lo), max(0, hi - len(y))
    if pad_l or pad_r:
        if pad_mode == "edge":
            seg = np.pad(seg, (pad_l, pad_r), mode="edge")
        else:  # np.pad's zeros without its set-up (a tenth of a short clip's framing)
            padded = np.zeros(pad_l + len(seg) + pad_r, dtype=seg.dtype)
            padded[pad_l : pad_l + len(seg)] = seg
            seg = padded
    view = np.lib.stride_tricks.sliding_window_view(seg, frame_length)
    return view[::hop_length]


def _hop_energies(y: np.ndarray, hop_length: int, chunk: int = 1 << 14) -> np.ndarray:
    """Sum of squares (float64) of each hop-long block of ``y``; the last may be partial."""
    n = len(y)
    n_blocks = -(-n // hop_length)
    out = np.zeros(n_blocks)
    full = n // hop_length
    for a in range(0, full, chunk):
        b = min(full, a + chunk)
        blk = y[a * hop_length : b * hop_length].reshape(b - a, hop_length)
        out[a:b] = np.einsum("ij,ij->i", blk, blk, dtype=np.float64)
    if full < n_blocks:
        tail = y[full * hop_length :].astype(np.float64)
        out[full] = np.dot(tail, tail)
    return out


def _rms_frames(y: np.ndarray, *, frame_length: int, hop_length: int) -> np.ndarray:
    """``librosa.feature.rms(y=y)[0]`` (centred, zero padding), float32.

    When the frame is a whole number of hops and centred on a hop boundary (2048
    and 512), each frame's energy is the sum of the energies of the hops it
    covers: one pass over the signal instead of four. librosa averages in float32;
    this sums in float64, so results agree to float32 rounding (~1e-7).
    """
    n = _n_frames(len(y), hop_length)
    half = frame_length // 2
    if frame_length % hop_length or half % hop_length:
        out = np.empty(n, dtype=np.float32)
        for a in range(0, n, 2048):
            b = min(n, a + 2048)
            fr = _frame_block(y, a, b, frame_length=frame_length, hop_length=hop_length, pad_mode="constant")
            out[a:b] = np.sqrt(np.mean(np.square(fr, dtype=np.float32), axis=-1))
        return out
    k, before = frame_length // hop_length, half // hop_length
    blocks = np.concatenate([np.zeros(before), _hop_energies(y, hop_length), np.zeros(k)])
    # frame t covers hop blocks t - before .. t - before + k - 1 (zeros outside y)
    energy = blocks[:n].copy()
    for j in range(1, k):
        energy += blocks[j : j + n]
    return np.sqrt(energy / frame_length).astype(np.float32)


def _zcr_frames(y: np.ndarray, a: int, b: int, *, frame_length: int, hop_length: int) -> np.ndarray:
    """``librosa.feature.zero_crossing_rate(y)[0][a:b]`` exactly (centred, edge padding).

    Crossings are counted once per sample pair over the stretch of ``y`` the
    frames cover, then per frame by differences of a running count. Edge
    padding repeats the end samples, so it adds no crossing.
    """
    n, half = len(y), frame_length // 2
    seg_lo = max(0, a * hop_length - half)
    seg_hi = min(n, (b - 1) * hop_length + half)
    seg = y[seg_lo:seg_hi]
    sign = np.signbit(np.where(np.abs(seg) <= 1e-10, np.float32(0), seg))
    running = np.zeros(len(seg), dtype=np.int64)  # running[k]: crossings with right end <= seg_lo + k
    np.cumsum(sign[1:] != sign[:-1], out=running[1:])
    t = np.arange(a, b)
    lo = t * hop_length - half
    hi = t * hop_length + half  # exclusive
    upper = np.minimum(hi - 1, seg_hi - 1) - seg_lo
    lower = np.maximum(lo, seg_lo) - seg_lo
    counts = np.where(upper > lower, running[np.maximum(upper, 0)] - running[lower], 0)
    return counts / frame_length


def trim_bounds(
    y: np.ndarray, *, top_db: float = 30.0, frame_length: int = 2048, hop_length: int = 512
) -> tuple[int, int]:
    """Sample bounds ``(start, end)`` that ``librosa.effects.trim`` keeps.

    Frames whose RMS is within ``top_db`` of the loudest frame are non-silent;
    the result spans the first to the last of them, in samples.
    """
    rms = _rms_frames(y, frame_length=frame_length, hop_length=hop_length)
    return trim_bounds_from_rms(rms, len(y), top_db=top_db, hop_length=hop_length)


def trim_bounds_from_rms(rms: np.ndarray, n: int, *, top_db: float = 30.0, hop_length: int = 512) -> tuple[int, int]:
    """:func:`trim_bounds` of an ``n``-sample signal from its per-frame RMS (centred frames).

    What a chunked analysis (:mod:`audiodb.analysis.chunks`) calls with the RMS
    frames of every chunk joined: the same decision as on the whole waveform.
    """
    power = np.square(rms)
    ref = np.max(power) if power.size else 0.0
    db = 10.0 * np.log10(np.maximum(AMIN, power))
    db -= 10.0 * np.log10(np.maximum(AMIN, ref))
    nonzero = np.flatnonzero(db > -top_db)
    if nonzero.size == 0:
        return 0, 0
    start = int(nonzero[0]) * hop_length
    end = min(n, (int(nonzero[-1]) + 1) * hop_length)
    return start, end


def frame_features(
    y: np.ndarray,
    *,
    sr: float = 22050,
    n_fft: int = 2048,
    hop_length: int = 512,
    mel_basis: np.ndarray | None = None,
    n_mels: int = 64,
    roll_percent: float = 0.85,
    block: int = 1024,
    chroma_basis: np.ndarray | None = None,
    contrast_bands: Sequence[tuple[np.ndarray, int]] | None = None,
    rms: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Per-frame values of every feature, from one centred STFT of ``y``.

    Parameters
    ----------
    y : np.ndarray, shape (n,), float32
        Mono waveform.
    sr, n_fft, hop_length : as librosa (Hann window, centred, zero padding).
    mel_basis : np.ndarray, shape (n_mels, 1 + n_fft // 2), optional
        A filterbank of your own (:func:`audiodb.analysis.filters.mel_filters`); by
        default the per-process cached one for ``sr``, ``n_fft`` and ``n_mels``.
    block : int
        Frames transformed at a time; bounds the working memory.
    chroma_basis, contrast_bands : optional
        From :func:`audiodb.analysis.filters.chroma_filters` and
        :func:`audiodb.analysis.filters.contrast_bands`: also compute the per-frame
        values of the second feature set from the same transform.
    rms : np.ndarray, optional
        ``y``'s per-frame RMS when the caller has it already (:func:`analysis_frames`, from
        the trim decision), so it is not computed twice.

    Returns
    -------
    dict
        ``mel`` (n_mels, t) float32 mel power; ``centroid``, ``bandwidth``,
        ``rolloff`` (t,) float64 in Hz; ``flatness``, ``rms`` (t,) float32;
        ``zcr`` (t,) float64; with ``chroma_basis``, ``chroma`` (n_chroma, t)
        float32; with ``contrast_bands``, ``contrast_peak`` and
        ``contrast_valley`` (bands, t) float64.
    """
    y = np.asarray(y, dtype=np.float32)
    if mel_basis is None:
        mel_basis_t = mel_filters_t(sr=sr, n_fft=n_fft, n_mels=n_mels)  # cached per process
    else:
        mel_basis_t = np.ascontiguousarray(mel_basis.T)
    n = _n_frames(len(y), hop_length)
    window = hann_window(n_fft)
    freq, moments = _bin_frequencies(sr, n_fft)
    tiny32 = np.finfo(np.float32).tiny

    mel = np.empty((mel_basis_t.shape[1], n), dtype=np.float32)  # (n_mels, t), as librosa
    centroid = np.empty(n)
    bandwidth = np.empty(n)
    rolloff = np.empty(n)
    flatness = np.empty(n, dtype=np.float32)
    if rms is None:
        rms = _rms_frames(y, frame_length=n_fft, hop_length=hop_length)
    zcr = np.empty(n)
    rows = min(block, n)
    buf = np.empty((min(_SUB, rows), n_fft))  # windowed frames of a sub-block, reused
    mag = np.empty((rows, 1 + n_fft // 2), dtype=np.float32)  # a block's magnitudes and power, reused
    power = np.empty_like(mag)
    extra: dict[str, np.ndarray] = {}
    if chroma_basis is not None or contrast_bands is not None:
        if chroma_basis is not None:
            extra["chroma"] = np.empty((chroma_basis.shape[0], n), dtype=np.float32)
        if contrast_bands is not None:
            extra["contrast_peak"] = np.empty((len(contrast_bands), n))
            extra["contrast_valley"] = np.empty((len(contrast_bands), n))

    for a in range(0, n, block):
        b = min(n, a + block)
        # Frame by frame work in sub-blocks that stay in the caches (window, FFT, magnitude, running
        # sums: 2 MB of float64 at a time instead of 16); the matrix products below take the whole
        # block, so BLAS sees the rows it always saw (its results depend on the row count).
        for c in range(a, b, _SUB):
            d = min(b, c + _SUB)
            frames = _frame_block(y, c, d, frame_length=n_fft, hop_length=hop_length, pad_mode="constant")
            # librosa multiplies float32 frames by a float64 window and keeps complex64.
            windowed = np.multiply(frames, window, out=buf[: d - c])
            # numpy.fft (librosa's STFT uses it too): numpy 2's pocketfft gives scipy.fft's bits on float64 frames.
            spec = np.fft.rfft(windowed, axis=-1).astype(np.complex64)
            m = np.abs(spec, out=mag[c - a : d - a])  # (frames, bins) float32
            del spec
            p = np.power(m, 2.0, out=power[c - a : d - a])
            if contrast_bands is not None:
                extra["contrast_peak"][:, c:d], extra["contrast_valley"][:, c:d] = contrast_peaks(m, contrast_bands)

            # Rolloff: the first bin whose running sum (float32, bin by bin, as librosa)
            # reaches roll_percent of the total.
            total = np.cumsum(m, axis=-1)
            rolloff[c:d] = freq[np.argmax(total >= roll_percent * total[:, -1:], axis=-1)]
            del total

            s_thresh = np.maximum(AMIN, p)
            gmean = np.exp(np.mean(np.log(s_thresh), axis=-1))
            flatness[c:d] = gmean / np.mean(s_thresh, axis=-1)

        block_mag, block_power = mag[: b - a], power[: b - a]
        mel[:, a:b] = (block_power @ mel_basis_t).T
        if chroma_basis is not None:
            extra["chroma"][:, a:b] = chroma_frames(block_power, chroma_basis)

        # Centroid and bandwidth: librosa normalises each frame to unit L1 norm.
        mo = block_mag.astype(np.float64) @ moments  # sum S, sum S f, sum S f^2
        length = mo[:, 0].copy()
        length[length < tiny32] = 1.0
        cen = mo[:, 1] / length
        centroid[a:b] = cen
        var = (mo[:, 2] - 2.0 * cen * mo[:, 1] + cen * cen * mo[:, 0]) / length
        bandwidth[a:b] = np.sqrt(np.maximum(var, 0.0))

        zcr[a:b] = _zcr_frames(y, a, b, frame_length=n_fft, hop_length=hop_length)

    return {
        "mel": mel,
        "centroid": centroid,
        "bandwidth": bandwidth,
        "rolloff": rolloff,
        "flatness": flatness,
        "rms": rms,
        "zcr": zcr,
        **extra,
    }


def analysis_frames(
    y: np.ndarray, *, params: FeatureParams = NOTEBOOK, block: int = 1024, **extra
) -> dict[str, np.ndarray]:
    """:func:`frame_features` of the part of ``y`` the notebook analyses.

    Trims leading and trailing silence as the notebook does (``top_db``, and
    falls back to the untrimmed signal when less than ``min_trimmed_sec``
    remains). ``extra`` goes to :func:`frame_features` (the second feature
    set's ``chroma_basis`` and ``contrast_bands``).
    """
    if y.ndim != 1 or len(y) == 0:
        raise ValueError("the embedding needs a non-empty mono waveform")
    rms = _rms_frames(y, frame_length=params.n_fft, hop_length=params.hop_length)
    start, end = trim_bounds_from_rms(rms, len(y), top_db=params.top_db, hop_length=params.hop_length)
    y_trim = y[start:end]
    if len(y_trim) < int(params.min_trimmed_sec * params.sr):
        y_trim = y
    return frame_features(
        y_trim,
        sr=params.sr,
        n_fft=params.n_fft,
        hop_length=params.hop_length,
        n_mels=params.n_mels,  # the cached filterbank
        roll_percent=params.roll_percent,
        block=block,
        # untrimmed (most short clips): the frames whose RMS the trim decision computed
        rms=rms if len(y_trim) == len(y) and y.dtype == np.float32 else None,
        **extra,
    )
