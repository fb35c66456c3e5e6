"""Ogg Opus decoded by libopus itself, called through ctypes.

The samples of PyAV's 'libopus' decoder: the same library (the one PyAV
loads), the same calls FFmpeg's decoder makes (a multistream decoder at
48 kHz, the header's output gain set with ``OPUS_SET_GAIN``, the pre-skip
dropped, the end cut at the last page's granule position), without the
Python objects PyAV makes for every 20-ms packet: 12-15 % of decoding a
long Opus file. Only for the files :func:`audiodb.analysis.opus.ogg_opus_is_clean`
accepts (one stream, mono or stereo, whole pages, granules in order).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import glob
import os
import struct
from collections.abc import Iterator

import numpy as np

from .blocks import BLOCK, to_mono
from .ogg import pages

__all__ = ["RATE", "available", "decode_blocks", "header"]

_MAX_FRAME = 5760  # samples per channel of the longest Opus packet (120 ms at 48 kHz)
_SET_GAIN = 4034  # OPUS_SET_GAIN_REQUEST
RATE = 48000  # libopus decodes at 48 kHz here, as FFmpeg asks it to


@functools.cache
def _library():
    """PyAV's libopus (the library its 'libopus' decoder calls), else the system's; None without one."""
    try:
        import av
    except ImportError:
        return None
    here = os.path.dirname(av.__file__)
    found = sorted(glob.glob(os.path.join(here, os.pardir, "av.libs", "libopus*.so*")))
    found += sorted(glob.glob(os.path.join(here, ".dylibs", "libopus*.dylib")))
    system = ctypes.util.find_library("opus")
    for name in [*found, *([system] if system else [])]:
        try:
            lib = ctypes.CDLL(name)
            create = lib.opus_multistream_decoder_create
        except (OSError, AttributeError):
            continue
        create.restype = ctypes.c_void_p
        create.argtypes = [ctypes.c_int32, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p]
        lib.opus_multistream_decode_float.restype = ctypes.c_int
        lib.opus_multistream_decode_float.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_int32,
            ctypes.c_void_p,
            ctypes.c_int,
            ctypes.c_int,
        ]
        lib.opus_multistream_decoder_ctl.restype = ctypes.c_int
        lib.opus_multistream_decoder_ctl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int32]
        lib.opus_multistream_decoder_destroy.argtypes = [ctypes.c_void_p]
        return lib
    return None


def available() -> bool:
    """Whether a libopus could be loaded."""
    return _library() is not None


def _packets(f) -> Iterator[bytes]:
    """The packets completed on the pages from the current position (a page there continues none)."""
    carry: bytes | None = None  # a packet begun on an earlier page
    for page in pages(f):
        body = page.body
        pos, start = 0, 0
        for lace in page.lacing:
            pos += lace
            if lace < 255:
                packet = body[start:pos]
                yield packet if carry is None else carry + packet
                carry, start = None, pos
        if start < pos:
            carry = body[start:pos] if carry is None else carry + body[start:pos]


def _seek_point(f, audio: int, target: int) -> tuple[int, int]:
    """The offset of the last page from ``audio`` on that continues no packet and whose first packet
    begins at or before decoder sample ``target``, and that sample; ``(audio, 0)`` if none does."""
    best = (audio, 0)
    previous = 0  # granule of the previous page: where this page's first new packet begins
    f.seek(audio)
    for page in pages(f, bodies=False):
        if not page.flags & 1 and previous > 0:
            if previous > target:
                break
            best = (page.offset, previous)
        if page.granule != -1:
            previous = page.granule
    return best


def decode_blocks(path: str, start: int = 0) -> Iterator[np.ndarray]:
    """Mono float32 blocks (at least ``BLOCK`` samples but the last) of the decode at 48 kHz, from
    sample ``start`` (after the pre-skip) to the last page's granule position.

    From a ``start`` past the beginning the decoder starts 2 s before it, at a page boundary: libopus
    converges to the continuous decode's bits well within that (as PyAV's seek path relies on).
    Raises OSError, ValueError (no libopus, or not the Ogg Opus this module reads) or RuntimeError
    (libopus refused a packet).
    """
    lib = _library()
    if lib is None:
        raise ValueError("no libopus library")
    with open(path, "rb") as f:
        channels, pre_skip, gain, audio = _head(f)
        end = _last_granule(f) - pre_skip  # samples of the whole decode
        offset, begin = audio, 0  # where decoding starts: the file offset, the decoder sample
        if start > 2 * RATE:
            offset, begin = _seek_point(f, audio, start + pre_skip - 2 * RATE)
        f.seek(offset)
        error = ctypes.c_int()
        mapping = bytes(range(channels))
        dec = lib.opus_multistream_decoder_create(RATE, channels, 1, channels - 1, mapping, ctypes.byref(error))
        if not dec or error.value:
            raise RuntimeError(f"libopus could not make a decoder (error {error.value})")
        try:
            if gain:
                lib.opus_multistream_decoder_ctl(dec, _SET_GAIN, gain)
            yield from _decoded(lib, dec, _packets(f), channels, begin - pre_skip, start, end)
        finally:
            lib.opus_multistream_decoder_destroy(dec)


def header(path: str) -> tuple[int, int]:
    """``(channels, samples)`` of an Ogg Opus file's whole decode at 48 kHz (its last granule
    position less the pre-skip). Raises OSError or ValueError."""
    with open(path, "rb") as f:
        channels, pre_skip, _gain, _audio = _head(f)
        return channels, _last_granule(f) - pre_skip


def _head(f) -> tuple[int, int, int, int]:
    """Channels, pre-skip, output gain (Q7.8 dB) and the offset of the first audio page."""
    f.seek(0)
    walk = pages(f)
    first = next(walk, None)
    if first is None or first.body[:8] != b"OpusHead" or len(first.body) < 19:
        raise ValueError("not Ogg Opus")
    head = first.body
    channels, pre_skip, gain = head[9], struct.unpack_from("<H", head, 10)[0], struct.unpack_from("<h", head, 16)[0]
    if head[18] != 0 or channels not in (1, 2):
        raise ValueError("an Opus channel mapping this module does not read")
    if next(walk, None) is None:  # OpusTags (one page in a clean file)
        raise ValueError("no OpusTags page")
    return channels, pre_skip, gain, f.tell()


def _decoded(lib, dec, packets: Iterator[bytes], channels: int, pos: int, start: int, end: int) -> Iterator[np.ndarray]:
    """Decode ``packets`` (the first decoded sample being sample ``pos``), yield ``start..end`` in mono blocks."""
    buf = np.empty((BLOCK + _MAX_FRAME, channels), dtype=np.float32)
    row = buf.strides[0]
    base = buf.ctypes.data
    n = 0  # samples in buf
    decode = lib.opus_multistream_decode_float
    for packet in packets:
        got = decode(dec, packet, len(packet), base + n * row, _MAX_FRAME, 0)
        if got < 0:
            raise RuntimeError(f"libopus refused a packet (error {got})")
        n += got
        if n >= BLOCK or pos + n >= end:
            yield from _cut(buf[:n], pos, start, end, channels)
            pos += n
            n = 0
            if pos >= end:
                return
    if n:
        yield from _cut(buf[:n], pos, start, end, channels)


def _cut(block: np.ndarray, pos: int, start: int, end: int, channels: int) -> Iterator[np.ndarray]:
    lo, hi = max(0, start - pos), min(len(block), end - pos)
    if hi > lo:
        # one channel: to_mono gives a view of the reused buffer, so a copy
        yield np.array(to_mono(block[lo:hi])) if channels == 1 else to_mono(block[lo:hi])


def _last_granule(f) -> int:
    """The granule position of the file's last page: the page in its last 64 KiB that ends exactly
    at the end of the file (a clean file's last page does; "OggS" inside audio data does not)."""
    f.seek(0, os.SEEK_END)
    size = f.tell()
    f.seek(max(0, size - 65536))
    tail = f.read()
    at = tail.rfind(b"OggS")
    while at >= 0:
        if at + 27 <= len(tail) and tail[at + 4] == 0:
            nseg = tail[at + 26]
            lacing = tail[at + 27 : at + 27 + nseg]
            if len(lacing) == nseg and at + 27 + nseg + sum(lacing) == len(tail):
                return struct.unpack_from("<q", tail, at + 6)[0]
        at = tail.rfind(b"OggS", 0, at)
    raise ValueError("no last Ogg page")
