"""A file's two hashes: of its content (:func:`content_hash`, the whole file: a file moved is found
by it) and of its audio payload only (:func:`audio_hash`), so that a tag edit is not an audio change.

Editing a tag rewrites the file (its size, its mtime and its whole-file hash
change), but not the coded audio. :func:`audio_hash` hashes only what the
decoder turns into samples, and the stream parameters that say how:

- MP3, ADTS AAC, WavPack, Monkey's Audio, TTA, Musepack, MP2: the bytes between the
  ID3v2 tag(s) at the start and the ID3v1, APEv2, Lyrics3 and ID3v2-footer tags at the end;
- FLAC: STREAMINFO's block sizes, rate, channels, bits and length, then the frames
  after the last metadata block (tags, pictures, padding left out);
- MP4/M4A: the payload of every ``mdat`` box (tags live in ``moov/udta``);
- Ogg (Vorbis, Opus, FLAC, Speex): the packets of every logical stream except the comment
  packet, and each stream's last granule position, never the page headers (their
  sequence numbers and CRCs change when the comment packet grows or shrinks);
- WAV (RIFF/RF64/BW64) and AIFF: the sample format (format tag, channels, rate, bits)
  and the ``data``/``SSND`` payload; INFO, ``id3 ``, ``bext``, ``guan`` chunks left out;
- anything else FFmpeg reads (ASF/WMA, Matroska/WebM): the codec, rate, channels and
  the bytes of every packet of the first audio stream, demuxed by PyAV.

Where none of these apply (a damaged structure) the whole file's hash is used,
so a change is never missed: the worst case is a re-analysis.
"""

from __future__ import annotations

import hashlib
import os
import struct

from .ogg import pages

__all__ = ["audio_hash", "content_hash"]

_CHUNK = 1 << 20


def _new():
    return hashlib.blake2b(digest_size=16)


def audio_hash(path: str | os.PathLike) -> str:
    """blake2b-128 (hex) of ``path``'s audio payload; raises OSError if it cannot be read."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(12)
        f.seek(0)
        for test, fn in _FORMATS:
            if test(head, path):
                try:
                    digest = fn(f, size)
                except (ValueError, struct.error, IndexError):
                    digest = None
                if digest is not None:
                    return digest
                break
    digest = _packets(path)
    if digest is not None:
        return digest
    return content_hash(path)


def content_hash(path: str | os.PathLike) -> str:
    """blake2b-128 (hex) of the whole file."""
    h = _new()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _hash_range(f, h, start: int, end: int) -> None:
    f.seek(start)
    left = end - start
    while left > 0:
        chunk = f.read(min(_CHUNK, left))
        if not chunk:
            break
        h.update(chunk)
        left -= len(chunk)


# ---- raw streams with ID3/APE tags around them -------------------------------------------


def _id3v2_size(head: bytes) -> int:
    """Size of an ID3v2 tag starting at ``head`` (header, body and footer), 0 if none."""
    if len(head) < 10 or head[:3] != b"ID3" or head[3] == 0xFF or any(b & 0x80 for b in head[6:10]):
        return 0
    body = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
    return 10 + body + (10 if head[5] & 0x10 else 0)


def _payload_span(f, size: int, start: int = 0) -> tuple[int, int]:
    """(start, end) of what lies between leading ID3v2 tags and trailing ID3v1/APE/Lyrics3/ID3 tags."""
    while True:
        f.seek(start)
        n = _id3v2_size(f.read(10))
        if not n:
            break
        start += n
    end = size
    while end > start:
        if end - start >= 32:
            f.seek(end - 32)
            footer = f.read(32)
            if footer[:8] == b"APETAGEX":
                tag_size, _items, flags = struct.unpack("<III", footer[12:24])
                end -= tag_size + (32 if flags & 0x80000000 else 0)
                continue
        if end - start >= 131:
            f.seek(end - 131)
            if f.read(6)[3:] == b"TAG" and not _ape_header_at(f, end - 131):
                end -= 128
                continue
        if end - start >= 15:
            f.seek(end - 15)
            tail = f.read(15)
            if tail[6:] == b"LYRICS200" and tail[:6].isdigit():
                end -= int(tail[:6]) + 15
                continue
        if end - start >= 10:
            f.seek(end - 10)
            tail = f.read(10)
            if tail[:3] == b"3DI":
                n = _id3v2_size(b"ID3" + tail[3:])
                if n:
                    end -= n
                    continue
        break
    if end <= start:
        raise ValueError("no audio between the tags")
    return start, end


def _ape_header_at(f, pos: int) -> bool:
    """Is the "TAG" at ``pos + 3`` the inside of an APEv2 "APETAGEX", not an ID3v1 tag?"""
    f.seek(pos)
    return f.read(8) == b"APETAGEX"


def _raw(f, size: int) -> str:
    start, end = _payload_span(f, size)
    h = _new()
    h.update(b"raw")
    f.seek(start)
    first = bytearray(f.read(min(end - start, 4096)))
    _blank_lame_writer(first)
    h.update(first)
    _hash_range(f, h, start + len(first), end)
    return h.hexdigest()


def _blank_lame_writer(frame: bytearray) -> None:
    """In an MP3's Xing/Info frame, blank what names the program that wrote the file: the LAME
    tag's encoder string and its own CRC (a remux, ``ffmpeg -c copy``, writes its name there).
    The frame count, the encoder delay and padding (what a decoder uses) stay in the hash."""
    if len(frame) < 4 or frame[0] != 0xFF or frame[1] & 0xE0 != 0xE0:
        return
    mpeg1 = frame[1] & 0x18 == 0x18
    mono = frame[3] & 0xC0 == 0xC0
    at = 4 + (17 if mono else 32) if mpeg1 else 4 + (9 if mono else 17)
    if frame[at : at + 4] not in (b"Xing", b"Info"):
        return
    flags = int.from_bytes(frame[at + 4 : at + 8], "big")
    lame = at + 8 + 4 * bool(flags & 1) + 4 * bool(flags & 2) + 100 * bool(flags & 4) + 4 * bool(flags & 8)
    if lame + 36 <= len(frame):
        frame[lame : lame + 9] = bytes(9)
        frame[lame + 34 : lame + 36] = bytes(2)


def _is_raw(head: bytes, path: str) -> bool:
    ext = os.path.splitext(path)[1].lower()
    return ext in (".mp3", ".mp2", ".aac", ".wv", ".ape", ".tta", ".mpc") and head[:4] not in (
        b"RIFF",
        b"fLaC",
        b"OggS",
        b"FORM",
    )


# ---- FLAC -------------------------------------------------------------------------------------


def _flac(f, size: int) -> str | None:
    start, end = _payload_span(f, size)
    f.seek(start)
    if f.read(4) != b"fLaC":
        return None
    pos = start + 4
    h = _new()
    h.update(b"flac")
    while True:
        f.seek(pos)
        header = f.read(4)
        if len(header) < 4:
            return None
        last, kind = header[0] & 0x80, header[0] & 0x7F
        length = int.from_bytes(header[1:4], "big")
        if kind == 0:  # STREAMINFO: block sizes, then rate/channels/bits/total samples (not frame sizes, MD5)
            info = f.read(length)
            if len(info) < 18:
                return None
            h.update(info[0:4] + info[10:18])
        pos += 4 + length
        if last:
            break
        if pos >= end:
            return None
    _hash_range(f, h, pos, end)
    return h.hexdigest()


# ---- MP4 --------------------------------------------------------------------------------------


def _mp4(f, size: int) -> str | None:
    h = _new()
    h.update(b"mp4")
    pos, found = 0, False
    while pos + 8 <= size:
        f.seek(pos)
        header = f.read(8)
        box_size, kind = struct.unpack(">I4s", header)
        head_len = 8
        if box_size == 1:
            box_size = struct.unpack(">Q", f.read(8))[0]
            head_len = 16
        elif box_size == 0:
            box_size = size - pos
        if box_size < head_len:
            return None
        if kind == b"mdat":
            _hash_range(f, h, pos + head_len, min(pos + box_size, size))
            found = True
        pos += box_size
    return h.hexdigest() if found else None


# ---- Ogg --------------------------------------------------------------------------------------


def _skip_packet(packet: bytes, index: int, kind: bytes) -> bool:
    """Is this packet a stream's comments (or padding, pictures), not audio nor codec setup?"""
    if kind == b"\x7fFLAC":  # Ogg FLAC: metadata blocks after the first packet, then frames
        return index > 0 and not _flac_frame(packet) and bool(packet) and packet[0] & 0x7F in (1, 4, 6)
    if kind == b"Speex   ":
        return index == 1
    return packet.startswith((b"\x03vorbis", b"OpusTags", b"\x81theora"))


def _header_packets(first: bytes) -> int | None:
    """How many header packets (identification, comments, setup) a stream's first packet announces."""
    if first.startswith(b"\x01vorbis") or first.startswith(b"\x80theora"):
        return 3
    if first.startswith(b"OpusHead"):
        return 2
    if first.startswith(b"Speex   ") and len(first) >= 72:
        return 2 + struct.unpack("<I", first[68:72])[0]  # extra_headers
    if first.startswith(b"\x7fFLAC") and len(first) >= 9:
        n = struct.unpack(">H", first[7:9])[0]
        return 1 + n if n else None  # 0: unknown, every packet looked at
    return None


class _OggStream:
    """One logical stream's hash: its header packets one by one (the comments left out), then its
    audio pages' lacing values and bodies, each concatenated: the same however the packets are
    cut into pages (a remux may cut them elsewhere), and in one step per page, not per packet."""

    def __init__(self):
        self.packets, self.laces, self.bodies = _new(), _new(), _new()
        self.index, self.kind, self.headers_left = 0, b"", None
        self.pending = bytearray()
        self.granule = -1
        self.fast = False

    def page(self, lacing: bytes, body: bytes) -> None:
        if self.fast:
            self.laces.update(lacing)
            self.bodies.update(body)
            return
        offset = 0
        for i, lace in enumerate(lacing):
            self.pending += body[offset : offset + lace]
            offset += lace
            if lace == 255:
                continue
            packet = self.pending  # a packet ends here
            if self.index == 0:
                self.kind = bytes(packet[:8] if packet.startswith(b"Speex   ") else packet[:5])
                self.headers_left = _header_packets(bytes(packet[:80]))
            if not _skip_packet(packet, self.index, self.kind):
                self.packets.update(struct.pack("<I", len(packet)))
                self.packets.update(packet)
            self.index += 1
            self.pending = bytearray()
            if self.headers_left is not None:
                self.headers_left -= 1
                if self.headers_left <= 0:
                    # The headers are done: the audio from here on (this page's rest too: some
                    # encoders start it on the setup header's page) is hashed page by page.
                    self.fast = True
                    self.laces.update(lacing[i + 1 :])
                    self.bodies.update(body[offset:])
                    return

    def digest(self) -> bytes:
        return self.packets.digest() + self.laces.digest() + self.bodies.digest() + struct.pack("<q", self.granule)


def _ogg(f, size: int) -> str | None:
    streams: dict[int, _OggStream] = {}
    order: list[int] = []
    f.seek(0)
    for page in pages(f):  # up to the end, or trailing junk: the streams end there, as a decoder sees it
        st = streams.get(page.serial)
        if st is None:
            st = streams[page.serial] = _OggStream()
            order.append(page.serial)
        if page.granule != -1:
            st.granule = page.granule
        st.page(page.lacing, page.body)
    if not order:
        return None
    h = _new()
    h.update(b"ogg")
    for serial in order:  # in the order they start (serial numbers may differ after a remux)
        h.update(streams[serial].digest())
    return h.hexdigest()


def _flac_frame(packet: bytes) -> bool:
    return len(packet) >= 2 and packet[0] == 0xFF and packet[1] & 0xFE == 0xF8


# ---- WAV and AIFF --------------------------------------------------------------------------------


def _riff(f, size: int) -> str | None:
    from .tags import iter_chunks

    f.seek(0)
    form = f.read(4)
    fmt_key = data = None
    ds64_data = None
    for cid, offset, length in iter_chunks(f, 12, size):
        if cid == b"ds64" and length >= 16:
            f.seek(offset)
            ds64_data = struct.unpack("<Q", f.read(16)[8:16])[0]
        elif cid == b"fmt " and length >= 16:
            f.seek(offset)
            raw = f.read(min(length, 40))
            tag, channels, rate = struct.unpack("<HHI", raw[:8])
            bits = struct.unpack("<H", raw[14:16])[0]
            if tag == 0xFFFE and len(raw) >= 26:  # WAVE_FORMAT_EXTENSIBLE: the sub-format's tag
                tag = struct.unpack("<H", raw[24:26])[0]
            fmt_key = struct.pack("<HHIH", tag, channels, rate, bits)
        elif cid == b"data":
            if form in (b"RF64", b"BW64") and ds64_data is not None:
                length = min(ds64_data, size - offset)
            data = (offset, offset + length)
            if form != b"RIFF":
                break  # RF64's chunk size field is a placeholder; nothing is read past the data
    if fmt_key is None or data is None:
        return None
    h = _new()
    h.update(b"wav" + fmt_key)
    _hash_range(f, h, *data)
    return h.hexdigest()


def _aiff(f, size: int) -> str | None:
    from .tags import iter_chunks

    comm = data = None
    for cid, offset, length in iter_chunks(f, 12, size, big_endian=True):
        if cid == b"COMM":
            f.seek(offset)
            comm = f.read(min(length, 22))  # channels, frames, bits, rate, compression type
        elif cid == b"SSND" and length >= 8:
            f.seek(offset)
            skip = struct.unpack(">I", f.read(4))[0]
            data = (offset + 8 + skip, offset + length)
    if comm is None or data is None:
        return None
    h = _new()
    h.update(b"aiff" + comm)
    _hash_range(f, h, *data)
    return h.hexdigest()


# ---- anything FFmpeg demuxes ------------------------------------------------------------------


def _packets(path: str) -> str | None:
    try:
        import av

        with av.open(path) as container:
            streams = container.streams.audio
            if not streams:
                return None
            stream = streams[0]
            ctx = stream.codec_context
            h = _new()
            h.update(f"packets|{ctx.name}|{ctx.sample_rate}|{ctx.channels}|".encode())
            for packet in container.demux(stream):
                if packet.size:
                    h.update(struct.pack("<I", packet.size))
                    h.update(bytes(packet))
            return h.hexdigest()
    except Exception:  # noqa: BLE001 - the whole file's hash is the answer then
        return None


_FORMATS = (
    (lambda head, path: head[:4] in (b"RIFF", b"RF64", b"BW64") and head[8:12] == b"WAVE", _riff),
    (lambda head, path: head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"), _aiff),
    (lambda head, path: head[:4] == b"OggS", _ogg),
    (lambda head, path: head[4:8] == b"ftyp", _mp4),
    (lambda head, path: head[:4] == b"fLaC" or (head[:3] == b"ID3" and path.lower().endswith(".flac")), _flac),
    (_is_raw, _raw),
)
