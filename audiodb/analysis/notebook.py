"""The notebook's 180-number acoustic embedding: per-frame values collapsed into statistics.

:func:`embedding` reproduces ``extract_acoustic_embedding`` from the original
notebook (see :mod:`audiodb.analysis.reference`); :func:`summarize` turns the
output of :func:`audiodb.analysis.frames.frame_features` into its numbers.
"""

from __future__ import annotations

import numpy as np

from .filters import mfcc_of
from .frames import analysis_frames
from .params import AMIN, NOTEBOOK, FeatureParams

__all__ = [
    "embedding",
    "summarize",
]


def summarize(frames: dict[str, np.ndarray], *, n_mfcc: int = 20) -> np.ndarray:
    """Collapse :func:`frame_features` output into the notebook's embedding.

    Consumes ``frames['mel']`` (it is turned into dB in place).

    Returns
    -------
    np.ndarray, shape (2 * n_mels + 2 * n_mfcc + 12,), float64
        ``mel_mean_*``, ``mel_std_*``, ``mfcc_mean_*``, ``mfcc_std_*`` then
        mean and std of centroid, bandwidth, rolloff, flatness, RMS, ZCR.
    """
    # power_to_db(S, ref=np.max) with amin 1e-10 and top_db 80, in float32, in place
    # (``frames['mel']`` becomes dB): a long recording holds one (n_mels, t) array.
    s_db = frames["mel"]
    ref = 10.0 * np.log10(np.maximum(AMIN, np.max(s_db)))
    np.maximum(s_db, AMIN, out=s_db)
    np.log10(s_db, out=s_db)
    s_db *= 10.0
    s_db -= ref
    np.maximum(s_db, s_db.max() - 80.0, out=s_db)

    # A few rows at a time: the same reductions as over the whole array (each row
    # is summed pairwise along its contiguous axis either way), with np.std's
    # temporary bounded to about 16 MB on a long recording.
    t = s_db.shape[1]
    rows = max(1, (1 << 22) // max(t, 1))
    mel_mean = np.concatenate([np.mean(s_db[i : i + rows], axis=1) for i in range(0, len(s_db), rows)])
    mel_std = np.concatenate([np.std(s_db[i : i + rows], axis=1) for i in range(0, len(s_db), rows)])
    mfcc = np.empty((n_mfcc, t), dtype=s_db.dtype)
    for a in range(0, t, 8192):
        mfcc[:, a : a + 8192] = mfcc_of(s_db[:, a : a + 8192], n_mfcc)

    # Mean and std of each spectral series: one row-wise reduction per dtype (float64
    # and float32 rows), the same sums as over each series alone, in its own dtype.
    keys = ("centroid", "bandwidth", "rolloff", "flatness", "rms", "zcr")
    spec: np.ndarray = np.empty((len(keys), 2))
    for dtype in {frames[key].dtype for key in keys}:
        group = [i for i, key in enumerate(keys) if frames[key].dtype == dtype]
        series = np.stack([frames[keys[i]] for i in group])
        spec[group, 0] = np.mean(series, axis=1)
        spec[group, 1] = np.std(series, axis=1)
    spec = spec.ravel()
    mfcc_stats = [np.mean(mfcc, axis=1), np.std(mfcc, axis=1)]
    return np.concatenate([mel_mean, mel_std, *mfcc_stats, spec])


def embedding(y: np.ndarray, *, params: FeatureParams = NOTEBOOK, block: int = 1024) -> np.ndarray:
    """The notebook's embedding of a mono waveform already at ``params.sr``.

    Trims silence as the notebook does (:func:`analysis_frames`), then derives
    every feature from one STFT.

    Parameters
    ----------
    y : np.ndarray, shape (n,), float32, n >= 1
    params : FeatureParams

    Returns
    -------
    np.ndarray, shape (params.dims,), float64
    """
    return summarize(analysis_frames(y, params=params, block=block), n_mfcc=params.n_mfcc)
