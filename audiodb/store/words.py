"""A track's words (artist, title, album, other tags) as queries read them.

Read-only questions over the tag columns of ``track_files`` (migration 005): the
words shown beside a path, the groups "same artist / album / folder" that
playlists, ``similar`` and ``eval`` keep apart, and labels taken from a tag.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from ..errors import UsageError

__all__ = [
    "SAME_KINDS",
    "TAG_COLUMNS",
    "WORD_KEYS",
    "check_same",
    "display_name",
    "same_codes",
    "tag_labels",
    "track_words",
]

#: Keys every row of similar, playlist and duplicates carries beside ``path`` (None when unknown).
WORD_KEYS = ("artist", "title", "album")

#: Tag columns of ``track_files``; any other tag name is looked up in its ``tags`` JSON.
TAG_COLUMNS = ("title", "artist", "album", "album_artist", "genre", "year", "track_number", "disc_number", "device")

#: What "the same" can mean for --exclude-same, --filter-same, --max-per-*.
SAME_KINDS = ("artist", "album", "folder")

# One SQL expression per kind: a key equal for tracks that are "the same", NULL when unknown.
# Artist: the track's artist, else its album artist, compared without case or outer spaces.
# Album: the album's name together with its album artist (else artist), so that two
# "Greatest Hits" by different artists are different albums.
_ARTIST = "nullif(lower(trim(coalesce(nullif(trim(artist), ''), album_artist))), '')"
_KEY_SQL = {
    "artist": _ARTIST,
    "album": f"CASE WHEN nullif(trim(album), '') IS NULL THEN NULL "
    f"ELSE lower(trim(album)) || chr(31) || coalesce(nullif(lower(trim(album_artist)), ''), {_ARTIST}, '') END",
    "folder": "folder",
}


def track_words(con, track_ids: Sequence[int] | None) -> dict[int, dict]:
    """``{track_id: {"artist": ..., "title": ..., "album": ...}}`` (None where the file says nothing)."""
    cols = ", ".join(f"nullif(trim({c}), '')" for c in WORD_KEYS)
    if track_ids is None:
        rows = con.execute(f"SELECT track_id, {cols} FROM track_files").fetchall()
    else:
        rows = con.execute(
            f"SELECT track_id, {cols} FROM track_files WHERE list_contains(?, track_id)", [list(track_ids)]
        ).fetchall()
    return {r[0]: dict(zip(WORD_KEYS, r[1:])) for r in rows}


def display_name(words: dict) -> str | None:
    """``artist – title`` when both are known, the title alone when only it is, else None."""
    artist, title = words.get("artist"), words.get("title")
    if title and artist:
        return f"{artist} – {title}"
    return title or None


def check_same(kind: str | None, option: str) -> None:
    if kind is not None and kind not in SAME_KINDS:
        raise UsageError(f"{option} takes one of {', '.join(SAME_KINDS)}; got {kind!r}.")


def same_codes(con, space_ids: np.ndarray, kind: str) -> np.ndarray:
    """For each of ``space_ids``: an integer equal for tracks that share ``kind`` (artist, album,
    folder), ``-1`` where it is unknown (no artist tag, say). Tracks whose key is unknown are
    never "the same" as another track, not even as one another."""
    check_same(kind, "same")
    rows = con.execute(f"SELECT track_id, {_KEY_SQL[kind]} FROM track_files").fetchall()
    keys = {tid: key for tid, key in rows}
    codes: dict[str, int] = {}
    out = np.full(len(space_ids), -1, dtype=np.int64)
    for i, t in enumerate(space_ids.tolist()):
        key = keys.get(int(t))
        if key is not None:
            out[i] = codes.setdefault(key, len(codes))
    return out


def tag_labels(con, name: str) -> dict[int, str]:
    """``{track_id: value}`` of the tag ``name`` for the tracks that have it: one of
    :data:`TAG_COLUMNS`, else a key of the ``tags`` JSON (any case; ID3's user text frame
    ``TXXX:NAME`` is the tag NAME too, as in a Vorbis comment). Empty values are left out."""
    name = name.strip()
    if not name:
        raise UsageError("--label-from tag: needs a tag name, e.g. tag:genre or tag:artist.")
    lowered = name.lower()
    if lowered in TAG_COLUMNS:
        rows = con.execute(
            f"SELECT track_id, CAST({lowered} AS VARCHAR) FROM track_files WHERE {lowered} IS NOT NULL"
        ).fetchall()
        return {t: v.strip() for t, v in rows if v is not None and v.strip()}
    out = {}
    for tid, tags in con.execute("SELECT track_id, tags FROM track_files WHERE tags IS NOT NULL").fetchall():
        try:
            obj = json.loads(tags) if isinstance(tags, str) else tags
        except ValueError:
            continue
        if not isinstance(obj, dict):
            continue
        for key, value in obj.items():
            if str(key).lower() in (lowered, f"txxx:{lowered}") and value not in (None, "", []):
                text = "; ".join(map(str, value)) if isinstance(value, list) else str(value)
                if text.strip():
                    out[tid] = text.strip()
                break
    return out
