"""Decoding audio files the way ``librosa.load(path, sr=22050, mono=True)`` does.

The decoder is part of the feature contract. librosa reads with libsndfile
(through soundfile) as float32, averages the channels, then resamples with
soxr at 'HQ' quality and fixes the length to ``ceil(n * sr / sr_native)``.
This module does the same, but streams: blocks are decoded, mixed to mono and
pushed through ``soxr.ResampleStream`` into one preallocated float32 buffer,
so peak memory is the output waveform plus a block, not the native-rate
multichannel file plus its copies.

Files libsndfile cannot open (m4a/AAC, some others) are decoded with PyAV
(FFmpeg). librosa reads those through audioread, i.e. the ``ffmpeg`` program
writing 16-bit PCM, so the samples are brought to 16 bits the way that program
does before they are mixed and resampled the same way.

Decoding stops where the data really ends, whatever the header claims (a
truncated download, a damaged frame count); headers with an implausible sample
rate are refused before anything is decoded, and a header's length sets the
preallocation only as far as the file's size makes it believable.
"""

from __future__ import annotations

import dataclasses
import math
import os
import threading

import numpy as np

from ..errors import DecodeError
from . import libopus
from .blocks import BLOCK, BlockReader, FrameBlocks, to_float, to_mono
from .opus import libopus_matches_libsndfile

__all__ = ["Decoded", "header_seconds", "load"]


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
            self.stream = _resampler(native_sr, sr)
        guess = expected_in if expected_in and expected_in > 0 else 30 * native_sr
        self.buf: np.ndarray | None = np.empty(int(math.ceil(guess * sr / native_sr)) + 16, dtype=np.float32)
        self.n_out = 0

    def _put(self, out: np.ndarray) -> None:
        assert self.buf is not None, "the sink was finished"
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
        assert self.buf is not None, "the sink was finished"
        y = self.buf[:n]
        if len(self.buf) > n + (n >> 3) + 16:
            y = y.copy()  # give back a large over-allocation
        self.buf = None
        return y


_streams = threading.local()  # each thread's soxr streams, by (native rate, rate)


def _resampler(native_sr: int, sr: int):
    """A soxr HQ mono float32 stream ``native_sr`` -> ``sr``, cleared, reused per thread.

    Building one costs 25-50 us and the first chunk through it more (its filter is set up),
    a tenth of a 1-s clip's resampling. ``clear()`` makes it a fresh stream: the samples out
    are the bits a new one gives (tested). Per thread, as Dask runs analyses in threads.
    """
    cache = getattr(_streams, "by_rates", None)
    if cache is None:
        cache = _streams.by_rates = {}
    stream = cache.get((native_sr, sr))
    if stream is None:
        import soxr

        if len(cache) >= 8:  # a handful of rate pairs per process; never many streams
            cache.clear()
        stream = cache[(native_sr, sr)] = soxr.ResampleStream(native_sr, sr, 1, dtype="float32", quality="HQ")
    else:
        stream.clear()  # also after a decode that stopped midway (an error)
    return stream


#: Sample rates outside this range are damaged headers, not audio: refused before
#: anything is decoded or resampled (a 44 KB WAV claiming 1 Hz would otherwise
#: become a six-hour track).
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1_000, 1_000_000

#: A header's frame count is used to preallocate the output only up to this
#: many frames per byte of file: more than any real codec packs into a byte
#: (lossy codecs stay under ~70, FLAC reaches a few hundred only on silence).
#: Beyond it the buffer grows as real samples arrive, so a header claiming
#: hours in a few kilobytes costs what the file holds, not what it claims.
_MAX_FRAMES_PER_BYTE = 512


def _check_rate(path: str, rate: int) -> None:
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise DecodeError(
            path,
            f"sample rate {rate} Hz is not plausible for audio (accepted: 1 kHz to 1 MHz); "
            "the file's header is damaged",
        )


def _expected_frames(claimed: int | None, size: int) -> int | None:
    """How many native frames to preallocate for: the header's claim, bounded by the file size."""
    if claimed is None or claimed <= 0:
        return None
    return min(claimed, size * _MAX_FRAMES_PER_BYTE)


_LE_PCM = frozenset({"WAV", "WAVEX", "W64", "RF64"})  # libsndfile's little-endian PCM containers
_S16_SCALE = np.float32(1.0 / 0x8000)


def _load_soundfile(path: str, sr: int, size: int) -> Decoded:
    import soundfile as sf

    # Bytes: soundfile encodes a str name strictly, so a non-UTF-8 name would not open.
    with sf.SoundFile(os.fsencode(path)) as f:
        native_sr, channels = int(f.samplerate), int(f.channels)
        _check_rate(path, native_sr)
        # librosa.load reads ``f.frames`` frames in one call and keeps the
        # number libsndfile returns. Read the same, in blocks, into one reused
        # buffer, and stop at the first short read: that is the real end of the
        # data when the header claims more (a truncated MP3, a patched count).
        # (``blocks()`` cannot be used: on a short read it yields the whole
        # reused buffer, repeating stale samples up to the claimed length.)
        remaining = f.frames if f.seekable() and 0 <= f.frames < (1 << 62) else None
        sink = _Sink(native_sr, sr, _expected_frames(remaining, size))
        block = max(1024, min(BLOCK, (1 << 20) // max(channels, 1)))  # at most ~4 MB, whatever the header's channels
        reader = BlockReader(f, block)
        # 16-bit little-endian PCM: read the integers and scale them here, libsndfile's own float
        # conversion (x * (1 / 0x8000), exact) in one vectorised pass: the same bits, 2.7x faster.
        ibuf = np.empty((block, channels), dtype=np.int16) if f.subtype == "PCM_16" and f.format in _LE_PCM else None
        while remaining is None or remaining > 0:
            want = block if remaining is None else min(block, remaining)
            if ibuf is None:
                got = reader.read(want)
            else:
                ints = f.read(want, dtype="int16", always_2d=True, out=ibuf[:want])
                got = np.multiply(ints, _S16_SCALE, out=reader.buf[: len(ints)])
            if len(got):
                sink.push(to_mono(got))
            if len(got) < want:
                break
            if remaining is not None:
                remaining -= want
        return Decoded(sink.finish(), sr, native_sr, channels, f.subtype, f.format, "libsndfile")


def header_seconds(path: str | os.PathLike) -> float | None:
    """The length of ``path`` in seconds as libsndfile reads it from the header (nothing is
    decoded), or None when libsndfile cannot open it or the header gives no length."""
    import soundfile as sf

    try:
        with sf.SoundFile(os.fsencode(path)) as f:
            if f.samplerate > 0 and 0 <= f.frames < (1 << 62):
                return f.frames / f.samplerate
    except Exception:  # noqa: BLE001 - any reason means "not known from the header"
        pass
    return None


def _to_s16_float(arr: np.ndarray) -> np.ndarray:
    """Samples as FFmpeg's ``-f s16le`` output gives them, scaled to float32 as librosa does.

    For files libsndfile cannot open, librosa.load falls back to audioread,
    which runs the ``ffmpeg`` program to 16-bit PCM; librosa then divides by
    32768. The conversion is libswresample's (no dither): float by rounding
    ``x * 32768`` to nearest (ties to even) with clipping, wider integers by
    an arithmetic right shift, unsigned 8-bit by re-centering.
    """
    kind, size = arr.dtype.kind, arr.dtype.itemsize
    if kind == "f":
        q = arr.astype(np.float32, copy=False) * np.float32(32768.0)
        np.rint(q, out=q)
        np.clip(q, -32768.0, 32767.0, out=q)
        q *= np.float32(1.0 / 32768)
        return q
    if kind == "u" and size == 1:
        q = (arr.astype(np.int16) - 128) << 8
    elif kind == "i" and size > 2:
        q = arr >> (8 * size - 16)
    else:  # int16
        q = arr
    return q.astype(np.float32) * np.float32(1.0 / 32768)


def _load_libopus(path: str, sr: int) -> Decoded:
    """Ogg Opus through libopus called directly (:mod:`audiodb.analysis.libopus`): the samples of
    ``_load_pyav(..., 'libopus')``, bit for bit, with less work per packet."""
    channels, frames = libopus.header(path)
    sink = _Sink(libopus.RATE, sr, frames)
    for block in libopus.decode_blocks(path):
        sink.push(block)
    return Decoded(sink.finish(), sr, libopus.RATE, channels, "opus", "ogg", "libopus")


def _load_pyav(path: str, sr: int, size: int, codec_name: str | None = None) -> Decoded:
    """Decode with FFmpeg through PyAV.

    Without ``codec_name``: FFmpeg's default decoder, samples brought to 16 bits
    as the ``ffmpeg`` program librosa's fallback runs gives them (decoder
    'ffmpeg'). With ``codec_name`` (e.g. 'libopus'): that decoder, asked for
    float output and kept in float (decoder ``codec_name``), for formats where
    it gives libsndfile's samples.
    """
    import av

    with av.open(path) as container:
        streams = container.streams.audio
        if not streams:
            raise DecodeError(path, "no audio stream in the file")
        stream = streams[0]
        if codec_name is None:
            ctx, convert, decoder = stream.codec_context, _to_s16_float, "ffmpeg"
        else:
            ctx = av.CodecContext.create(codec_name, "r")
            params = stream.codec_context
            ctx.extradata = params.extradata
            # PyAV's stubs type create() as CodecContext; for an audio codec it is an AudioCodecContext.
            ctx.sample_rate = params.sample_rate  # type: ignore[attr-defined]
            ctx.layout = params.layout  # type: ignore[attr-defined]
            ctx.options = {"request_sample_fmt": "flt"}
            convert, decoder = to_float, codec_name
        header_sr = int(stream.rate or stream.codec_context.sample_rate or 0)
        if header_sr > 0:
            _check_rate(path, header_sr)
        expected = None
        if header_sr > 0 and stream.duration and stream.time_base:
            expected = _expected_frames(int(stream.duration * stream.time_base * header_sr), size)
        codec = stream.codec_context.name
        sink = native_sr = channels = None
        first_error = None
        blocks = FrameBlocks(convert)
        packets = container.demux(stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.error.FFmpegError as e:
                # A container damaged or cut mid-packet: like the ffmpeg program,
                # take it as the end of the input and flush the decoder.
                first_error = first_error or e
                packet = None
            try:
                frames = ctx.decode(packet)
            except av.error.InvalidDataError as e:
                # The ffmpeg program (what the notebook's fallback runs) reports
                # a damaged packet and goes on with the next; so does this.
                first_error = first_error or e
                continue
            for frame in frames:
                if sink is None:  # the decoder's rate and layout, as ffmpeg's output has them
                    native_sr = int(frame.sample_rate)
                    channels = len(frame.layout.channels)
                    _check_rate(path, native_sr)
                    sink = _Sink(native_sr, sr, expected if native_sr == header_sr else None)
                block = blocks.add(frame)  # a few large pushes, not one per 20-ms frame
                if block is not None:
                    sink.push(block)
            if packet is None:
                break
        block = blocks.flush()
        if block is not None:
            assert sink is not None  # frames were gathered, so the first frame made the sink
            sink.push(block)
        if sink is None:
            if header_sr <= 0:
                raise ValueError("its audio stream has no sample rate")
            if first_error is not None:
                raise first_error
            return Decoded(np.zeros(0, np.float32), sr, header_sr, 0, codec, container.format.name, decoder)
        assert native_sr is not None and channels is not None  # set with the sink
        return Decoded(sink.finish(), sr, native_sr, channels, codec, container.format.name, decoder)


def load(path: str | os.PathLike, *, sr: int = 22050, decoder: str = "auto") -> Decoded:
    """Decode ``path`` to a mono float32 waveform at ``sr``, as librosa.load does.

    libsndfile first (what librosa uses, so the numbers match the notebook's),
    then FFmpeg through PyAV for what libsndfile cannot open.

    ``decoder`` forces one path (for measurements and checks): 'libsndfile'
    (no fallback), 'ffmpeg' (the ``ffmpeg`` program's samples, as librosa's
    fallback reads them), or the name of an FFmpeg decoder kept in float
    ('libopus', 'vorbis', 'mp3float', 'flac', ...).

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

    if decoder != "auto":
        return _load_forced(path, sr, size, decoder)
    errors = []
    if libopus_matches_libsndfile(path):
        try:
            decoded = _load_libopus(path, sr) if libopus.available() else _load_pyav(path, sr, size, "libopus")
        except DecodeError:
            raise
        except Exception:  # noqa: BLE001 - any surprise: the libsndfile path below decides
            pass
        else:
            if len(decoded.y):
                return decoded
    try:
        decoded = _load_soundfile(path, sr, size)
    except sf.LibsndfileError as e:
        errors.append(f"libsndfile: {_libsndfile_reason(e.error_string)}")
    except (sf.SoundFileRuntimeError, RuntimeError, ValueError) as e:
        errors.append(f"libsndfile: {e}")
    except OSError as e:
        raise DecodeError(path, f"cannot read the file ({e.strerror or e})") from None
    else:
        if len(decoded.y) == 0:
            raise DecodeError(path, "the file holds no audio samples")
        return decoded

    try:
        decoded = _load_pyav(path, sr, size)
    except DecodeError:
        raise
    except FileNotFoundError:
        raise DecodeError(path, "file vanished before it could be read") from None
    except Exception as e:  # PyAV raises many types; any of them means "cannot decode"
        errors.append(f"FFmpeg: {getattr(e, 'strerror', None) or e}")
        raise DecodeError(path, _undecodable(path, errors)) from None
    if len(decoded.y) == 0:
        raise DecodeError(path, "the file holds no decodable audio samples (truncated or empty stream)")
    return decoded


def _load_forced(path: str, sr: int, size: int, decoder: str) -> Decoded:
    import soundfile as sf

    try:
        if decoder == "libsndfile":
            decoded = _load_soundfile(path, sr, size)
        else:
            decoded = _load_pyav(path, sr, size, None if decoder == "ffmpeg" else decoder)
    except DecodeError:
        raise
    except sf.LibsndfileError as e:
        raise DecodeError(path, f"libsndfile: {_libsndfile_reason(e.error_string)}") from None
    except Exception as e:
        raise DecodeError(path, f"{decoder}: {getattr(e, 'strerror', None) or e}") from None
    if len(decoded.y) == 0:
        raise DecodeError(path, "the file holds no audio samples")
    return decoded


def _libsndfile_reason(message: str) -> str:
    message = message.strip().rstrip(".")
    # libsndfile says this when no format module accepts an existing file
    # (mpg123 refusing random bytes named .mp3): the file is regular, its
    # contents are not audio libsndfile knows.
    if "not a regular file" in message:
        return "contents not recognised"
    return message


#: Leading bytes of the containers audiodb reads, to say what a file looked like.
_MAGIC = (
    (0, b"RIFF", "WAV (RIFF)"),
    (0, b"RF64", "WAV (RF64)"),
    (0, b"FORM", "AIFF"),
    (0, b"fLaC", "FLAC"),
    (0, b"OggS", "Ogg"),
    (0, b"ID3", "MP3 (ID3 tag)"),
    (4, b"ftyp", "MP4/M4A"),
    (0, b"caff", "CAF"),
)


def _sniff(path: str) -> str | None:
    """The audio format a file's first bytes announce, or None."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return None
    for offset, magic, name in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return name
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06:
        return "MPEG audio (MP3)"
    return None


def _undecodable(path: str, errors: list[str]) -> str:
    detected = _sniff(path)
    ext = os.path.splitext(path)[1]
    if detected is None:
        what = (
            "its contents match no audio format (none detected"
            + (f", though the name ends in {ext}" if ext else "")
            + ")"
        )
    else:
        what = f"it starts like {detected} but cannot be decoded (damaged or truncated?)"
    return f"not a decodable audio file: {what} [{'; '.join(errors)}]"
