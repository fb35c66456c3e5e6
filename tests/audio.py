"""Helpers for tests that need real audio files on disk.

``write_audio`` picks the encoder from the file extension; the signal helpers
(``music_like``, ``tone``, ``silence``) make deterministic float32 test signals.

Supported extensions (case-insensitive):

========== ========================================== =========
extension  container / codec                          writer
========== ========================================== =========
.wav       WAV, PCM_16 (``subtype=`` overrides)       soundfile
.flac      FLAC, PCM_16                               soundfile
.ogg .oga  OGG Vorbis                                 soundfile
.opus      OGG Opus (sr in 8/12/16/24/48 kHz only)    soundfile
.mp3       MPEG-1/2 Layer III                         soundfile
.aif .aiff AIFF, PCM_16                               soundfile
.m4a       MP4, AAC                                   PyAV
========== ========================================== =========
"""

from __future__ import annotations

import os
import pathlib
from fractions import Fraction

import numpy as np
import soundfile as sf

__all__ = ["OPUS_SAMPLE_RATES", "SOUNDFILE_FORMATS", "write_audio", "music_like", "tone", "silence"]

#: extension -> (soundfile format, default subtype)
SOUNDFILE_FORMATS: dict[str, tuple[str, str]] = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
    ".oga": ("OGG", "VORBIS"),
    ".opus": ("OGG", "OPUS"),
    ".mp3": ("MP3", "MPEG_LAYER_III"),
    ".aif": ("AIFF", "PCM_16"),
    ".aiff": ("AIFF", "PCM_16"),
}

#: The only sample rates libsndfile's Opus encoder accepts.
OPUS_SAMPLE_RATES = (8000, 12000, 16000, 24000, 48000)

_M4A_LAYOUTS = {1: "mono", 2: "stereo"}

#: RMS of the near-silent lead-in/tail of :func:`music_like`: -80 dBFS (peaks
#: around -70 dBFS, still a few LSB in 16-bit PCM), i.e. more than 60 dB below
#: the music, so ``librosa.effects.trim(top_db=60)`` (its default) removes it.
_FLOOR_RMS = 1e-4


def write_audio(path: str | os.PathLike[str], y: np.ndarray, sr: int, *, subtype: str | None = None) -> pathlib.Path:
    """Write ``y`` to ``path``, choosing the encoder from the extension.

    Parameters
    ----------
    path : str or os.PathLike
        Destination; the extension (case-insensitive) selects the format, see
        the module docstring.  Parent folders must exist.
    y : numpy.ndarray
        Float samples in [-1, 1], shaped ``(n,)`` (mono) or ``(n, channels)``.
    sr : int
        Sample rate in Hz.  ``.opus`` only accepts 8000, 12000, 16000, 24000
        or 48000 (no resampling is done here).
    subtype : str, optional
        soundfile subtype overriding the default (e.g. ``'PCM_24'`` or
        ``'FLOAT'`` for ``.wav``).  Not accepted for ``.m4a``.

    Returns
    -------
    pathlib.Path
        ``path`` as a Path.

    Raises
    ------
    ValueError
        Unknown extension, bad shape, an Opus sample rate libsndfile cannot
        encode, more than two channels for ``.m4a``, or ``subtype`` for ``.m4a``.
    """
    path = pathlib.Path(path)
    y = np.asarray(y, dtype=np.float32)
    if y.ndim not in (1, 2) or y.shape[0] == 0 or (y.ndim == 2 and y.shape[1] == 0):
        raise ValueError(f"y must be shaped (n,) or (n, channels) with n > 0, got {y.shape}")
    sr = int(sr)
    ext = path.suffix.lower()
    if ext == ".m4a":
        if subtype is not None:
            raise ValueError("subtype is not supported for .m4a (always AAC)")
        _write_m4a(path, y, sr)
        return path
    if ext not in SOUNDFILE_FORMATS:
        raise ValueError(f"unsupported extension {path.suffix!r}; known: {sorted([*SOUNDFILE_FORMATS, '.m4a'])}")
    fmt, default_subtype = SOUNDFILE_FORMATS[ext]
    if ext == ".opus" and sr not in OPUS_SAMPLE_RATES:
        raise ValueError(f"Opus needs a sample rate in {OPUS_SAMPLE_RATES}, got {sr}")
    sf.write(path, y, sr, format=fmt, subtype=subtype or default_subtype)
    return path


def _write_m4a(path: pathlib.Path, y: np.ndarray, sr: int) -> None:
    """Encode AAC in an MP4 container with PyAV (libsndfile cannot write it)."""
    import av

    planar = np.ascontiguousarray(y.reshape(len(y), -1).T)  # (channels, n)
    channels = planar.shape[0]
    if channels not in _M4A_LAYOUTS:
        raise ValueError(f".m4a supports 1 or 2 channels, got {channels}")
    layout = _M4A_LAYOUTS[channels]
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=sr, layout=layout)
        frame_size = stream.codec_context.frame_size or 1024
        time_base = Fraction(1, sr)
        for start in range(0, planar.shape[1], frame_size):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(planar[:, start : start + frame_size]), format="fltp", layout=layout
            )
            frame.sample_rate = sr
            frame.time_base = time_base
            frame.pts = start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))  # flush the encoder


def _env(n: int, sr: int, attack: float, decay: float) -> np.ndarray:
    t = np.arange(n) / sr
    return (1.0 - np.exp(-t / attack)) * np.exp(-t / decay)


def music_like(seconds: float, sr: int, *, seed: int = 0, channels: int = 1) -> np.ndarray:
    """A deterministic, music-like test signal.

    A sequence of harmonic notes (two voices, changing every 0.2-0.5 s, with
    attack/decay envelopes), percussive noise bursts on a beat grid and a
    little background noise.  The first and last ~0.3 s (a quarter each for
    signals shorter than 1.2 s) hold only a faint noise floor (about -80 dBFS
    RMS, more than 60 dB below the music), so silence trimming has something
    to remove.

    Parameters
    ----------
    seconds : float
        Duration; the result has ``round(seconds * sr)`` samples.
    sr : int
        Sample rate in Hz.
    seed : int, default 0
        Seed; the same arguments always give the same signal.
    channels : int, default 1
        1 gives shape ``(n,)``; more gives ``(n, channels)`` with slightly
        different channels (panning and independent background noise).

    Returns
    -------
    numpy.ndarray
        float32 samples with peak at most 0.8.
    """
    if channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels}")
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    edge = min(int(0.3 * sr), n // 4)  # quiet lead-in and tail
    body_n = n - 2 * edge
    body = np.zeros(body_n)

    # notes: a melody voice and a bass voice
    for octave_lo, octave_hi, gain in ((60, 79, 1.0), (36, 52, 0.7)):
        pos = 0
        while pos < body_n:
            m = int(rng.uniform(0.2, 0.5) * sr)
            f0 = 440.0 * 2.0 ** ((rng.integers(octave_lo, octave_hi) - 69) / 12)
            t = np.arange(m) / sr
            note = np.zeros(m)
            for h in range(1, 7):
                if f0 * h < 0.45 * sr:
                    note += np.sin(2 * np.pi * f0 * h * t) / h**1.5
            note *= _env(m, sr, 0.01, rng.uniform(0.15, 0.6))
            k = min(m, body_n - pos)
            body[pos : pos + k] += gain * note[:k]
            pos += m

    # percussive noise bursts on a beat grid
    beat = int(sr * 60.0 / rng.uniform(90, 150) / 2)
    burst_n = min(int(0.08 * sr), beat)
    for pos in range(0, body_n, max(beat, 1)):
        if rng.random() < 0.7:
            burst = rng.standard_normal(burst_n) * _env(burst_n, sr, 0.001, 0.02)
            k = min(burst_n, body_n - pos)
            body[pos : pos + k] += rng.uniform(0.3, 0.8) * burst[:k]

    if body_n > 0:
        peak = np.max(np.abs(body))
        body *= 0.7 / peak if peak > 0 else 0.0
        if body_n > 1:  # 10 ms fades so the body does not start with a click
            fade = min(int(0.01 * sr), body_n // 2)
            ramp = np.linspace(0.0, 1.0, fade)
            body[:fade] *= ramp
            body[body_n - fade :] *= ramp[::-1]

    out = np.empty((n, channels))
    for c in range(channels):
        gain = 1.0 if channels == 1 else rng.uniform(0.75, 1.0)
        ch = np.zeros(n)
        ch[edge : edge + body_n] = gain * body
        ch += _FLOOR_RMS * rng.standard_normal(n)  # noise floor everywhere
        ch[edge : edge + body_n] += 0.01 * rng.standard_normal(body_n)  # about -40 dBFS under the music
        out[:, c] = ch
    peak = np.max(np.abs(out)) if n else 0.0
    if peak > 0.8:
        out *= 0.8 / peak
    out = out.astype(np.float32)
    return out[:, 0] if channels == 1 else out


def tone(seconds: float, sr: int, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    """A float32 sine of ``round(seconds * sr)`` samples, shape ``(n,)``."""
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def silence(seconds: float, sr: int) -> np.ndarray:
    """``round(seconds * sr)`` float32 zeros, shape ``(n,)``."""
    return np.zeros(int(round(seconds * sr)), dtype=np.float32)


def ffmpeg_encode(src: str | os.PathLike[str], dst: str | os.PathLike[str], *args: str) -> pathlib.Path:
    """Encode ``src`` to ``dst`` with the ``ffmpeg`` program (e.g. ``'-c:a', 'aac'``); skips the test without it.

    For files made the way real ones are (libmp3lame's MP3 with its Info
    header, FFmpeg's AAC), which the soundfile/PyAV writers above do not give.
    """
    import shutil
    import subprocess

    import pytest

    if shutil.which("ffmpeg") is None:
        pytest.skip("the ffmpeg program is not installed (apt-get install ffmpeg)")
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(src), *args, str(dst)], check=True)
    return pathlib.Path(dst)
