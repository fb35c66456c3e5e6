"""The log-mel envelope of a short clip over time: what ``duplicates`` compares clips by.

A pure function of the decoded waveform (:func:`clip_envelope_of`), kept compact as whole
quarter-decibels below the clip's loudest point, one byte a value (:func:`encode_envelope`):
``duplicates`` keeps the envelope of each clip of :data:`CLIP_SECONDS` it decodes in the
library, so a later run reads it instead of decoding the file again.
:data:`ENVELOPE_VERSION` names every parameter below: a change makes stored envelopes stale.
"""

from __future__ import annotations

import functools
import hashlib
import json

import numpy as np

__all__ = [
    "CLIP_SECONDS",
    "ENVELOPE_HOP",
    "ENVELOPE_SR",
    "ENVELOPE_VERSION",
    "MAX_HZ",
    "clip_envelope_of",
    "decode_envelope",
    "encode_envelope",
    "envelope_bands",
    "is_clip",
]

#: Files lasting this long (seconds, from, up to) are clips whose envelope is kept. Below 0.5 s
#: the envelope has too few frames to tell; from 10 s the mel-band averages do (query.duplicates).
CLIP_SECONDS = (0.5, 10.0)

#: The envelope's bands are the notebook's mel bands (64 over 0-11025 Hz) lying wholly below this
#: frequency (Hz): lossy codecs and resamplers change the top of the spectrum, not what is below.
MAX_HZ = 6000.0

#: The waveform's rate (Hz): mono, resampled as the scan decodes it (audiodb.analysis.decode.load).
ENVELOPE_SR = 22050

#: Samples between the envelope's frames (at ENVELOPE_SR): what a lag in frames is in time.
ENVELOPE_HOP = 256

_FFT, _N_MELS = 1024, 64
_FLOOR_DB = 60.0  # the floor under the loudest value
_STEP_DB = 0.25  # stored in steps of this: 0..240, one byte each

#: The id of the envelope's parameters and stored form: stored envelopes of another id are stale.
ENVELOPE_VERSION = (
    "clipenv-"
    + hashlib.sha1(
        json.dumps(
            {
                "sr": ENVELOPE_SR,
                "n_fft": _FFT,
                "hop": ENVELOPE_HOP,
                "n_mels": _N_MELS,
                "max_hz": MAX_HZ,
                "floor_db": _FLOOR_DB,
                "step_db": _STEP_DB,
                "form": "uint8 steps below the maximum, frames x bands, C order",
            },
            sort_keys=True,
        ).encode()
    ).hexdigest()[:10]
)


def is_clip(duration_sec: float) -> bool:
    """Whether a file of ``duration_sec`` seconds is a clip of :data:`CLIP_SECONDS`."""
    lo, hi = CLIP_SECONDS
    return lo <= duration_sec < hi


@functools.cache
def _weights() -> np.ndarray:
    from .filters import hz_to_mel, mel_filters, mel_to_hz

    top = hz_to_mel(np.array([ENVELOPE_SR / 2]))[0]
    edges = mel_to_hz(np.linspace(hz_to_mel(np.array([0.0]))[0], top, _N_MELS + 2))
    return mel_filters(sr=ENVELOPE_SR, n_fft=_FFT, n_mels=_N_MELS)[edges[2:] <= MAX_HZ]


def envelope_bands() -> int:
    """The number of bands of an envelope (those wholly below :data:`MAX_HZ`)."""
    return len(_weights())


def clip_envelope_of(y: np.ndarray) -> np.ndarray:
    """The log-mel envelope of a mono waveform at :data:`ENVELOPE_SR`, in its stored form.

    Power in the notebook's mel bands below :data:`MAX_HZ` (frames of 1024, hop 256, Hann
    window), in dB with a floor 60 dB under the loudest, as whole steps of 0.25 dB below the
    loudest value.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        The waveform (any float dtype; computed in float64).

    Returns
    -------
    np.ndarray, shape (frames, bands), uint8
        Steps of 0.25 dB below the loudest value (0 .. 240); ``frames`` is
        ``1 + (max(n, 1024) - 1024) // 256``. :func:`decode_envelope` gives what is compared.
    """
    from .filters import hann_window

    y = np.asarray(y, dtype=np.float64)
    if len(y) < _FFT:
        y = np.pad(y, (0, _FFT - len(y)))
    frames = np.lib.stride_tricks.sliding_window_view(y, _FFT)[::ENVELOPE_HOP]  # a view: 1 + (n - 1024) // 256 rows
    weights = _weights()
    bins = int(np.flatnonzero(weights.any(axis=0)).max()) + 1  # the bands kept end below MAX_HZ: so do their bins
    spectrum = np.fft.rfft(frames * hann_window(_FFT)[None, :], axis=1)[:, :bins]
    power = spectrum.real**2 + spectrum.imag**2
    db = 10.0 * np.log10(np.maximum(power @ weights[:, :bins].T, 1e-10))
    below = np.minimum(db.max() - db, _FLOOR_DB)
    return np.rint(below / _STEP_DB).astype(np.uint8)


def encode_envelope(env: np.ndarray) -> bytes:
    """The bytes stored for an envelope of :func:`clip_envelope_of` (frames x bands, C order)."""
    return np.ascontiguousarray(env, dtype=np.uint8).tobytes()


def decode_envelope(blob: bytes | np.ndarray, bands: int | None = None) -> np.ndarray:
    """An envelope as compared: the stored steps back in dB, each band centred, the whole scaled
    to unit norm. ``blob``: :func:`encode_envelope`'s bytes (``bands`` wide, default
    :func:`envelope_bands`) or :func:`clip_envelope_of`'s array. Shape (frames, bands), float64."""
    if isinstance(blob, np.ndarray):
        steps = blob
    else:
        steps = np.frombuffer(blob, dtype=np.uint8).reshape(-1, bands or envelope_bands())
    x = steps.astype(np.float64) * -_STEP_DB
    x -= x.mean(axis=0, keepdims=True)
    norm = float(np.linalg.norm(x))
    return x / norm if norm > 0 else x
