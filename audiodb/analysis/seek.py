"""Reading a range of a file exactly as a whole-file decode has it: the reading half of :mod:`.chunks`.

:func:`probe` reads a file's header; :func:`iter_samples` gives samples
``start..stop`` of the whole-file decode at the analysis rate without decoding
the rest: libsndfile seeks to the sample (measured exact for WAV, FLAC, Ogg
Vorbis, MP3 and Ogg Opus), libopus seeks with a pre-roll (measured to converge
to the continuous decode's bits), and a fresh soxr stream started on its seam
period a warm-up before ``start`` gives the whole-file resample's bits.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Generator, Iterator

import numpy as np

from ..errors import DecodeError
from .blocks import BlockReader, FrameBlocks, to_mono

__all__ = [
    "SEAM_PERIODS",
    "Source",
    "SplitMismatch",
    "decode_range",
    "iter_samples",
    "probe",
    "seam_periods",
]

#: Output samples resampled before a range starts and thrown away: the fresh soxr
#: stream's start-up is over after at most ~2300 samples (measured, 8 kHz sources).
_WARMUP = 8192

_READ = 1 << 16


class SplitMismatch(DecodeError):
    """A chunk could not be read as the header promised (data ending early, a damaged stretch):
    analyse the file whole instead, whose decoder decides (it may fall back to FFmpeg)."""


@dataclasses.dataclass(frozen=True)
class Source:
    """What :func:`probe` learned of a file: enough to plan chunks and to fill the metadata."""

    path: str
    native_sr: int
    channels: int
    native_frames: int
    codec: str
    container: str
    decoder: str  # as the whole-file decode reports it ('libsndfile' or 'libopus')

    def n_samples(self, sr: int) -> int:
        """Samples at ``sr`` of the whole-file decode (librosa's ``fix_length``)."""
        return int(math.ceil(self.native_frames * sr / self.native_sr))

    def n_frames(self, sr: int, hop_length: int) -> int:
        return 1 + self.n_samples(sr) // hop_length

    def duration_sec(self, sr: int) -> float:
        return self.n_samples(sr) / sr


def probe(path: str) -> Source | None:
    """The header facts of ``path``, or None when it cannot be read in chunks exactly.

    Chunked reading needs libsndfile (sample-exact seeking) and a length in the
    header. Ogg Opus that the whole-file decode reads with libopus
    (:func:`audiodb.analysis.opus.libopus_matches_libsndfile`) is read here with
    libsndfile too: the two give the same samples within a few float32 ulps.
    Files only FFmpeg decodes (m4a, damaged ones) return None: they are analysed whole.
    """
    import soundfile as sf

    from .opus import libopus_matches_libsndfile

    try:
        with sf.SoundFile(os.fsencode(path)) as f:
            if not f.seekable() or not 0 < f.frames < (1 << 62):
                return None
            src = Source(path, int(f.samplerate), int(f.channels), int(f.frames), f.subtype, f.format, "libsndfile")
    except Exception:  # noqa: BLE001 - not readable by libsndfile: the whole-file path decides
        return None
    if not 1_000 <= src.native_sr <= 1_000_000:
        return None
    if libopus_matches_libsndfile(path):
        try:
            import av

            with av.open(path) as container:
                stream = container.streams.audio[0]
                if not (stream.duration and stream.time_base):
                    return None
                head = bytes(stream.codec_context.extradata or b"")
                pre_skip = int.from_bytes(head[10:12], "little") if head[:8] == b"OpusHead" else 0
                if round(stream.duration * stream.time_base * 48000) - pre_skip != src.native_frames:
                    return None  # libopus and libsndfile disagree on the length: decoded whole
                # as the whole-file libopus decode reports the file (decode._load_pyav)
                src = dataclasses.replace(
                    src,
                    codec=stream.codec_context.name,
                    container=container.format.name,
                    channels=len(stream.codec_context.layout.channels),
                    decoder="libopus",
                )
        except Exception:  # noqa: BLE001
            return None
    return src


def _mono(block: np.ndarray) -> np.ndarray:
    # librosa.to_mono, as the whole-file decode mixes (the same function, the same bits).
    if block.shape[1] == 1:
        return np.array(block[:, 0])  # a copy: ``block`` is a reused read buffer
    return to_mono(block)


def _period(native_sr: int, sr: int) -> tuple[int, int]:
    g = math.gcd(native_sr, sr)
    return native_sr // g, sr // g


#: Measured with soxr 0.5 (``soxr_seam_periods`` below): a fresh ``ResampleStream``
#: (quality 'HQ') started at a multiple of this many rate periods gives, after its
#: start-up, the very bits of a whole-file one (its internal blocks line up again);
#: at other multiples of the rate period the samples differ by float32 rounding.
SEAM_PERIODS = {
    (44100, 22050): 830,
    (48000, 22050): 401,
    (32000, 22050): 73,
    (96000, 22050): 99,
    (88200, 22050): 820,
    (16000, 22050): 41,
    (8000, 22050): 41,
    (24000, 22050): 401,
    (11025, 22050): 830,
    (12000, 22050): 41,
    (176400, 22050): 814,
    (192000, 22050): 393,
}


@functools.lru_cache(maxsize=32)
def seam_periods(native_sr: int, sr: int) -> int:
    """Rate periods between the stream starts that give a whole-file resample's bits (see above).

    Looked up, else found once per process by trying starts on a noise signal
    (about a second); 1 (the rate period: float32-rounding seams) if none is found.
    """
    if (native_sr, sr) in SEAM_PERIODS:
        return SEAM_PERIODS[(native_sr, sr)]
    import soxr

    p_in, p_out = _period(native_sr, sr)
    if p_in * 4000 > 50_000_000:
        return 1
    x = (np.random.default_rng(0).standard_normal(p_in * 4000 + native_sr) * 0.1).astype(np.float32)

    def run(a: int, b: int) -> np.ndarray:
        stream = soxr.ResampleStream(native_sr, sr, 1, dtype="float32", quality="HQ")
        return np.concatenate([stream.resample_chunk(x[i : min(b, i + _READ)]) for i in range(a, b, _READ)])

    whole = run(0, len(x))
    for m in range(1, 4000):
        part = run(p_in * m, min(len(x), p_in * m + native_sr // 2 + 4 * _WARMUP))
        o = p_out * m
        if len(part) > 2 * _WARMUP and np.array_equal(
            part[_WARMUP : 2 * _WARMUP], whole[o + _WARMUP : o + 2 * _WARMUP]
        ):
            return m
    return 1


def iter_samples(src: Source, start: int, stop: int | None, sr: int) -> Iterator[tuple[int, np.ndarray]]:
    """Consecutive pieces ``(offset, samples)`` of the whole-file decode at ``sr``, from sample
    ``start`` to ``stop`` (None: the end), each a float32 array of global samples ``offset...``.

    Raises :class:`SplitMismatch` when the data ends before the header's length.
    """

    total = src.n_samples(sr)
    stop = total if stop is None else min(stop, total)
    if start >= stop:
        return
    p_in, p_out = _period(src.native_sr, sr)
    step = seam_periods(src.native_sr, sr) if src.native_sr != sr else 1
    first = max(0, start - _WARMUP) // (p_out * step) * step  # rate periods before the stream starts
    out_pos, in_pos = first * p_out, first * p_in  # global output / native index of the stream's start
    stream = None
    if src.native_sr != sr:
        import soxr

        stream = soxr.ResampleStream(src.native_sr, sr, 1, dtype="float32", quality="HQ")
    blocks = _native_blocks(src, in_pos)
    try:
        while out_pos < stop:
            mono = next(blocks, None)
            if mono is None:
                raise SplitMismatch(
                    src.path, f"the audio data ends at frame {in_pos}, before the {src.native_frames} its header says"
                )
            if in_pos + len(mono) > src.native_frames:
                mono = mono[: src.native_frames - in_pos]
            in_pos += len(mono)
            ended = in_pos >= src.native_frames
            if stream is None:
                out = mono
            else:
                out = stream.resample_chunk(mono, last=ended)
            if ended:
                n_end = total - out_pos
                if len(out) < n_end:  # fix_length pads with zeros
                    out = np.concatenate([out, np.zeros(n_end - len(out), np.float32)])
                out = out[:n_end]
            lo, hi = max(start, out_pos), min(stop, out_pos + len(out))
            if hi > lo:
                yield lo, out[lo - out_pos : hi - out_pos]
            out_pos += len(out)
            if ended:
                break
    finally:
        blocks.close()


def _native_blocks(src: Source, start: int) -> Generator[np.ndarray, None, None]:
    """Mono float32 blocks at the native rate from native frame ``start`` to the header's end, exactly
    the samples a whole-file decode has there (measured: libsndfile seeks are sample-exact; libopus
    after a seek converges to the bits of a continuous decode within 0.5 s, given 2 s here)."""
    if src.decoder == "libopus":
        try:
            yield from _libopus_blocks(src, start)
        except Exception as e:  # noqa: BLE001 - a damaged packet: the whole-file decode decides
            raise SplitMismatch(src.path, f"libopus: {e}") from None
        return
    import soundfile as sf

    with sf.SoundFile(os.fsencode(src.path)) as f:
        if start:
            f.seek(start)
        reader = BlockReader(f, _READ)
        pos = start
        while pos < src.native_frames:
            want = min(_READ, src.native_frames - pos)
            try:
                got = reader.read(want)
            except (sf.LibsndfileError, RuntimeError) as e:  # damaged data: the whole-file decode decides
                raise SplitMismatch(src.path, f"libsndfile: {e}") from None
            if len(got):
                yield _mono(got)
            pos += len(got)
            if len(got) < want:
                return


#: Native samples (48 kHz) decoded before a libopus seek target and thrown away.
_OPUS_PREROLL = 96_000


def _libopus_blocks(src: Source, start: int) -> Iterator[np.ndarray]:
    from . import libopus

    if libopus.available():  # the same samples as PyAV's below, with less work per packet
        yield from libopus.decode_blocks(src.path, start)
        return
    import av

    with av.open(src.path) as container:
        stream = container.streams.audio[0]
        ctx = av.CodecContext.create("libopus", "r")
        params = stream.codec_context
        ctx.extradata = params.extradata
        ctx.sample_rate = params.sample_rate  # type: ignore[attr-defined]
        ctx.layout = params.layout  # type: ignore[attr-defined]
        ctx.options = {"request_sample_fmt": "flt"}
        origin = None  # pts of the stream's first packet: sample index = pts - origin
        if start > _OPUS_PREROLL:
            first = next(container.demux(stream), None)
            origin = first.pts if first is not None else 0
            container.seek(start - _OPUS_PREROLL + origin, stream=stream, backward=True)
        pos = None  # sample index of the first gathered, not yet yielded sample
        blocks = FrameBlocks()  # libopus's float samples, kept in float
        for packet in container.demux(stream):
            if origin is None:
                origin = packet.pts or 0
            if pos is None:
                if packet.pts is None:
                    continue
                pos = packet.pts - origin
            for frame in ctx.decode(packet):
                mono = blocks.add(frame)
                if mono is not None:
                    pos = yield from _from(mono, pos, start)
        mono = blocks.flush()
        if mono is not None:
            assert pos is not None  # frames were gathered, so a packet set it
            yield from _from(mono, pos, start)


def _from(mono: np.ndarray, pos: int, start: int) -> Generator[np.ndarray, None, int]:
    """The samples of ``mono`` (sample index ``pos``...) from ``start`` on; returns the index after it."""
    lo = max(0, start - pos)
    if lo < len(mono):
        yield mono[lo:]
    return pos + len(mono)


def decode_range(src: Source, start: int, stop: int, sr: int) -> np.ndarray:
    """Samples ``start..stop-1`` (clipped to the end) of the whole-file decode at ``sr``."""
    pieces = [piece for _, piece in iter_samples(src, start, stop, sr)]
    return np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
