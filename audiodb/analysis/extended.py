"""A second feature set beside the notebook's: spectral contrast, chroma, onsets and tempo.

The notebook's 180 numbers describe timbre (mel bands, MFCCs, spectral shape,
loudness). These 42 add what they leave out, from the same STFT and the same
trimmed signal, so computing both costs one decode and one transform:

=================== ==== ===================================================================
features            n    per frame, then mean and std over the frames
=================== ==== ===================================================================
contrast_mean/std_k 7+7  ``librosa.feature.spectral_contrast(S=|STFT|, sr=sr)``: peak minus
                         valley (dB) in 6 octave bands from 200 Hz and the band above
chroma_mean/std_k   12+12 ``librosa.feature.chroma_stft(S=|STFT|**2, sr=sr, tuning=0)``;
                         k = 0 is C, 1 C#, ... 11 B
onset_mean, _std    2    ``librosa.onset.onset_strength(S=mel_db)`` on the notebook's 64 mel
                         bands in dB
tempo_bpm           1    the lag of the strongest autocorrelation of the whole onset
                         envelope between 30 and 300 BPM, weighted by librosa's tempo prior
                         (log-normal around 120 BPM, one octave wide)
pulse_clarity       1    that autocorrelation over the one at lag 0 (0: no pulse, 1: strict)
=================== ==== ===================================================================

Tuning is fixed at 0 (A = 440 Hz) rather than estimated: estimation costs a
pitch tracker per file, and a fixed reference keeps a track's chroma the same
whatever else is in the library. Like :mod:`audiodb.analysis.notebook` these functions
are pure and never import librosa; the tests compare them with librosa's.
"""

from __future__ import annotations

import numpy as np

from .filters import chroma_filters, contrast_bands
from .frames import analysis_frames
from .notebook import summarize
from .params import AMIN, EXTENDED, ExtendedParams

__all__ = [
    "embeddings",
    "onset_strength",
    "summarize_extended",
    "tempo",
]


def onset_strength(mel_db: np.ndarray, *, n_fft: int = 2048, hop_length: int = 512) -> np.ndarray:
    """``librosa.onset.onset_strength(S=mel_db)``: mean positive rise per frame (lag 1, centred).

    Parameters
    ----------
    mel_db : np.ndarray, shape (n_mels, t)

    Returns
    -------
    np.ndarray, shape (t,)
    """
    t = mel_db.shape[1]
    out = np.zeros(t, dtype=mel_db.dtype)
    pad = 1 + n_fft // (2 * hop_length)
    if t > 1:
        rise = np.empty(t - 1, dtype=mel_db.dtype)
        for a in range(0, t - 1, 8192):  # bounded memory on long recordings
            b = min(t - 1, a + 8192)
            diff = np.maximum(0.0, mel_db[:, a + 1 : b + 1] - mel_db[:, a:b])
            rise[a:b] = np.mean(diff, axis=0)
        keep = max(0, min(t - pad, t - 1))
        out[pad : pad + keep] = rise[:keep]
    return out


def tempo(
    onset_env: np.ndarray,
    *,
    sr: float = 22050,
    hop_length: int = 512,
    start_bpm: float = 120.0,
    std_bpm: float = 1.0,
    min_bpm: float = 30.0,
    max_bpm: float = 300.0,
) -> tuple[float, float]:
    """Global tempo (BPM) and pulse clarity from the autocorrelation of an onset envelope.

    The envelope's mean is removed, its autocorrelation (over the whole track)
    weighted by ``exp(-0.5 ((log2 bpm - log2 start_bpm) / std_bpm)^2)`` (the
    prior of ``librosa.feature.tempo``), and the best lag in ``[min_bpm,
    max_bpm]`` refined by a parabola through its neighbours. Clarity is the
    unweighted autocorrelation there over the one at lag 0. Both are 0 when the
    envelope is flat or too short for the slowest tempo's lag range to begin.
    """
    x = np.asarray(onset_env, dtype=np.float64)
    x = x - x.mean() if len(x) else x
    fps = sr / hop_length
    lo = max(1, int(np.floor(fps * 60.0 / max_bpm)))
    hi = int(np.ceil(fps * 60.0 / min_bpm))
    hi = min(hi, len(x) - 1)
    if hi <= lo:
        return 0.0, 0.0
    n = 1 << int(np.ceil(np.log2(2 * len(x))))
    spec = np.fft.rfft(x, n)
    ac = np.fft.irfft(spec * np.conj(spec), n)[: hi + 2]
    if ac[0] <= 0:
        return 0.0, 0.0
    lags = np.arange(lo, hi + 1)
    bpm = 60.0 * fps / lags
    prior = np.exp(-0.5 * ((np.log2(bpm) - np.log2(start_bpm)) / std_bpm) ** 2)
    score = ac[lo : hi + 1] * prior
    best = int(np.argmax(score))
    lag = float(lags[best])
    if 0 < best < len(score) - 1:
        left, mid, right = score[best - 1], score[best], score[best + 1]
        denom = left - 2 * mid + right
        if denom < 0:
            lag += 0.5 * (left - right) / denom
    clarity = float(np.clip(ac[lags[best]] / ac[0], 0.0, 1.0))
    return 60.0 * fps / lag, clarity


def summarize_extended(
    frames: dict[str, np.ndarray], mel_db: np.ndarray, *, params: ExtendedParams = EXTENDED
) -> np.ndarray:
    """Collapse per-frame contrast, chroma and the mel dB into the 42 numbers.

    Parameters
    ----------
    frames : dict
        :func:`audiodb.analysis.frames.frame_features` output computed with
        ``chroma_basis`` and ``contrast_bands``: ``contrast_peak``,
        ``contrast_valley`` (bands, t), ``chroma`` (n_chroma, t).
    mel_db : np.ndarray, shape (n_mels, t)
        The mel spectrogram in dB (``frames['mel']`` after :func:`summarize`).

    Returns
    -------
    np.ndarray, shape (params.dims,), float64
    """

    def to_db(s: np.ndarray, top: float) -> np.ndarray:
        # power_to_db(ref=1.0, amin=1e-10, top_db=80) over the whole (bands, t) array
        db = 10.0 * np.log10(np.maximum(AMIN, s))
        return np.maximum(db, top - 80.0)

    peak, valley = frames["contrast_peak"], frames["contrast_valley"]
    peak_db = to_db(peak, 10.0 * np.log10(max(AMIN, float(peak.max()))))
    valley_db = to_db(valley, 10.0 * np.log10(max(AMIN, float(valley.max()))))
    contrast = peak_db - valley_db
    chroma = frames["chroma"]
    base = params.base
    env = onset_strength(mel_db, n_fft=base.n_fft, hop_length=base.hop_length)
    bpm, clarity = tempo(
        env,
        sr=base.sr,
        hop_length=base.hop_length,
        start_bpm=params.start_bpm,
        std_bpm=params.std_bpm,
        min_bpm=params.min_bpm,
        max_bpm=params.max_bpm,
    )
    return np.concatenate(
        [
            np.mean(contrast, axis=1),
            np.std(contrast, axis=1),
            np.mean(chroma, axis=1),
            np.std(chroma, axis=1),
            [np.mean(env), np.std(env), bpm, clarity],
        ]
    ).astype(np.float64)


def embeddings(y: np.ndarray, *, params: ExtendedParams = EXTENDED, block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """The notebook's embedding and the extended one of a mono waveform at ``params.base.sr``.

    One trim, one STFT: the first vector equals
    :func:`audiodb.analysis.notebook.embedding`'s.

    Returns
    -------
    notebook : np.ndarray, shape (params.base.dims,), float64
    extended : np.ndarray, shape (params.dims,), float64
    """
    base = params.base
    frames = analysis_frames(
        y,
        params=base,
        block=block,
        chroma_basis=chroma_filters(sr=base.sr, n_fft=base.n_fft, n_chroma=params.n_chroma, tuning=params.tuning),
        contrast_bands=contrast_bands(
            sr=base.sr, n_fft=base.n_fft, n_bands=params.n_bands, fmin=params.fmin, quantile=params.quantile
        ),
    )
    notebook = summarize(frames, n_mfcc=base.n_mfcc)  # frames['mel'] is now in dB
    return notebook, summarize_extended(frames, frames["mel"], params=params)
