"""Short clips' envelopes in the library (migration 008): kept by ``duplicates``, read by it next time.

Functions of an open connection; the only module that speaks SQL about ``clip_envelopes``.
``duplicates`` decodes a clip the first time it needs its envelope and keeps it
(:func:`save_envelopes`); later runs read it (:func:`load_envelopes`). A scan that analyses a file
again (its audio changed) forgets its envelope (:func:`forget_envelopes`, in the transaction that
writes the file), as does removing the track (:func:`delete_envelopes`).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from ..errors import AudiodbError
from ..paths import to_stored
from .catalog import has_rows
from .connection import LibraryFile

if TYPE_CHECKING:  # numpy is loaded by what keeps or reads envelopes (duplicates), not by a scan
    import numpy as np

__all__ = ["delete_envelopes", "forget_envelopes", "keep_envelopes", "load_envelopes", "save_envelopes"]


def delete_envelopes(con, track_ids: list[int]) -> None:
    if track_ids:
        con.execute("DELETE FROM clip_envelopes WHERE list_contains(?, track_id)", [track_ids])


def forget_envelopes(con, results: list[dict]) -> None:
    """The envelopes of the files of ``results`` (analysed again: their audio changed) are stale."""
    if results and has_rows(con, "clip_envelopes"):
        con.execute(
            "DELETE FROM clip_envelopes WHERE track_id IN "
            "(SELECT track_id FROM track_files WHERE list_contains(?, path))",
            [[to_stored(r["path"]) for r in results]],
        )


def save_envelopes(con, envelopes: dict[int, np.ndarray]) -> None:
    """Keep ``envelopes`` (track_id -> frames x bands uint8, :func:`audiodb.analysis.envelope.clip_envelope_of`)
    of tracks still in the library, replacing any they had, in one transaction."""
    import numpy as np

    from ..analysis.envelope import ENVELOPE_VERSION, encode_envelope

    if not envelopes:
        return
    ids = sorted(envelopes)
    blobs = np.empty(len(ids), dtype=object)
    blobs[:] = [encode_envelope(envelopes[t]) for t in ids]
    batch = {
        "track_id": np.array(ids, np.int64),
        "frames": np.array([envelopes[t].shape[0] for t in ids], np.int32),
        "bands": np.array([envelopes[t].shape[1] for t in ids], np.int16),
        "envelope": blobs,
    }
    con.execute("BEGIN TRANSACTION")
    con.register("envelope_batch", batch)
    try:
        con.execute("DELETE FROM clip_envelopes WHERE list_contains(?, track_id)", [ids])
        con.execute(
            "INSERT INTO clip_envelopes SELECT b.track_id, ?, b.frames, b.bands, b.envelope::BLOB "
            "FROM envelope_batch b WHERE b.track_id IN (SELECT track_id FROM track_files)",
            [ENVELOPE_VERSION],
        )
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(Exception):
            con.execute("ROLLBACK")
        raise
    finally:
        with contextlib.suppress(Exception):
            con.unregister("envelope_batch")


def keep_envelopes(file: LibraryFile, envelopes: dict[int, np.ndarray]) -> bool:
    """:func:`save_envelopes` in one short write of ``file``; False if it could not be written now.

    Best effort: a library that cannot be written (a read-only file or folder, a full disk)
    only means that the next ``duplicates`` decodes those clips again.
    """
    import duckdb

    try:
        with file.connect(read_only=False) as con:
            save_envelopes(con, envelopes)
    except (AudiodbError, OSError, duckdb.Error):
        return False
    return True


def load_envelopes(con, track_ids: list[int]) -> dict[int, np.ndarray]:
    """The kept envelopes of the current version among ``track_ids``: track_id -> (frames, bands)
    uint8. Tracks without one (never compared yet, analysed again since, or of another version)
    are left out."""
    import numpy as np

    from ..analysis.envelope import ENVELOPE_VERSION

    if not track_ids:
        return {}
    rows = con.execute(
        "SELECT track_id, frames, bands, envelope FROM clip_envelopes "
        "WHERE version = ? AND track_id IN (SELECT unnest(?::BIGINT[]))",
        [ENVELOPE_VERSION, track_ids],
    ).fetchall()
    return {t: np.frombuffer(blob, dtype=np.uint8).reshape(frames, bands) for t, frames, bands, blob in rows}
