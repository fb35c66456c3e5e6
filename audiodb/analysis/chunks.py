"""Long recordings analysed in chunks: never decoded whole, the numbers of a whole-file analysis.

A whole-file analysis (:func:`audiodb.analysis.embed.embed_file` below the length
threshold) decodes the file to one waveform at the analysis rate, trims its
silence, computes per-frame values from one STFT and collapses them. Here the
same numbers come from pieces:

1. :func:`probe` reads the header: rate, channels, length, and whether the file
   can be read from an offset exactly (libsndfile: WAV, FLAC, Ogg Vorbis, MP3
   and Ogg Opus seek to the very sample a whole decode gives there, measured in
   benchmarks/bench_long.py and tests/test_chunks.py).
2. :func:`plan_ranges` cuts the file's frame grid into ranges of global frames.
3. :func:`range_frames` decodes the samples a range needs (seeking, then
   resampling with a fresh soxr stream started on the rate ratio's period a
   warm-up before the range: its samples equal a whole-file resample within
   float32 rounding, ~1e-7) and computes the per-frame values of the
   **untrimmed** signal on its global frame grid, streaming in blocks of frames
   so a worker's memory is bounded whatever the range's length.
4. :func:`combine` joins the ranges into a :class:`FileFrames` (the hook for
   per-segment features: every frame of the untrimmed signal with its global
   index and time), and :func:`finish` trims it as the notebook does (bounds
   from the frames' RMS, the few frames whose window crosses a trim bound
   recomputed from the trimmed signal, which is zero-padded there; the
   ``min_trimmed_sec`` fallback) and collapses it once with the whole-file code
   (:func:`audiodb.analysis.notebook.summarize`,
   :func:`audiodb.analysis.extended.summarize_extended`).

Everything but :func:`probe`, :func:`decode_range` and :func:`range_frames` is pure.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Iterator

import numpy as np

from ..errors import DecodeError
from .frames import frame_features, trim_bounds_from_rms
from .params import NOTEBOOK, ExtendedParams, FeatureParams

__all__ = [
    "CHUNK_SEC",
    "LONG_FILE_SEC",
    "chunk_sec",
    "long_file_sec",
    "MIN_BYTES_PER_SEC",
    "SEAM_PERIODS",
    "SplitMismatch",
    "FileFrames",
    "Source",
    "combine",
    "decode_range",
    "embed_chunked",
    "feature_bases",
    "file_frames",
    "finish",
    "iter_samples",
    "meta_of",
    "plan_ranges",
    "probe",
    "range_frames",
    "result_of",
    "seam_periods",
    "splittable",
]

#: Files longer than this (seconds of audio) are analysed in chunks, even on one worker;
#: the environment variable ``AUDIODB_LONG_FILE_SEC`` overrides it (:func:`long_file_sec`).
LONG_FILE_SEC = 300.0

#: Length of one chunk (seconds of audio); ``AUDIODB_CHUNK_SEC`` overrides it (:func:`chunk_sec`).
CHUNK_SEC = 300.0


def long_file_sec() -> float:
    """The length (seconds) above which a file is analysed in chunks, now."""
    return float(os.environ.get("AUDIODB_LONG_FILE_SEC") or LONG_FILE_SEC)


def chunk_sec() -> float:
    """The length (seconds of audio) of one chunk, now."""
    return float(os.environ.get("AUDIODB_CHUNK_SEC") or CHUNK_SEC)


#: Files smaller than this many bytes per second of the threshold are not probed (no codec packs
#: audio tighter than 16 kbit/s in what audiodb reads).
MIN_BYTES_PER_SEC = 2000

#: Output samples resampled before a range starts and thrown away: the fresh soxr
#: stream's start-up is over after at most ~2300 samples (measured, 8 kHz sources).
_WARMUP = 8192

#: Frames computed at a time inside a range (bounds a worker's working memory).
_BLOCK_FRAMES = 8192

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
    # librosa.to_mono, as the whole-file decode mixes: mean over channels in float32.
    if block.shape[1] == 1:
        return np.array(block[:, 0])  # a copy: ``block`` is a reused read buffer
    return np.mean(block, axis=1, dtype=np.float32)


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


def _native_blocks(src: Source, start: int) -> Iterator[np.ndarray]:
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
        buf = np.empty((_READ, f.channels), dtype=np.float32)
        pos = start
        while pos < src.native_frames:
            want = min(_READ, src.native_frames - pos)
            try:
                got = f.read(want, dtype="float32", always_2d=True, out=buf[:want])
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
        pos = None
        pending, n_pending = [], 0
        for packet in container.demux(stream):
            if origin is None:
                origin = packet.pts or 0
            if pos is None:
                if packet.pts is None:
                    continue
                pos = packet.pts - origin
            for frame in ctx.decode(packet):
                arr = frame.to_ndarray()
                if not frame.format.is_planar:
                    arr = arr.reshape(-1, len(frame.layout.channels)).T
                mono = _mono(np.ascontiguousarray(arr.astype(np.float32, copy=False).T))
                lo = max(0, start - pos)
                pos += len(mono)
                if lo < len(mono):
                    pending.append(mono[lo:])
                    n_pending += len(mono) - lo
                if n_pending >= _READ:
                    yield np.concatenate(pending)
                    pending, n_pending = [], 0
        if pending:
            yield np.concatenate(pending)


def decode_range(src: Source, start: int, stop: int, sr: int) -> np.ndarray:
    """Samples ``start..stop-1`` (clipped to the end) of the whole-file decode at ``sr``."""
    pieces = [piece for _, piece in iter_samples(src, start, stop, sr)]
    return np.concatenate(pieces) if pieces else np.zeros(0, np.float32)


def plan_ranges(n_frames: int, n_chunks: int, *, min_frames: int = 64) -> list[tuple[int, int]]:
    """``n_frames`` global frames cut into ``n_chunks`` consecutive ranges ``(first, last)``."""
    n_chunks = max(1, min(n_chunks, n_frames // max(1, min_frames)))
    bounds = [round(i * n_frames / n_chunks) for i in range(n_chunks + 1)]
    return [(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


def feature_bases(params: FeatureParams, extended: bool) -> dict:
    """The ``chroma_basis`` and ``contrast_bands`` :func:`~audiodb.analysis.frames.frame_features` takes
    for the second feature set (empty without ``extended``)."""
    if not extended:
        return {}
    from .filters import chroma_filters, contrast_bands

    ext = ExtendedParams(base=params)
    return {
        "chroma_basis": chroma_filters(sr=params.sr, n_fft=params.n_fft, n_chroma=ext.n_chroma, tuning=ext.tuning),
        "contrast_bands": contrast_bands(
            sr=params.sr, n_fft=params.n_fft, n_bands=ext.n_bands, fmin=ext.fmin, quantile=ext.quantile
        ),
    }


def _features(y: np.ndarray, params: FeatureParams, extras: dict) -> dict[str, np.ndarray]:
    return frame_features(
        y,
        sr=params.sr,
        n_fft=params.n_fft,
        hop_length=params.hop_length,
        n_mels=params.n_mels,
        roll_percent=params.roll_percent,
        **extras,
    )


def splittable(params: FeatureParams) -> bool:
    """Whether frames of ``params`` fall on hop boundaries (the chunked path needs it)."""
    return (params.n_fft // 2) % params.hop_length == 0


def range_frames(
    src: Source, first: int, last: int, params: FeatureParams = NOTEBOOK, *, extended: bool = False
) -> dict[str, np.ndarray]:
    """Per-frame values of global frames ``first..last-1`` of the untrimmed whole-file signal.

    The same dict as :func:`audiodb.analysis.frames.frame_features` of the whole
    decode, restricted to those frames (columns of 2-D values). Streams: at most
    a block of frames' samples is held.
    """
    sr, hop, half = params.sr, params.hop_length, params.n_fft // 2
    if not splittable(params):
        raise ValueError("chunked analysis needs n_fft / 2 to be a multiple of hop_length")
    extras = feature_bases(params, extended)
    total = src.n_samples(sr)
    n_all = 1 + total // hop
    last = min(last, n_all)
    lo = max(0, first * hop - half)
    hi = min(total, (last - 1) * hop + half)
    parts: list[dict[str, np.ndarray]] = []
    buf = np.zeros(0, np.float32)
    buf0 = lo  # global index of buf[0]
    pending: list[np.ndarray] = []  # pieces after buf, joined once a block of frames is ready
    end = lo
    g = first
    for offset, piece in iter_samples(src, lo, hi, sr):
        assert offset == end, "iter_samples yields consecutive pieces"
        pending.append(piece)
        end += len(piece)
        while g < last:
            gb = min(last, g + _BLOCK_FRAMES)
            need = min(total, (gb - 1) * hop + half)
            if end < need:
                break
            if pending:
                buf, pending = np.concatenate([buf, *pending]), []
            z0 = max(0, g * hop - half)
            fr = _features(buf[z0 - buf0 : need - buf0], params, extras)
            k = (g * hop - z0) // hop
            parts.append({key: np.array(v[..., k : k + gb - g]) for key, v in fr.items()})
            del fr
            g = gb
            keep = max(0, g * hop - half)
            buf, buf0 = buf[keep - buf0 :], keep
    if g < last:  # never reached: iter_samples yields up to ``hi`` or raises
        raise SplitMismatch(src.path, "fewer samples than the header says")
    return {key: np.concatenate([p[key] for p in parts], axis=-1) for key in parts[0]}


@dataclasses.dataclass
class FileFrames:
    """Every frame of a file's **untrimmed** signal, before any statistic: the hook for segments.

    ``frames`` is :func:`audiodb.analysis.frames.frame_features`'s dict of the
    whole decode (``mel`` (n_mels, t) power, ``centroid`` ... ``zcr`` (t,), and
    with the second set ``chroma``, ``contrast_peak``, ``contrast_valley``),
    column ``i`` being global frame ``i``, centred on sample ``i * hop_length``
    (time :attr:`times`). ``n_samples`` is the decode's length at ``sr``.
    :func:`finish` trims and collapses it; a per-segment summary may slice it first.
    """

    frames: dict[str, np.ndarray]
    n_samples: int
    sr: int
    hop_length: int
    source: Source

    @property
    def n_frames(self) -> int:
        return self.frames["rms"].shape[-1]

    @property
    def times(self) -> np.ndarray:
        """Centre of each frame, seconds."""
        return np.arange(self.n_frames) * (self.hop_length / self.sr)

    def trim_bounds(self, params: FeatureParams = NOTEBOOK) -> tuple[int, int]:
        """The sample bounds ``librosa.effects.trim`` keeps (as :func:`audiodb.analysis.frames.trim_bounds`)."""
        return trim_bounds_from_rms(
            self.frames["rms"], self.n_samples, top_db=params.top_db, hop_length=self.hop_length
        )


def combine(src: Source, ranges: list[tuple[int, int]], parts: list[dict[str, np.ndarray]], params: FeatureParams):
    """The :class:`FileFrames` of a file from :func:`range_frames` of consecutive ``ranges``."""
    n_all = src.n_frames(params.sr, params.hop_length)
    if not ranges or ranges[0][0] != 0 or ranges[-1][1] != n_all:
        raise ValueError(f"the ranges do not cover the file's {n_all} frames")
    for (_, b), (a, _) in zip(ranges, ranges[1:], strict=False):
        if a != b:
            raise ValueError("the ranges are not consecutive")
    if len(parts) == 1:
        frames = parts[0]
    else:
        frames = {}
        for key in parts[0]:
            first = parts[0][key]
            out = np.empty((*first.shape[:-1], n_all), dtype=first.dtype)
            for (a, b), p in zip(ranges, parts, strict=True):
                out[..., a:b] = p[key]
            frames[key] = out
    return FileFrames(frames, src.n_samples(params.sr), params.sr, params.hop_length, src)


def _edge_frames(
    src: Source, start: int, end: int, params: FeatureParams, extras: dict
) -> tuple[dict[int, dict[str, np.ndarray]], int]:
    """Frames of the trimmed signal ``y[start:end]`` whose windows cross its ends, by trimmed index."""
    hop, half, sr = params.hop_length, params.n_fft // 2, params.sr
    length = end - start
    n_trim = 1 + length // hop
    head = [u for u in range(n_trim) if u * hop - half < 0]
    tail = [u for u in range(n_trim) if u * hop + half > length]
    out: dict[int, dict[str, np.ndarray]] = {}
    if start > 0 and head:
        k = (head[-1] + 1) * hop + half
        fr = _features(decode_range(src, start, min(end, start + k), sr), params, extras)
        for u in head:
            out[u] = {key: v[..., u] for key, v in fr.items()}
    if end < src.n_samples(sr) and tail:
        u0 = max(0, tail[0] - half // hop - 1)  # the piece starts on a hop of the trimmed signal
        a = start + u0 * hop
        fr = _features(decode_range(src, a, end, sr), params, extras)
        for u in tail:
            out[u] = {key: v[..., u - u0] for key, v in fr.items()}
    return out, n_trim


def finish(ff: FileFrames, params: FeatureParams = NOTEBOOK, *, extended: bool = False):
    """The whole-file embedding(s) of ``ff``: trim as the notebook does, then the same statistics.

    Returns ``(vector, extended_vector or None)``, float64, equal to
    :func:`audiodb.analysis.notebook.embedding` / :func:`audiodb.analysis.extended.embeddings`
    of the whole decode within float32 rounding. Consumes ``ff.frames``.
    """
    from .notebook import summarize

    if ff.n_samples == 0:
        raise ValueError("the embedding needs a non-empty mono waveform")
    start, end = ff.trim_bounds(params)
    hop = params.hop_length
    if end - start < int(params.min_trimmed_sec * params.sr):
        start, end = 0, ff.n_samples  # the notebook's fallback: the untrimmed signal
    frames = ff.frames
    if (start, end) != (0, ff.n_samples):
        edges, n_trim = _edge_frames(ff.source, start, end, params, feature_bases(params, extended))
        g0 = start // hop
        frames = {key: np.array(v[..., g0 : g0 + n_trim]) for key, v in ff.frames.items()}
        for u, values in edges.items():
            for key, v in values.items():
                frames[key][..., u] = v
    vec = summarize(frames, n_mfcc=params.n_mfcc)  # frames['mel'] is now in dB
    if not extended:
        return vec, None
    from .extended import summarize_extended

    return vec, summarize_extended(frames, frames["mel"], params=ExtendedParams(base=params))


def file_frames(
    src: Source, params: FeatureParams = NOTEBOOK, *, extended: bool = False, chunks: int = 1
) -> FileFrames:
    """The :class:`FileFrames` of ``src`` computed here, range after range (bounded memory)."""
    n_all = src.n_frames(params.sr, params.hop_length)
    per = max(1, int(chunk_sec() * params.sr / params.hop_length))
    ranges = plan_ranges(n_all, max(chunks, -(-n_all // per)))
    parts = [range_frames(src, a, b, params, extended=extended) for a, b in ranges]
    return combine(src, ranges, parts, params)


def embed_chunked(src: Source, params: FeatureParams = NOTEBOOK, *, extended: bool = False):
    """``(vector, extended_vector or None)`` of ``src`` in one process, chunk after chunk."""
    return finish(file_frames(src, params, extended=extended), params, extended=extended)


def meta_of(src: Source, params: FeatureParams) -> dict:
    """The metadata :func:`audiodb.analysis.embed.embed_file` returns, from the header."""
    return {
        "duration_sec": src.duration_sec(params.sr),
        "sample_rate": params.sr,
        "native_sample_rate": src.native_sr,
        "channels": src.channels,
        "codec": src.codec,
        "container": src.container,
        "decoder": src.decoder,
    }


def result_of(path: str, src: Source, params: FeatureParams, vec: np.ndarray, ext: np.ndarray | None):
    """``(vector, meta)`` as :func:`audiodb.analysis.embed.embed_file` returns them."""
    if not np.all(np.isfinite(vec)) or (ext is not None and not np.all(np.isfinite(ext))):
        raise DecodeError(
            path,
            "the features came out NaN or infinite (non-finite samples, or samples far outside [-1, 1]): "
            "the file is damaged or holds unscaled float data",
        )
    meta = meta_of(src, params)
    if ext is not None:
        meta["extended_vector"] = ext.astype(np.float32)
    return vec.astype(np.float32), meta
