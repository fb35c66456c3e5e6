"""Ogg pages, read one after another from a file: what the Opus checks (:mod:`.opus`), the libopus
decoder (:mod:`.libopus`) and the audio hash (:mod:`.audiohash`) walk.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from typing import BinaryIO, NamedTuple

__all__ = ["Page", "pages"]


class Page(NamedTuple):
    """One page: where it starts, its header's fields, its lacing values and its body."""

    offset: int
    version: int
    flags: int  # 1: continues a packet, 2: first page of a stream, 4: last page of a stream
    granule: int
    serial: int
    seq: int
    segments: int  # lacing values the header announces (more than ``len(lacing)``: the file ends first)
    lacing: bytes
    body: bytes  # b"" when read without bodies

    def whole(self) -> bool:
        """Whether the file holds all of the page (its lacing values and its body)."""
        return len(self.lacing) == self.segments and len(self.body) == sum(self.lacing)


def pages(f: BinaryIO, *, bodies: bool = True) -> Iterator[Page]:
    """The pages from ``f``'s position until the end of the file or bytes that are not a page header
    (``bodies`` False: the bodies are skipped, not read)."""
    while True:
        offset = f.tell()
        head = f.read(27)
        if len(head) < 27 or head[:4] != b"OggS":
            return
        flags, granule, serial, seq = struct.unpack_from("<BqII", head, 5)
        lacing = f.read(head[26])
        if bodies:
            body = f.read(sum(lacing))
        else:
            f.seek(sum(lacing), os.SEEK_CUR)
            body = b""
        yield Page(offset, head[4], flags, granule, serial, seq, head[26], lacing, body)
