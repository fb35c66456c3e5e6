"""A small library of synthesized sounds for trying audiodb without any audio.

The sounds are grouped in one subfolder per *kind* (``tones/``, ``chords/``,
``noise/``, ``chirps/``, ``drums/``, ``birdsong/``, ``speechlike/``).  Sounds of
one kind vary in pitch, tempo, duration and loudness, while different kinds are
acoustically distinct, so a nearest-neighbour search that uses the folder name
as the label should score well.  Files come in several formats, sample rates
and channel counts, so indexing also exercises the decoding paths.

Only numpy, scipy and soundfile are used.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Callable

import numpy as np
import soundfile as sf
from scipy import signal

__all__ = ["KINDS", "write_demo_library"]

# extension -> (soundfile format, subtype)
_FORMATS: dict[str, tuple[str, str]] = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
    ".mp3": ("MP3", "MPEG_LAYER_III"),
}
_EXTENSIONS = tuple(_FORMATS)
_SAMPLE_RATES = (22050, 44100, 48000)

# Peak amplitude range of the written signals.  Kept well below 0.9 so that
# lossy codecs (Vorbis, MP3), whose decoded output can overshoot the input
# peak a little, still stay far from clipping.
_AMP_RANGE = (0.3, 0.75)
_MAX_DECODED_PEAK = 0.85

_Generator = Callable[[int, int, np.random.Generator], np.ndarray]


# ---------------------------------------------------------------------------
# small building blocks
# ---------------------------------------------------------------------------


def _t(n: int, sr: int) -> np.ndarray:
    return np.arange(n) / sr


def _fade(y: np.ndarray, sr: int, seconds: float = 0.01) -> np.ndarray:
    """Apply short raised-cosine fades at both ends (in place) to avoid clicks."""
    k = min(int(seconds * sr), len(y) // 2)
    if k > 0:
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, k))
        y[:k] *= ramp
        y[-k:] *= ramp[::-1]
    return y


def _decay(n: int, sr: int, tau: float) -> np.ndarray:
    return np.exp(-_t(n, sr) / tau)


def _add(y: np.ndarray, start: int, x: np.ndarray) -> None:
    """Add ``x`` into ``y`` at ``start``, truncating at the end of ``y``."""
    if start >= len(y):
        return
    m = min(len(x), len(y) - start)
    y[start : start + m] += x[:m]


def _band(x: np.ndarray, sr: int, lo: float | None, hi: float | None, order: int = 4) -> np.ndarray:
    """Butterworth band/high/low-pass filter; frequencies are clipped below Nyquist."""
    nyq = sr / 2
    if hi is not None:
        hi = min(hi, 0.95 * nyq)
    if lo is not None and hi is not None:
        sos = signal.butter(order, [lo, hi], btype="bandpass", fs=sr, output="sos")
    elif lo is not None:
        sos = signal.butter(order, min(lo, 0.9 * nyq), btype="highpass", fs=sr, output="sos")
    else:
        sos = signal.butter(order, hi, btype="lowpass", fs=sr, output="sos")
    return signal.sosfilt(sos, x)


def _resonator(x: np.ndarray, sr: int, freq: float, bw: float) -> np.ndarray:
    """Two-pole resonator (one formant) with unit gain at DC scaled away."""
    r = np.exp(-np.pi * bw / sr)
    a = [1.0, -2.0 * r * np.cos(2 * np.pi * freq / sr), r * r]
    return signal.lfilter([1.0 - r], a, x)


def _midi_hz(m: float) -> float:
    return 440.0 * 2.0 ** ((m - 69) / 12)


# ---------------------------------------------------------------------------
# one generator per kind: (n_samples, sr, rng) -> mono float64 signal
# ---------------------------------------------------------------------------


def _tones(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A steady pure sine with gentle vibrato and tremolo."""
    t = _t(n, sr)
    f0 = float(np.exp(rng.uniform(np.log(200.0), np.log(1000.0))))
    vib = 1.0 + rng.uniform(0.001, 0.004) * np.sin(2 * np.pi * rng.uniform(3, 6) * t)
    phase = 2 * np.pi * np.cumsum(f0 * vib) / sr
    trem = 1.0 - rng.uniform(0.0, 0.2) * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.2, 1.0) * t))
    y = np.sin(phase) * trem
    return _fade(y, sr, 0.05)


def _chords(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A progression of plucked, harmonically rich triads/seventh chords."""
    y = np.zeros(n)
    tempo = rng.uniform(70, 140)
    chord_len = int(sr * 60.0 / tempo * rng.choice([1, 2]))
    qualities = [(0, 4, 7), (0, 3, 7), (0, 4, 7, 10), (0, 3, 7, 10), (0, 4, 7, 11)]
    root = int(rng.integers(43, 58))
    n_harm = 10
    tau = rng.uniform(0.3, 0.9)
    for start in range(0, n, chord_len):
        m = min(chord_len + sr // 4, n - start)  # let notes ring into the next chord
        t = _t(m, sr)
        env = _decay(m, sr, tau) * (1 - np.exp(-t / 0.005))
        chord_root = root + int(rng.choice([0, 2, 5, 7, 9, -3]))
        q = qualities[int(rng.integers(len(qualities)))]
        note = np.zeros(m)
        for interval in q:
            f = _midi_hz(chord_root + interval) * (1 + rng.normal(0, 0.001))
            for h in range(1, n_harm + 1):
                if f * h >= 0.45 * sr:
                    break
                # higher harmonics decay faster, as in a plucked string
                note += np.sin(2 * np.pi * f * h * t + rng.uniform(0, 2 * np.pi)) / h * np.exp(-t * h * 0.8)
        _add(y, start, note * env)
    return _fade(y, sr)


def _noise(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Stationary coloured noise (spectral slope and band emphasis vary)."""
    white = rng.standard_normal(n)
    spec = np.fft.rfft(white)
    f = np.fft.rfftfreq(n, 1 / sr)
    f[0] = f[1]
    alpha = rng.uniform(0.0, 1.0)  # 0 = white, 0.5 = pink (in amplitude), 1 = brown
    shape = f ** (-alpha)
    centre = np.exp(rng.uniform(np.log(300), np.log(0.3 * sr)))
    shape *= 1.0 + 3.0 * np.exp(-0.5 * (np.log(f / centre) / 0.5) ** 2)
    y = np.fft.irfft(spec * shape, n)
    y = _band(y, sr, 40.0, None, order=2)  # remove DC / rumble
    t = _t(n, sr)
    y *= 1.0 - 0.3 * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * t))
    return _fade(y, sr, 0.05)


def _chirps(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Repeated slow, wide, exponential sine sweeps."""
    y = np.zeros(n)
    sweep_s = rng.uniform(0.4, 1.2)
    gap_s = rng.uniform(0.05, 0.3)
    f_lo = rng.uniform(100, 300)
    f_hi = min(rng.uniform(3000, 8000), 0.4 * sr)
    up = bool(rng.integers(2))
    m = int(sweep_s * sr)
    t = _t(m, sr)
    fa, fb = (f_lo, f_hi) if up else (f_hi, f_lo)
    freq = fa * (fb / fa) ** (t / sweep_s)
    one = np.sin(2 * np.pi * np.cumsum(freq) / sr)
    one = _fade(one, sr, 0.02)
    step = int((sweep_s + gap_s) * sr)
    for start in range(0, n, step):
        _add(y, start, one)
    return _fade(y, sr)


def _drums(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A kick / snare / hi-hat pattern on a 16-step grid."""
    y = np.zeros(n)
    tempo = rng.uniform(80, 160)
    step = int(sr * 60.0 / tempo / 4)
    kick_steps = {0, 8} | {int(s) for s in rng.choice([3, 6, 10, 11, 14], size=2, replace=False)}
    snare_steps = {4, 12}
    hat_every = int(rng.choice([1, 2]))

    kn = int(0.25 * sr)
    kt = _t(kn, sr)
    kf = 45 + 110 * np.exp(-kt / 0.03)
    kick = np.sin(2 * np.pi * np.cumsum(kf) / sr) * _decay(kn, sr, 0.08)

    sn = int(0.18 * sr)
    snare_tone = 0.5 * np.sin(2 * np.pi * 185 * _t(sn, sr)) * _decay(sn, sr, 0.04)
    hn = int(0.06 * sr)

    for i, start in enumerate(range(0, n, step)):
        s = i % 16
        if s in kick_steps:
            _add(y, start, kick * rng.uniform(0.8, 1.0))
        if s in snare_steps:
            noise = _band(rng.standard_normal(sn), sr, 1000.0, 6000.0, order=2)
            _add(y, start, (0.6 * noise * _decay(sn, sr, 0.05) + snare_tone) * rng.uniform(0.7, 1.0))
        if s % hat_every == 0:
            hat = _band(rng.standard_normal(hn), sr, 7000.0, None, order=2) * _decay(hn, sr, 0.012)
            _add(y, start, 0.35 * hat * rng.uniform(0.5, 1.0))
    return _fade(y, sr, 0.002)


def _birdsong(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Phrases of short, high, frequency-modulated chirps separated by pauses."""
    y = np.zeros(n)
    base = rng.uniform(2500, 4500)
    pos = int(rng.uniform(0.05, 0.3) * sr)
    while pos < n:
        n_syll = int(rng.integers(3, 9))
        syl_s = rng.uniform(0.04, 0.12)
        gap_s = rng.uniform(0.02, 0.07)
        sweep = rng.uniform(-1500, 1500)
        fm_rate = rng.uniform(20, 80)
        fm_depth = rng.uniform(100, 600)
        for _ in range(n_syll):
            m = int(syl_s * rng.uniform(0.8, 1.2) * sr)
            t = _t(m, sr)
            f = base * rng.uniform(0.9, 1.1) + sweep * t / syl_s + fm_depth * np.sin(2 * np.pi * fm_rate * t)
            f = np.clip(f, 1000.0, 0.45 * sr)
            ph = 2 * np.pi * np.cumsum(f) / sr
            syl = (np.sin(ph) + 0.15 * np.sin(2 * ph)) * np.hanning(m)
            _add(y, pos, syl * rng.uniform(0.5, 1.0))
            pos += m + int(gap_s * sr)
        pos += int(rng.uniform(0.3, 1.0) * sr)
    return y


# (F1, F2, F3) in Hz for a few vowels
_VOWELS = (
    (730, 1090, 2440),
    (530, 1840, 2480),
    (270, 2290, 3010),
    (570, 840, 2410),
    (300, 870, 2240),
    (660, 1720, 2410),
)


def _speechlike(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Syllables of a glottal pulse train through vowel formants, with fricatives."""
    t = _t(n, sr)
    f0_mean = rng.uniform(90, 230)
    f0 = f0_mean * (
        1
        + 0.12 * np.sin(2 * np.pi * rng.uniform(0.2, 0.6) * t + rng.uniform(0, 6.3))
        + 0.01 * rng.standard_normal(n).cumsum() / np.sqrt(sr)
    )
    phase = np.cumsum(f0) / sr
    pulses = np.diff(np.floor(phase), prepend=0.0)
    # glottal source: low-passed impulse train (about -12 dB/octave)
    source = signal.lfilter([1.0], [1.0, -1.9, 0.905], pulses)
    source -= np.mean(source)

    y = np.zeros(n)
    pos = int(rng.uniform(0.05, 0.2) * sr)
    while pos < n:
        for _ in range(int(rng.integers(2, 5))):  # syllables in a word
            if rng.random() < 0.4:  # fricative onset
                fn = int(rng.uniform(0.04, 0.1) * sr)
                fric = _band(rng.standard_normal(fn), sr, 3000.0, 7000.0, order=2) * np.hanning(fn)
                _add(y, pos, 0.15 * fric)
                pos += fn
            m = int(rng.uniform(0.12, 0.28) * sr)
            if pos >= n:
                break
            seg = source[pos : pos + m]
            F = _VOWELS[int(rng.integers(len(_VOWELS)))]
            v = seg
            for fk, bw in zip(F, (80, 100, 140)):
                if fk < 0.45 * sr:
                    v = _resonator(v, sr, fk * rng.uniform(0.95, 1.05), bw)
            _add(y, pos, v * np.hanning(len(v)) ** 0.5)
            pos += m
        pos += int(rng.uniform(0.15, 0.5) * sr)
    # slight pre-emphasis, as radiated speech has
    y = signal.lfilter([1.0, -0.9], [1.0], y)
    return y


KINDS: dict[str, _Generator] = {
    "tones": _tones,
    "chords": _chords,
    "noise": _noise,
    "chirps": _chirps,
    "drums": _drums,
    "birdsong": _birdsong,
    "speechlike": _speechlike,
}
"""Sound kinds (subfolder names) mapped to their private synthesizers."""


# ---------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------


def _to_channels(y: np.ndarray, channels: int, rng: np.random.Generator) -> np.ndarray:
    if channels == 1:
        return y
    pan = rng.uniform(0.2, 0.8)  # constant-power pan
    left = np.cos(pan * np.pi / 2) * y
    right = np.sin(pan * np.pi / 2) * y
    return np.stack([left, right], axis=1)


def _write(path: pathlib.Path, y: np.ndarray, sr: int, ext: str) -> None:
    """Write ``y``; for lossy formats make sure the *decoded* peak stays below 0.9.

    Vorbis and MP3 decoders can overshoot the input peak noticeably (by 25 %
    and more for bright sweeps at low sample rates), so the file is read back
    and, if needed, rewritten at a lower level.
    """
    fmt, subtype = _FORMATS[ext]
    lossy = subtype in ("VORBIS", "MPEG_LAYER_III")
    # compression_level=0 is the highest quality, which also overshoots least
    kw = {"compression_level": 0.0} if lossy else {}
    for _ in range(4):
        sf.write(path, y, sr, format=fmt, subtype=subtype, **kw)
        if not lossy:
            return
        decoded, _ = sf.read(path, dtype="float32", always_2d=True)
        peak = float(np.max(np.abs(decoded)))
        if peak <= _MAX_DECODED_PEAK:
            return
        y = (y * (0.95 * _MAX_DECODED_PEAK / peak)).astype(np.float32)
    raise RuntimeError(f"could not keep the decoded peak of {path} below {_MAX_DECODED_PEAK}")


def write_demo_library(
    folder: str | os.PathLike[str],
    *,
    n_per_kind: int = 4,
    seed: int = 0,
) -> list[pathlib.Path]:
    """Write a small library of varied synthesized sounds.

    One subfolder is created per sound kind (see :data:`KINDS`): ``tones``,
    ``chords``, ``noise``, ``chirps``, ``drums``, ``birdsong`` and
    ``speechlike``.  Within a kind, the sounds differ in (seeded random) pitch,
    tempo, duration (2--6 s) and amplitude; the kinds themselves are
    acoustically distinct, so the folder name is a meaningful label for
    nearest-neighbour evaluation.

    Formats (``.wav``, ``.flac``, ``.ogg`` Vorbis, ``.mp3``), sample rates
    (22050, 44100, 48000 Hz) and channel counts (mono, stereo) rotate across
    files.  All files are written with :mod:`soundfile`.

    Parameters
    ----------
    folder : str or os.PathLike
        Destination folder; it and its parents are created if needed.
        Existing files with the same names are overwritten.
    n_per_kind : int, default 4
        Number of sounds per kind.
    seed : int, default 0
        Seed for all random choices.  The same seed gives the same signals
        (lossless files are byte-identical; lossy encoders may differ in
        bytes but encode the same signal).

    Returns
    -------
    list of pathlib.Path
        The written files, sorted.

    Raises
    ------
    ValueError
        If ``n_per_kind`` is smaller than 1.

    Notes
    -----
    Every signal is peak-normalized to an amplitude between 0.3 and 0.75.
    Lossy files (Vorbis, MP3) are written at the encoders' highest quality and
    read back; if the decoded peak overshoots 0.85 the file is rewritten at a
    lower level, so every file decodes with a peak of at most 0.85 and nothing
    clips.

    Examples
    --------
    >>> paths = write_demo_library("demo-audio", n_per_kind=2)  # doctest: +SKIP
    >>> sorted({p.parent.name for p in paths})  # doctest: +SKIP
    ['birdsong', 'chirps', 'chords', 'drums', 'noise', 'speechlike', 'tones']
    """
    n_per_kind = int(n_per_kind)
    if n_per_kind < 1:
        raise ValueError(f"n_per_kind must be at least 1, got {n_per_kind}")
    root = pathlib.Path(folder)
    written: list[pathlib.Path] = []
    for k, (kind, generate) in enumerate(KINDS.items()):
        out_dir = root / kind
        out_dir.mkdir(parents=True, exist_ok=True)
        for i in range(n_per_kind):
            rng = np.random.default_rng([int(seed), k, i])
            ext = _EXTENSIONS[(i + k) % len(_EXTENSIONS)]
            sr = _SAMPLE_RATES[(i + 2 * k) % len(_SAMPLE_RATES)]
            channels = 2 if (i + k) % 3 == 0 else 1
            seconds = rng.uniform(2.0, 6.0)
            n = int(round(seconds * sr))

            y = np.asarray(generate(n, sr, rng), dtype=np.float64)[:n]
            y = _to_channels(y, channels, rng)
            peak = float(np.max(np.abs(y)))
            if not np.isfinite(peak) or peak == 0.0:  # pragma: no cover - defensive
                raise RuntimeError(f"synthesizer for {kind!r} produced an unusable signal")
            y = (y * (rng.uniform(*_AMP_RANGE) / peak)).astype(np.float32)

            path = out_dir / f"{kind}_{i:02d}{ext}"
            _write(path, y, sr, ext)
            written.append(path)
    return sorted(written)
