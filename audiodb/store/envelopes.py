"""Short clips' envelopes in the library (migration 008): written with the file, read by ``duplicates``.

Functions of an open connection; the only module that speaks SQL about ``clip_envelopes``. A file's
envelope is written by :func:`replace_envelopes` inside the transaction that writes the file
(:func:`audiodb.store.tracks.write_results`).
"""

from __future__ import annotations

import contextlib

import numpy as np

from ..analysis.envelope import ENVELOPE_VERSION, stored_clip_range
from ..analysis.params import FeatureParams
from ..paths import to_stored

__all__ = ["delete_envelopes", "load_envelopes", "replace_envelopes", "wanted_sql"]


def wanted_sql(params: FeatureParams, alias: str) -> str:
    """A SQL condition on ``alias``'s ``duration_sec``: the track is a clip whose envelope a scan
    with ``params`` stores (:func:`audiodb.analysis.envelope.stored_clip_range`)."""
    span = stored_clip_range(params.sr)
    if span is None:
        return "FALSE"
    return f"({alias}.duration_sec >= {float(span[0])!r}::DOUBLE AND {alias}.duration_sec < {float(span[1])!r}::DOUBLE)"


def delete_envelopes(con, track_ids: list[int]) -> None:
    if track_ids:
        con.execute("DELETE FROM clip_envelopes WHERE list_contains(?, track_id)", [track_ids])


def replace_envelopes(con, results: list[dict]) -> None:
    """Write the ``clip_envelope`` (frames x bands uint8, :func:`audiodb.analysis.envelope.clip_envelope_of`)
    of each analysed file that has one, after its track row is written, in the caller's transaction.
    A re-analysed file's earlier envelope is deleted whatever it brings (a clip that grew long)."""
    if not results:
        return
    paths = [to_stored(r["path"]) for r in results]
    ids = dict(con.execute("SELECT path, track_id FROM track_files WHERE list_contains(?, path)", [paths]).fetchall())
    delete_envelopes(con, sorted(ids.values()))
    rows = [
        (ids[p], np.asarray(r["clip_envelope"]))
        for r, p in zip(results, paths)
        if p in ids and r.get("clip_envelope") is not None
    ]
    if not rows:
        return
    blobs = np.empty(len(rows), dtype=object)
    blobs[:] = [np.ascontiguousarray(env, dtype=np.uint8).tobytes() for _, env in rows]
    batch = {
        "track_id": np.array([t for t, _ in rows], np.int64),
        "frames": np.array([env.shape[0] for _, env in rows], np.int32),
        "bands": np.array([env.shape[1] for _, env in rows], np.int16),
        "envelope": blobs,
    }
    con.register("envelope_batch", batch)
    try:
        con.execute(
            "INSERT INTO clip_envelopes SELECT track_id, ?, frames, bands, envelope::BLOB FROM envelope_batch",
            [ENVELOPE_VERSION],
        )
    finally:
        with contextlib.suppress(Exception):
            con.unregister("envelope_batch")


def load_envelopes(con, track_ids: list[int]) -> dict[int, np.ndarray]:
    """The stored envelopes of the current version among ``track_ids``: track_id -> (frames, bands)
    uint8. Tracks without one (indexed before migration 008, or of another version) are left out."""
    if not track_ids:
        return {}
    rows = con.execute(
        "SELECT track_id, frames, bands, envelope FROM clip_envelopes "
        "WHERE version = ? AND track_id IN (SELECT unnest(?::BIGINT[]))",
        [ENVELOPE_VERSION, track_ids],
    ).fetchall()
    return {t: np.frombuffer(blob, dtype=np.uint8).reshape(frames, bands) for t, frames, bands, blob in rows}
