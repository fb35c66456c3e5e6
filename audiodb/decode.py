"""Decoding audio files the way ``librosa.load(path, sr=22050, mono=True)`` does.

The decoder is part of the feature contract. librosa reads with libsndfile
(through soundfile) as float32, averages the channels, then resamples with
soxr at 'HQ' quality and fixes the length to ``ceil(n * sr / sr_native)``.
This module does the same, but streams: blocks are decoded, mixed to mono and
pushed through ``soxr.ResampleStream`` into one preallocated float32 buffer,
so peak memory is the output waveform plus a block, not the native-rate
multichannel file plus its copies.

Files libsndfile cannot open (m4a/AAC, some others) are decoded with PyAV
(FFmpeg), also to float32, then mixed and resampled the same way.
"""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np

from .errors import DecodeError

__all__ = ["Decoded", "load"]

_BLOCK = 1 << 16


@dataclasses.dataclass
class Decoded:
    """A decoded mono waveform and what was learned about the file."""

    y: np.ndarray  # float32, mono, at ``sr``
    sr: int
    native_sr: int
    channels: int
    codec: str  # e.g. 'FLAC', 'MPEG_LAYER_III', 'aac'
    container: str  # e.g. 'WAV', 'OGG', 'mp4'
    decoder: str  # 'libsndfile' or 'ffmpeg'

    @property
    def duration_sec(self) -> float:
        """Duration as the notebook reports it: ``len(y) / sr``."""
        return len(self.y) / self.sr


class _Sink:
    """Mono float32 blocks at the native rate in, resampled output collected."""

    def __init__(self, native_sr: int, sr: int, expected_in: int | None):
        self.native_sr, self.sr = native_sr, sr
        self.n_in = 0
        self.stream = None
        if native_sr != sr:
            import soxr

            self.stream = soxr.ResampleStream(native_sr, sr, 1, dtype="float32", quality="HQ")
        guess = expected_in if expected_in and expected_in > 0 else 30 * native_sr
        self.buf = np.empty(int(math.ceil(guess * sr / native_sr)) + 16, dtype=np.float32)
        self.n_out = 0

    def _put(self, out: np.ndarray) -> None:
        need = self.n_out + len(out)
        if need > len(self.buf):
            grown = np.empty(max(need, int(len(self.buf) * 1.5)), dtype=np.float32)
            grown[: self.n_out] = self.buf[: self.n_out]
            self.buf = grown
        self.buf[self.n_out : need] = out
        self.n_out = need

    def push(self, mono: np.ndarray) -> None:
        self.n_in += len(mono)
        if self.stream is None:
            self._put(mono)
        else:
            self._put(self.stream.resample_chunk(mono, last=False))

    def finish(self) -> np.ndarray:
        if self.stream is not None:
            self._put(self.stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
        n = int(math.ceil(self.n_in * self.sr / self.native_sr))
        if self.n_out < n:  # librosa.util.fix_length pads with zeros
            self._put(np.zeros(n - self.n_out, dtype=np.float32))
        y = self.buf[:n]
        if len(self.buf) > n + (n >> 3) + 16:
            y = y.copy()  # give back a large over-allocation
        self.buf = None
        return y


def _mono(block: np.ndarray) -> np.ndarray:
    # librosa.to_mono: mean over channels, in float32.
    if block.ndim == 1:
        return block
    if block.shape[1] == 1:
        return np.ascontiguousarray(block[:, 0])
    return np.mean(block, axis=1, dtype=np.float32)


def _load_soundfile(path: str, sr: int) -> Decoded:
    import soundfile as sf

    with sf.SoundFile(path) as f:
        native_sr, channels = int(f.samplerate), int(f.channels)
        sink = _Sink(native_sr, sr, f.frames if f.frames < (1 << 62) else None)
        for block in f.blocks(blocksize=_BLOCK, dtype="float32", always_2d=True):
            sink.push(_mono(block))
        return Decoded(sink.finish(), sr, native_sr, channels, f.subtype, f.format, "libsndfile")


def _load_pyav(path: str, sr: int) -> Decoded:
    import av

    with av.open(path) as container:
        streams = container.streams.audio
        if not streams:
            raise DecodeError(path, "no audio stream in the file")
        stream = streams[0]
        native_sr = int(stream.rate or stream.codec_context.sample_rate or 0)
        channels = int(stream.channels or stream.codec_context.channels or 0)
        if native_sr <= 0:
            raise DecodeError(path, "unknown sample rate")
        expected = None
        if stream.duration and stream.time_base:
            expected = int(stream.duration * stream.time_base * native_sr)
        sink = _Sink(native_sr, sr, expected)
        codec = stream.codec_context.name
        for frame in container.decode(stream):
            arr = frame.to_ndarray()
            fmt = frame.format.name
            if not fmt.endswith("p"):  # interleaved: (1, n * ch)
                arr = arr.reshape(-1, len(frame.layout.channels)).T
            if arr.dtype.kind in "iu":
                scale = float(1 << (8 * arr.dtype.itemsize - 1))
                arr = arr.astype(np.float32) / np.float32(scale)
            else:
                arr = arr.astype(np.float32, copy=False)
            sink.push(_mono(np.ascontiguousarray(arr.T)))
        return Decoded(sink.finish(), sr, native_sr, channels, codec, container.format.name, "ffmpeg")


def load(path: str | os.PathLike, *, sr: int = 22050) -> Decoded:
    """Decode ``path`` to a mono float32 waveform at ``sr``, as librosa.load does.

    libsndfile first (what librosa uses, so the numbers match the notebook's),
    then FFmpeg through PyAV for what libsndfile cannot open.

    Raises
    ------
    DecodeError
        With a reason a person can act on: empty file, not audio, no samples,
        no decoder for the codec.
    """
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        raise DecodeError(path, "file vanished before it could be read") from None
    except OSError as e:
        raise DecodeError(path, f"cannot read the file ({e.strerror})") from None
    if size == 0:
        raise DecodeError(path, "empty file (0 bytes)")

    import soundfile as sf

    errors = []
    try:
        decoded = _load_soundfile(path, sr)
    except sf.LibsndfileError as e:
        errors.append(f"libsndfile: {e.error_string.rstrip('.')}")
    except (sf.SoundFileRuntimeError, RuntimeError, ValueError) as e:
        errors.append(f"libsndfile: {e}")
    except OSError as e:
        raise DecodeError(path, f"cannot read the file ({e.strerror or e})") from None
    else:
        if len(decoded.y) == 0:
            raise DecodeError(path, "the file holds no audio samples")
        return decoded

    try:
        decoded = _load_pyav(path, sr)
    except DecodeError:
        raise
    except FileNotFoundError:
        raise DecodeError(path, "file vanished before it could be read") from None
    except Exception as e:  # PyAV raises many types; any of them means "cannot decode"
        errors.append(f"FFmpeg: {getattr(e, 'strerror', None) or e}")
        raise DecodeError(path, "not a decodable audio file (" + "; ".join(errors) + ")") from None
    if len(decoded.y) == 0:
        raise DecodeError(path, "the file holds no decodable audio samples (truncated or empty stream)")
    return decoded
