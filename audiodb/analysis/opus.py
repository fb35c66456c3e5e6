"""Which Ogg Opus files libopus (through PyAV) decodes as libsndfile does: the notebook's decoder.

Measured in benchmarks/bench_decode.py; :func:`audiodb.analysis.decode.load` asks
:func:`libopus_matches_libsndfile` before choosing the faster path.
"""

from __future__ import annotations

import os

from .ogg import pages

__all__ = ["libopus_matches_libsndfile", "ogg_opus_is_clean", "opus_packet_samples"]


def opus_packet_samples(toc: int, second: int | None) -> int:
    """Samples at 48 kHz in an Opus packet, from its TOC byte (RFC 6716, 3.1)."""
    config = toc >> 3
    if config < 12:
        frame = (480, 960, 1920, 2880)[config & 3]
    elif config < 16:
        frame = (480, 960)[config & 1]
    else:
        frame = (120, 240, 480, 960)[config & 3]
    code = toc & 3
    count = 1 if code == 0 else 2 if code < 3 else (second or 0) & 0x3F
    return frame * count


def ogg_opus_is_clean(path: str) -> bool:
    """Whether an Ogg Opus file's pages are what libsndfile reads to the end, and FFmpeg the same way.

    True only for one logical stream starting at granule 0 whose every page's
    granule position is exactly the previous one plus the samples of the
    packets completed on it (the last page may cut padding from its last
    packet), and whose pages are all whole. libsndfile refuses a mid-stream
    page whose granule is below that sum ("file is malformed", librosa then
    reads the file through FFmpeg), and FFmpeg files transcoded from sources
    with timestamp gaps have such pages: anything unusual is not clean.
    Reads page headers and the first bytes of packets only.
    """
    try:
        f = open(path, "rb")
    except OSError:
        return False
    with f:
        serial, granule, page_no = None, 0, 0
        carry = None  # first two bytes of a packet continued from the previous page
        for page in pages(f):
            if page.version != 0 or not page.whole() or page.seq != page_no:
                return False  # truncated or reordered: the libsndfile path handles it
            lacing, body, gp = page.lacing, page.body, page.granule
            if serial is None:
                serial = page.serial
            elif page.serial != serial or page.flags & 2:
                return False  # chained or multiplexed streams
            eos = bool(page.flags & 4)
            page_no += 1
            if page_no <= 2:  # OpusHead, OpusTags (assumed one page each, as encoders write them)
                if page_no == 1 and (body[:8] != b"OpusHead" or len(body) < 19 or body[18] != 0):
                    return False  # not Opus, or a multistream channel mapping
                if page_no == 2 and (body[:8] != b"OpusTags" or lacing[-1] == 255 or gp != 0):
                    return False
                continue
            if bool(page.flags & 1) != (carry is not None):
                return False  # continuation flag and packet boundaries disagree
            samples, pos = 0, 0
            for lace in lacing:
                if carry is None:  # a packet starts here: keep its TOC (and frame-count) byte
                    if lace == 0:
                        return False  # an empty packet
                    carry = (body[pos], body[pos + 1] if lace > 1 else None)
                pos += lace
                if lace < 255:  # the packet completes on this page
                    samples += opus_packet_samples(*carry)
                    carry = None
            if gp == -1:
                return False  # a page completing no packet
            if eos:
                if not granule <= gp <= granule + samples:
                    return False
            elif gp != granule + samples:
                return False
            granule = gp
            if eos:
                return f.read(1) == b""
        return False  # the end of the file, or bytes that are no page, before the last page


def libopus_matches_libsndfile(path: str) -> bool:
    """Whether to decode ``path`` with libopus through PyAV instead of libsndfile.

    Measured (benchmarks/bench_decode.py): for Ogg Opus that libsndfile reads
    at 48 kHz, PyAV's libopus gives its samples within a few float32 ulps
    (libopus builds differ) at about twice its speed. Not for Opus that
    libsndfile decodes at 8-24 kHz (it asks libopus for the header's input rate;
    FFmpeg always decodes at 48 kHz), nor for mono/stereo multistream layouts,
    nor for files libsndfile refuses at open or would refuse mid-file (librosa
    then reads FFmpeg's 16-bit output, which the fallback gives).
    """
    if not path.lower().endswith((".opus", ".ogg", ".oga")):
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError:
        return False
    if head[:4] != b"OggS" or head[28:36] != b"OpusHead" or len(head) < 47 or head[37] not in (1, 2):
        return False
    try:
        import av
        import soundfile as sf

        av.codec.Codec("libopus", "r")
        with sf.SoundFile(os.fsencode(path)) as f:  # the rate libsndfile decodes at, and its own header checks
            if f.samplerate != 48000:
                return False
    except Exception:  # noqa: BLE001 - PyAV without libopus, or libsndfile refusing it: the usual path
        return False
    return ogg_opus_is_clean(path)
