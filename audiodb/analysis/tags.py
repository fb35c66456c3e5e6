"""A file's words: its tags, and when and on what a field recording was made.

:func:`read_tags` is a function of a path (no database): it reads the tag blocks
with mutagen (ID3 in MP3, WAV and AIFF; Vorbis comments in Ogg, Opus and FLAC;
MP4/M4A atoms; ASF; APEv2 in WavPack, Monkey's Audio, Musepack), a WAV's
``LIST/INFO`` chunk, and FFmpeg's container metadata (through PyAV) for what
mutagen does not read (Matroska, WebM). The common fields get their own
columns; everything else goes in ``tags``.

Field recordings: ``recorded_at`` and ``device`` come from a GUANO ``guan``
chunk (bat and acoustic recorders), the AudioMoth comment ("Recorded at
12:00:00 01/05/2024 (UTC) by AudioMoth 24E144..."), or a BWF ``bext`` chunk's
origination date and time (GUANO first where a file has more than one). Times with a known offset (GUANO
with one, AudioMoth's ``(UTC+1)``) are given in UTC; BWF times and GUANO times
without an offset are the recorder's local clock, as written.

A file without tags gives ``None`` everywhere; a tag block that cannot be read
gives ``tag_error`` (why), and whatever else could be read: it never raises,
and the audio is indexed all the same.
"""

from __future__ import annotations

import datetime
import os
import re
import struct

__all__ = ["TAG_FIELDS", "empty_tags", "parse_audiomoth_comment", "parse_guano", "read_tags"]

#: The named fields, as columns of ``track_files`` (migration 005).
TAG_FIELDS = ("title", "artist", "album", "album_artist", "genre", "year", "track_number", "disc_number")
_OUT_FIELDS = (*TAG_FIELDS, "tags", "recorded_at", "device", "tag_error")

#: Longest value kept in ``tags`` (lyrics, embedded cue sheets): cut with a mark beyond this.
_MAX_VALUE = 2000

# Each format's names for the named fields (lower case), first match wins.
_ID3 = {
    "title": ("tit2",),
    "artist": ("tpe1",),
    "album": ("talb",),
    "album_artist": ("tpe2",),
    "genre": ("tcon",),
    "year": ("tdrc", "tyer", "tdor", "tory"),
    "track_number": ("trck",),
    "disc_number": ("tpos",),
}
_VORBIS = {
    "title": ("title",),
    "artist": ("artist",),
    "album": ("album",),
    "album_artist": ("albumartist", "album artist", "album_artist", "ensemble"),
    "genre": ("genre",),
    "year": ("date", "year", "originaldate"),
    "track_number": ("tracknumber", "track"),
    "disc_number": ("discnumber", "disc"),
}
_MP4 = {
    "title": ("©nam",),
    "artist": ("©art",),
    "album": ("©alb",),
    "album_artist": ("aart",),
    "genre": ("©gen", "gnre"),
    "year": ("©day",),
    "track_number": ("trkn",),
    "disc_number": ("disk",),
}
_ASF = {
    "title": ("title",),
    "artist": ("author", "wm/albumartist"),
    "album": ("wm/albumtitle",),
    "album_artist": ("wm/albumartist",),
    "genre": ("wm/genre",),
    "year": ("wm/year", "wm/originalreleaseyear"),
    "track_number": ("wm/tracknumber", "wm/track"),
    "disc_number": ("wm/partofset",),
}
_APE = {
    "title": ("title",),
    "artist": ("artist",),
    "album": ("album",),
    "album_artist": ("album artist", "albumartist"),
    "genre": ("genre",),
    "year": ("year", "date"),
    "track_number": ("track",),
    "disc_number": ("disc", "discnumber"),
}
# RIFF INFO (WAV) and FFmpeg's normalised container metadata (Matroska, WebM, ...).
_INFO = {
    "title": ("inam",),
    "artist": ("iart",),
    "album": ("iprd",),
    "album_artist": (),
    "genre": ("ignr",),
    "year": ("icrd",),
    "track_number": ("itrk", "iprt"),
    "disc_number": (),
}
_FFMPEG = {
    "title": ("title",),
    "artist": ("artist", "author"),
    "album": ("album",),
    "album_artist": ("album_artist", "album artist"),
    "genre": ("genre",),
    "year": ("date", "year", "date_released", "date_recorded"),
    "track_number": ("track", "part_number"),
    "disc_number": ("disc",),
}
_AIFF = {"title": ("name",), "artist": ("auth",)}
_SKIP_KEYS = {"apic", "covr", "metadata_block_picture", "wm/picture", "cover art (front)", "cover art (back)"}


#: Every format's names for the named fields: what is not one of them goes in ``tags``.
_NAMED_KEYS = frozenset(
    k for mapping in (_ID3, _VORBIS, _MP4, _ASF, _APE, _INFO, _FFMPEG, _AIFF) for keys in mapping.values() for k in keys
)


def empty_tags() -> dict:
    """What a file without tags gives: every field ``None``."""
    return dict.fromkeys(_OUT_FIELDS)


def read_tags(path: str | os.PathLike) -> dict:
    """The tags of ``path``: the named fields, ``tags`` (a dict of the rest, or None),
    ``recorded_at`` (a naive datetime), ``device`` and ``tag_error``; never raises."""
    path = os.fspath(path)
    out = empty_tags()
    found: dict[str, str] = {}  # every tag read, by its own name (first value)
    errors: list[str] = []
    named: dict = {}

    def take(mapping: dict, values: dict[str, str]) -> None:
        lower = {k.lower(): v for k, v in values.items()}
        for field, keys in mapping.items():
            if named.get(field) is None:
                named[field] = next((lower[k] for k in keys if lower.get(k) not in (None, "")), None)
        for k, v in values.items():
            if k.lower() not in _SKIP_KEYS and v not in (None, ""):
                found.setdefault(k, v)

    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError as e:
        out["tag_error"] = f"cannot read the file ({e.strerror or e})"
        return out
    riff = head[:4] in (b"RIFF", b"RF64", b"BW64") and head[8:12] == b"WAVE"
    aiff = head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC")
    field_recording: dict = {}
    if riff:
        _read_riff(path, take, field_recording, errors)
    elif aiff:
        _read_aiff(path, take, errors)
    else:
        mutagen_read = _read_mutagen(path, take, errors)
        if not mutagen_read:
            _read_ffmpeg(path, take, errors)
    # The AudioMoth comment may sit in any comment tag (INFO ICMT, an ID3 COMM, a Vorbis comment).
    for key, value in found.items():
        if key.lower() in ("icmt", "comment", "description") or key.lower().startswith("comm"):
            moth = parse_audiomoth_comment(value)
            if moth:
                artist = found.get("IART", "")
                if moth.get("device", "").startswith("AudioMoth deployment") and artist.startswith("AudioMoth "):
                    moth["device"] = artist  # the deployment form names the recorder in INFO IART
                for k, v in moth.items():
                    field_recording.setdefault(k, v)
                break
    for field in TAG_FIELDS:
        text: str | None = named.get(field)
        if field == "year":
            out[field] = _year(text)
        elif field in ("track_number", "disc_number"):
            out[field], total = _number_of(text)
            if total is not None:
                found.setdefault("tracktotal" if field == "track_number" else "disctotal", str(total))
        else:
            out[field] = text
    rest = {k: _cut(v) for k, v in found.items() if k.lower() not in _NAMED_KEYS}
    out["tags"] = rest or None
    out["recorded_at"] = field_recording.get("recorded_at")
    out["device"] = field_recording.get("device")
    if errors:
        out["tag_error"] = "; ".join(errors)
    return out


def _cut(value: str) -> str:
    return value if len(value) <= _MAX_VALUE else value[:_MAX_VALUE] + "…"


def _text(value) -> str | None:
    """One tag value as text: the first of a list, numbers as text, bytes decoded, pictures skipped."""
    if isinstance(value, (list, tuple)):
        if not value:
            return None
        if len(value) == 2 and all(isinstance(x, int) for x in value):  # MP4 trkn/disk: (3, 12)
            n, total = value
            return f"{n}/{total}" if total else str(n)
        parts = [t for t in (_text(v) for v in value) if t]
        return "; ".join(dict.fromkeys(parts)) if parts else None  # each value once
    if isinstance(value, bytes):
        text = value.decode("utf-8", "replace")
    elif hasattr(value, "value") and not isinstance(value, (str, int, float)):  # ASF and APE values
        if getattr(value, "kind", None) == 1:  # APE binary item
            return None
        return _text(value.value)
    elif hasattr(value, "text") and isinstance(value.text, list):  # an ID3 text frame
        return _text([str(t) for t in value.text])
    elif hasattr(value, "data") and hasattr(value, "mime"):  # a picture
        return None
    else:
        text = str(value)
    text = text.replace("\x00", " ").strip()
    return text or None


def _year(value: str | None) -> int | None:
    if not value:
        return None
    m = re.search(r"(?<!\d)(\d{4})(?!\d)", value)
    if m and 1000 <= int(m.group(1)) <= 9999:
        return int(m.group(1))
    return None


def _number_of(value: str | None) -> tuple[int | None, int | None]:
    """'3/12' -> (3, 12), '03' -> (3, None), 'A2' (vinyl side) -> (None, None)."""
    if not value:
        return None, None
    m = re.match(r"\s*(\d{1,9})\s*(?:/\s*(\d{1,9}))?", value)
    if not m:
        return None, None
    n = int(m.group(1))
    total = int(m.group(2)) if m.group(2) else None
    return (n if n < 2**31 else None), (total if total is not None and total < 2**31 else None)


def _error_text(what: str, e: BaseException) -> str:
    message = str(e).strip() or type(e).__name__
    return f"{what}: {message}"


def _read_mutagen(path: str, take, errors: list[str]) -> bool:
    """Tags through mutagen; False when it found none (FFmpeg's metadata is tried then)."""
    import mutagen

    failure = None
    try:
        f = mutagen.File(path)
    except Exception as e:  # noqa: BLE001 - mutagen raises many types for a damaged block
        f, failure = None, e  # (or it took the file for another type: an ID3 tag on ADTS AAC)
    tags = f.tags if f is not None else None
    if tags is None:
        # Formats whose mutagen class reads no tags (ADTS AAC, TTA's APEv2, MP2): an ID3v2 tag at the
        # start or an APEv2 tag at the end all the same, else FFmpeg's reading.
        from mutagen.apev2 import APEv2
        from mutagen.id3 import ID3

        for kind_of in (ID3, APEv2):
            try:
                tags = kind_of(path)
                break
            except Exception:  # noqa: BLE001 - no such tag (or none readable): try the next
                continue
        if tags is None:
            if failure is not None:
                errors.append(_error_text("tags could not be read", failure))
                return True
            return False
    kind = type(tags).__name__
    values: dict[str, str] = {}
    if kind == "ID3":
        mapping = _ID3
        for key, frame in tags.items():
            if key.startswith(("APIC", "PRIV", "GEOB", "MCDI", "UFID")):
                continue
            text = _text(frame)
            if text:
                values[key] = text  # TXXX:desc, COMM:desc:lang as mutagen names them
        # ID3v1 genres in parentheses, "(17)Rock": mutagen's .genres gives the names.
        tcon = tags.get("TCON")
        if tcon is not None and getattr(tcon, "genres", None):
            values["TCON"] = "; ".join(tcon.genres)
    else:
        mapping = {"MP4Tags": _MP4, "ASFTags": _ASF, "APEv2": _APE}.get(kind, _VORBIS)
        for key, value in tags.items():
            text = _text(value)
            if text:
                values[str(key)] = text
    take(mapping, values)
    return True


def _read_ffmpeg(path: str, take, errors: list[str]) -> None:
    """Container and stream metadata as FFmpeg reads it (Matroska, WebM and the rest)."""
    try:
        import av

        with av.open(path) as container:
            values = {str(k): str(v) for k, v in (container.metadata or {}).items()}
            for stream in container.streams.audio[:1]:
                for k, v in (stream.metadata or {}).items():
                    if str(k).lower() not in ("encoder", "duration", "language", "handler_name", "vendor_id"):
                        values.setdefault(str(k), str(v))
    except Exception:  # noqa: BLE001 - the decoder reports an unreadable file; tags are not its reason
        return
    values = {k: v for k, v in values.items() if k.lower() not in ("encoder", "major_brand", "compatible_brands")}
    take(_FFMPEG, values)


# ---- RIFF (WAV) and AIFF chunks ------------------------------------------------------------


def iter_chunks(f, start: int, end: int, big_endian: bool = False):
    """(id, payload offset, payload size) of the chunks between ``start`` and ``end``; a size
    running past the end is cut to it (a recorder that died mid-file)."""
    pos = start
    fmt = ">I" if big_endian else "<I"
    while pos + 8 <= end:
        f.seek(pos)
        head = f.read(8)
        if len(head) < 8:
            return
        cid, size = head[:4], struct.unpack(fmt, head[4:])[0]
        size = min(size, end - pos - 8)
        yield cid, pos + 8, size
        pos += 8 + size + (size & 1)


def _read_riff(path: str, take, field_recording: dict, errors: list[str]) -> None:
    info: dict[str, str] = {}
    with open(path, "rb") as f:
        end = os.fstat(f.fileno()).st_size
        for cid, offset, size in iter_chunks(f, 12, end):
            if cid == b"LIST" and size >= 4:
                f.seek(offset)
                if f.read(4) != b"INFO":
                    continue
                for sub, sub_off, sub_size in iter_chunks(f, offset + 4, offset + size):
                    f.seek(sub_off)
                    text = _riff_text(f.read(min(sub_size, 1 << 16)))
                    if text:
                        info.setdefault(sub.decode("latin-1").strip(), text)
            elif cid == b"bext" and size >= 338:
                f.seek(offset)
                bext = f.read(min(size, 602))
                for k, v in _parse_bext(bext).items():
                    field_recording.setdefault(k, v)
            elif cid == b"guan":
                f.seek(offset)
                guano = parse_guano(f.read(min(size, 1 << 20)))
                if guano:
                    fields = guano.pop("_fields")
                    for k, v in guano.items():
                        field_recording[k] = v  # GUANO first: it says the most
                    info.update({f"GUANO|{k}": _cut(v) for k, v in fields.items() if k not in ("GUANO|Version",)})
            elif cid in (b"id3 ", b"ID3 "):
                _read_id3_chunk(f, offset, size, take, errors)
    take(_INFO, info)


def _riff_text(raw: bytes) -> str | None:
    raw = raw.split(b"\x00", 1)[0]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return text.strip() or None


def _read_id3_chunk(f, offset: int, size: int, take, errors: list[str]) -> None:
    import io

    from mutagen.id3 import ID3

    f.seek(offset)
    data = f.read(size)
    try:
        tags = ID3(io.BytesIO(data))
    except Exception as e:  # noqa: BLE001
        errors.append(_error_text("the ID3 chunk could not be read", e))
        return
    values = {k: t for k, frame in tags.items() if not k.startswith(("APIC", "PRIV", "GEOB")) if (t := _text(frame))}
    take(_ID3, values)


def _read_aiff(path: str, take, errors: list[str]) -> None:
    values: dict[str, str] = {}
    with open(path, "rb") as f:
        end = os.fstat(f.fileno()).st_size
        for cid, offset, size in iter_chunks(f, 12, end, big_endian=True):
            if cid in (b"ID3 ", b"id3 "):
                _read_id3_chunk(f, offset, size, take, errors)
            elif cid in (b"NAME", b"AUTH", b"ANNO", b"(c) "):
                f.seek(offset)
                text = _riff_text(f.read(min(size, 1 << 16)))
                if text:
                    values.setdefault(cid.decode("latin-1").strip(), text)
    take(_AIFF, values)


# ---- field recorders ---------------------------------------------------------------------------


def _parse_bext(bext: bytes) -> dict:
    """BWF ``bext``: OriginationDate (10 chars at 320) and OriginationTime (8 at 330), the
    Originator (32 at 256) as the device."""
    out: dict = {}
    originator = _riff_text(bext[256:288])
    if originator:
        out["device"] = originator
    date = bext[320:330].decode("latin-1", "replace")
    time = bext[330:338].decode("latin-1", "replace")
    m = re.match(r"(\d{4})\D(\d{2})\D(\d{2})$", date)
    if m:
        t = re.match(r"(\d{2})\D(\d{2})\D(\d{2})$", time)
        hh, mi, ss = (int(x) for x in t.groups()) if t else (0, 0, 0)
        try:
            out["recorded_at"] = datetime.datetime(int(m.group(1)), int(m.group(2)), int(m.group(3)), hh, mi, ss)
        except ValueError:
            pass
    return out


def parse_guano(raw: bytes) -> dict | None:
    """A GUANO block (``Key: Value`` lines, UTF-8): ``recorded_at`` from ``Timestamp`` (UTC when it
    carries an offset), ``device`` from ``Make``/``Model``/``Serial``, and ``_fields``, every line."""
    text = raw.split(b"\x00", 1)[0].decode("utf-8", "replace")
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            fields[key.strip()] = value.strip()
    if not fields:
        return None
    out: dict = {"_fields": fields}
    stamp = fields.get("Timestamp")
    if stamp:
        when = _iso_time(stamp)
        if when is not None:
            out["recorded_at"] = when
    device = " ".join(v for v in (fields.get("Make"), fields.get("Model")) if v)
    if fields.get("Serial"):
        device = f"{device} {fields['Serial']}".strip()
    if device:
        out["device"] = device
    return out


def _iso_time(stamp: str) -> datetime.datetime | None:
    s = stamp.strip().replace(" ", "T", 1)
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    s = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", s)  # +0100 -> +01:00
    try:
        when = datetime.datetime.fromisoformat(s)
    except ValueError:
        return None
    if when.tzinfo is not None:
        when = when.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return when


_AUDIOMOTH = re.compile(
    r"Recorded at (\d{2}):(\d{2}):(\d{2}) (\d{2})/(\d{2})/(\d{4})"
    r"(?: \(UTC(?:([+-])(\d{1,2})(?::(\d{2}))?)?\))?"
    r" (?:by (AudioMoth(?: [0-9A-Fa-f]{16})?)|during deployment ([0-9A-Fa-f]{16}))?"
)


def parse_audiomoth_comment(comment: str) -> dict | None:
    """The AudioMoth comment's time (in UTC: its ``(UTC+1)`` offset taken off; firmware 1.0's
    comment without an offset is taken as UTC, its clock's time) and device ('AudioMoth <serial>'),
    or None when ``comment`` is not one."""
    m = _AUDIOMOTH.search(comment)
    if m is None:
        return None
    hh, mi, ss, dd, mo, yy = (int(x) for x in m.groups()[:6])
    try:
        when = datetime.datetime(yy, mo, dd, hh, mi, ss)
    except ValueError:
        return None
    if m.group(7):
        offset = datetime.timedelta(hours=int(m.group(8)), minutes=int(m.group(9) or 0))
        when = when - offset if m.group(7) == "+" else when + offset
    out: dict = {"recorded_at": when}
    if m.group(10):
        out["device"] = m.group(10)
    elif m.group(11):
        out["device"] = f"AudioMoth deployment {m.group(11)}"
    return out
