"""Filterbanks, windows and the per-frame band reductions, as librosa computes them.

Pure numpy, no I/O, never librosa (nor scipy): the mel scale and filterbank
(``librosa.filters.mel``), the periodic Hann window, the orthonormal DCT-II
that turns mel dB into MFCCs, the chroma filterbank
(``librosa.filters.chroma``), the spectral-contrast bands, and what each STFT
block is reduced to for chroma and contrast. :mod:`audiodb.analysis.frames`
applies them to each block of the one transform.

The filterbanks depend only on the parameters, so each is built once per
process and cached (:func:`functools.lru_cache`): every caller gets the same
read-only arrays. ``f.__wrapped__(...)`` builds a fresh, writable one.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

__all__ = [
    "chroma_filters",
    "chroma_frames",
    "contrast_bands",
    "contrast_peaks",
    "dct_matrix",
    "hann_window",
    "hz_to_mel",
    "mel_filters",
    "mel_filters_t",
    "mel_to_hz",
    "mfcc_of",
]


def _freeze(value):
    """``value`` with every array in it made read-only (arrays, or tuples of them)."""
    if isinstance(value, np.ndarray):
        value.flags.writeable = False
    elif isinstance(value, tuple):
        for v in value:
            _freeze(v)
    return value


def _cached_per_process(build):
    """``build`` memoised on its (hashable, scalar) arguments; results are read-only.

    Parameters are a handful of numbers per feature set, so a small cache holds
    every set a process uses. ``__wrapped__`` is the uncached ``build``.
    """
    cached = functools.lru_cache(maxsize=16)(lambda *args, **kwargs: _freeze(build(*args, **kwargs)))
    functools.update_wrapper(cached, build)
    return cached


def hz_to_mel(f: np.ndarray) -> np.ndarray:
    # Slaney's auditory toolbox scale, as librosa.hz_to_mel(htk=False).
    f = np.asanyarray(f, dtype=float)
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    log_t = f >= min_log_hz
    mels[log_t] = min_log_mel + np.log(f[log_t] / min_log_hz) / logstep
    return mels


def mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asanyarray(m, dtype=float)
    f_sp = 200.0 / 3
    freqs = f_sp * m
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    log_t = m >= min_log_mel
    freqs[log_t] = min_log_hz * np.exp(logstep * (m[log_t] - min_log_mel))
    return freqs


@_cached_per_process
def mel_filters(*, sr: float, n_fft: int, n_mels: int) -> np.ndarray:
    """Slaney-normalised mel filterbank, as ``librosa.filters.mel`` (defaults).

    Cached per process: the array returned is shared and read-only.

    Returns
    -------
    np.ndarray, shape (n_mels, 1 + n_fft // 2), float32
    """
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    fmax = float(sr) / 2
    mels = np.linspace(hz_to_mel(np.array([0.0]))[0], hz_to_mel(np.array([fmax]))[0], n_mels + 2)
    mel_f = mel_to_hz(mels)
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    weights = np.zeros((n_mels, 1 + n_fft // 2), dtype=np.float32)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    enorm = 2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels])
    weights *= enorm[:, np.newaxis]
    return weights


@_cached_per_process
def mel_filters_t(*, sr: float, n_fft: int, n_mels: int) -> np.ndarray:
    """:func:`mel_filters` transposed, C-contiguous (the operand of the per-block product); cached.

    Returns
    -------
    np.ndarray, shape (1 + n_fft // 2, n_mels), float32
    """
    return np.ascontiguousarray(mel_filters(sr=sr, n_fft=n_fft, n_mels=n_mels).T)


@_cached_per_process
def hann_window(n_fft: int) -> np.ndarray:
    """The periodic Hann window, as ``scipy.signal.get_window('hann', n_fft)`` computes it
    (same operations, same bits), without importing scipy.signal (a second at start-up).
    Cached per process, read-only."""
    fac = np.linspace(-np.pi, np.pi, n_fft + 1)
    w = np.zeros(n_fft + 1)
    w += 0.5 * np.cos(0 * fac)
    w += 0.5 * np.cos(1 * fac)
    return w[:-1]


@_cached_per_process
def dct_matrix(n_in: int, n_out: int) -> np.ndarray:
    """The first ``n_out`` rows of the orthonormal DCT-II of length ``n_in``, float64; cached.

    ``dct_matrix(n, k) @ x`` is ``scipy.fft.dct(x, type=2, norm='ortho', axis=0)[:k]`` (what
    ``librosa.feature.mfcc`` takes of the mel dB) without importing scipy.fft (0.15-0.2 s per
    process). Applied in float64 to float32 input and rounded once to float32, it stays within
    2.2e-7 of the largest coefficient of scipy's float32 transform (measured on real files).
    """
    k = np.arange(n_out, dtype=np.float64)[:, np.newaxis]
    n = np.arange(n_in, dtype=np.float64)[np.newaxis, :]
    basis = np.cos(np.pi * k * (2.0 * n + 1.0) / (2.0 * n_in))
    basis *= np.sqrt(2.0 / n_in)
    basis[0] *= np.sqrt(0.5)
    return basis


def mfcc_of(mel_db: np.ndarray, n_mfcc: int) -> np.ndarray:
    """MFCCs (n_mfcc, t) of mel dB frames (n_mels, t): :func:`dct_matrix` in float64, in ``mel_db``'s dtype."""
    basis = dct_matrix(mel_db.shape[0], n_mfcc)
    return (basis @ mel_db.astype(np.float64)).astype(mel_db.dtype)


@_cached_per_process
def chroma_filters(*, sr: float, n_fft: int, n_chroma: int = 12, tuning: float = 0.0) -> np.ndarray:
    """Chroma filterbank, as ``librosa.filters.chroma`` with its defaults (C first).

    Cached per process: the array returned is shared and read-only.

    Returns
    -------
    np.ndarray, shape (n_chroma, 1 + n_fft // 2), float32
    """
    frequencies = np.linspace(0, sr, n_fft, endpoint=False)[1:]
    a440 = 440.0 * 2.0 ** (tuning / n_chroma)
    frqbins = n_chroma * np.log2(frequencies / (a440 / 16))
    # The 0 Hz bin: 1.5 octaves below bin 1.
    frqbins = np.concatenate(([frqbins[0] - 1.5 * n_chroma], frqbins))
    binwidthbins = np.concatenate((np.maximum(frqbins[1:] - frqbins[:-1], 1.0), [1]))
    d = np.subtract.outer(frqbins, np.arange(0, n_chroma, dtype="d")).T
    half = np.round(float(n_chroma) / 2)
    d = np.remainder(d + half + 10 * n_chroma, n_chroma) - half
    wts = np.exp(-0.5 * (2 * d / np.tile(binwidthbins, (n_chroma, 1))) ** 2)
    length = np.sqrt(np.sum(wts**2, axis=0, keepdims=True))  # unit L2 columns
    length[length < np.finfo(wts.dtype).tiny] = 1.0
    wts = wts / length
    ctroct, octwidth = 5.0, 2.0
    wts *= np.tile(np.exp(-0.5 * (((frqbins / n_chroma - ctroct) / octwidth) ** 2)), (n_chroma, 1))
    wts = np.roll(wts, -3 * (n_chroma // 12), axis=0)
    return np.ascontiguousarray(wts[:, : int(1 + n_fft / 2)], dtype=np.float32)


@_cached_per_process
def contrast_bands(
    *, sr: float, n_fft: int, n_bands: int = 6, fmin: float = 200.0, quantile: float = 0.02
) -> tuple[tuple[np.ndarray, int], ...]:
    """The FFT bins of each spectral-contrast band and how many make its peak and valley.

    The bands of ``librosa.feature.spectral_contrast``: octaves from ``fmin``
    (the first from 0 Hz), each with the bin below it, the last up to Nyquist.
    Cached per process: the tuple and its ``bins`` arrays are shared and read-only.

    Returns
    -------
    tuple of (bins, count), n_bands + 1 of them
    """
    freq = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    octa = np.zeros(n_bands + 2)
    octa[1:] = fmin * (2.0 ** np.arange(0, n_bands + 1))
    if np.any(octa[:-1] >= 0.5 * sr):
        raise ValueError("Frequency band exceeds Nyquist. Reduce either fmin or n_bands.")
    out = []
    for k, (f_low, f_high) in enumerate(zip(octa[:-1], octa[1:])):
        band = np.logical_and(freq >= f_low, freq <= f_high)
        idx = np.flatnonzero(band)
        if k > 0:
            band[idx[0] - 1] = True
        if k == n_bands:
            band[idx[-1] + 1 :] = True
        count = int(np.maximum(np.rint(quantile * np.sum(band)), 1))
        bins = np.flatnonzero(band)
        if k < n_bands:
            bins = bins[:-1]
        assert np.all(np.diff(bins) == 1)
        out.append((bins, count))
    return tuple(out)


def contrast_peaks(mag: np.ndarray, bands: Sequence[tuple[np.ndarray, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Peak and valley of each band in each frame: the mean of the ``count`` largest and smallest.

    Parameters
    ----------
    mag : np.ndarray, shape (frames, bins), float32 magnitudes

    Returns
    -------
    peak, valley : np.ndarray, shape (n_bands + 1, frames), float64
    """
    peak = np.empty((len(bands), mag.shape[0]))
    valley = np.empty_like(peak)
    for k, (bins, count) in enumerate(bands):
        sub = mag[:, bins[0] : bins[-1] + 1]  # a band is a run of bins: a view, no copy
        if count == 1:
            valley[k], peak[k] = np.min(sub, axis=1), np.max(sub, axis=1)
            continue
        # numpy's vectorised sort beats a two-sided partition here, and sums as librosa does.
        ordered = np.sort(sub, axis=1)
        valley[k] = np.mean(ordered[:, :count], axis=1)
        peak[k] = np.mean(ordered[:, -count:], axis=1)
    return peak, valley


def chroma_frames(power: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Chroma of each frame, each frame scaled to a maximum of 1 (silent frames stay 0).

    Parameters
    ----------
    power : np.ndarray, shape (frames, bins), float32
    basis : np.ndarray, shape (n_chroma, bins), from :func:`chroma_filters`

    Returns
    -------
    np.ndarray, shape (n_chroma, frames), float32
    """
    raw = (power @ basis.T).T
    length = np.max(np.abs(raw), axis=0, keepdims=True).astype(float)
    length[length < np.finfo(raw.dtype).tiny] = 1.0
    return (raw / length).astype(raw.dtype)
