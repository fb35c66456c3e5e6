"""File paths in the library: any name the file system allows, stored as text.

On Linux a path is bytes. Python hands names that are not valid UTF-8 (an old
Latin-1 disk, a Samba share, an unpacked zip: ``Bj\\xf6rk/caf\\xe9.mp3``) to
programs as strings with lone surrogates (``os.fsdecode``'s
``surrogateescape``), which DuckDB, Arrow and a UTF-8 terminal all refuse.

So the ``path``, ``file_name`` and ``folder`` columns hold a reversible escape
of the bytes: every byte that is not part of valid UTF-8 is written ``\\xNN``
and a literal backslash ``\\\\``; nothing else changes. Every ordinary path
without a backslash is stored exactly as before, the stored text is what
audiodb prints (readable, pasteable back as an argument) and
:func:`from_stored` gives back the exact bytes of the real file. Migration 004
doubled the backslashes already stored, so old rows mean the same.

:func:`to_stored` is used wherever a path goes into the library or is shown;
:func:`from_stored` wherever a stored path is opened.
"""

from __future__ import annotations

import os
import re
import unicodedata
import urllib.parse

__all__ = ["file_uri", "from_stored", "m3u_entry", "to_stored"]

_ESCAPE = re.compile(r"\\(\\|x[0-9a-fA-F]{2})")


def to_stored(path: str | bytes | os.PathLike) -> str:
    """The library's text for a real path (a ``str`` as :mod:`os` gives it, or bytes).

    Undecodable bytes become ``\\xNN``, a backslash ``\\\\``; the result is valid
    UTF-8 and equals ``path`` for every ordinary path without a backslash.
    """
    path = os.fspath(path)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if "\\" not in path:
        try:
            path.encode("utf-8")
            return path
        except UnicodeEncodeError:
            pass
    out = []
    for ch in path:
        if ch == "\\":
            out.append("\\\\")
        elif "\udc80" <= ch <= "\udcff":  # surrogateescape of one undecodable byte
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        else:
            out.append(ch)
    return "".join(out)


def _stored_bytes(text: str) -> bytes:
    if "\\" not in text:
        return os.fsencode(text)
    out = bytearray()
    pos = 0
    for m in _ESCAPE.finditer(text):
        out += os.fsencode(text[pos : m.start()])
        token = m.group(1)
        out += b"\\" if token == "\\" else bytes([int(token[1:], 16)])
        pos = m.end()
    out += os.fsencode(text[pos:])
    return bytes(out)


def from_stored(text: str) -> str:
    """The real path (for :func:`open`, :func:`os.stat`) of a stored path.

    Inverse of :func:`to_stored`. A backslash not followed by ``\\`` or
    ``xNN`` is kept as it is (text typed by hand).
    """
    if "\\" not in text:
        return text
    return os.fsdecode(_stored_bytes(text))


def file_uri(text: str) -> str:
    """A ``file://`` URI of a stored path, every byte outside the URI-safe set percent-escaped."""
    return "file://" + urllib.parse.quote(_stored_bytes(text), safe="/-._~!$&'()*+,;=:@")


def m3u_entry(text: str) -> str:
    """The M3U line for a stored path: the real path if it is plain one-line UTF-8,
    else (a newline, a carriage return or another control character, undecodable
    bytes, a backslash) its ``file://`` URI, which players open, on one line."""
    if "\\" in text or any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in text):
        return file_uri(text)
    return text
