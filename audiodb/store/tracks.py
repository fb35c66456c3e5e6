"""The indexed files: what a scan reads before it plans and every row it writes.

Functions of an open connection. Paths go in and come out real (as the file
system names them); they are stored printable (:func:`audiodb.paths.to_stored`).
Each writing function that says so is one transaction: a kill at any moment
leaves the library as it was before it, or after.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable

from ..analysis.params import ExtendedParams, FeatureParams
from ..paths import from_stored, to_stored
from . import envelopes as envelope_store
from . import segments as segment_store
from .catalog import has_rows
from .clock import utc_now

__all__ = [
    "FAILURES_QUERY",
    "StoredTrack",
    "apply_moves_and_removals",
    "delete_tracks",
    "load_state",
    "register_feature_sets",
    "status_counts",
    "tag_counts",
    "write_results",
]

#: The files that could not be analysed, newest first (``Library.failures``).
FAILURES_QUERY = "SELECT path, reason, failed_at, size FROM failures ORDER BY failed_at DESC, path"

#: One indexed file as a scan sees it: (track_id, real path, size, mtime_ns, content_hash, current,
#: audio_hash), current when both feature sets' vectors are there; audio_hash None until read (005).
StoredTrack = tuple[int, str, int, int, str, bool, "str | None"]


def status_counts(con, params: FeatureParams, extended: ExtendedParams) -> dict:
    """Tracks, vectors of the current feature sets, files without them, failures, folders."""
    from .vectors import count_stale  # vectors loads numpy: not for a scan's writes

    one = lambda q, *a: con.execute(q, list(a)).fetchone()[0]  # noqa: E731
    return {
        "tracks": one("SELECT count(*) FROM track_files"),
        "embedded": one("SELECT count(*) FROM embeddings WHERE feature_set = ?", params.id),
        "stale": count_stale(con, params.id),
        "extended_stale": count_stale(con, extended.id, "extended_embeddings"),
        "failures": one("SELECT count(*) FROM failures"),
        "total_duration_sec": float(one("SELECT coalesce(sum(duration_sec), 0) FROM track_files")),
        "folders": one("SELECT count(DISTINCT folder) FROM track_files"),
        **tag_counts(con),
        "last_indexed_at": one("SELECT max(indexed_at) FROM track_files"),
    }


def tag_counts(con) -> dict:
    """Tracks with tags (any of title, artist, album), with a recording time, with a tag block
    that could not be read."""
    tagged, recorded, errors = con.execute(
        """SELECT count(*) FILTER (WHERE title IS NOT NULL OR artist IS NOT NULL OR album IS NOT NULL),
                  count(recorded_at), count(tag_error)
           FROM track_files"""
    ).fetchone()
    return {"tagged": tagged, "recorded": recorded, "tag_errors": errors}


def load_state(
    con, params: FeatureParams, extended: ExtendedParams
) -> tuple[list[StoredTrack], dict[str, tuple[int, int]]]:
    """The indexed files, and the failures by real path: (size, mtime_ns) when they failed."""
    # Current: both feature sets' vectors are there (a library from before the second set
    # gets it on its next scan, one decode per file).
    rows = con.execute(
        """SELECT t.track_id, t.path, t.size, t.mtime_ns, t.content_hash,
                  e.track_id IS NOT NULL AND x.track_id IS NOT NULL, t.audio_hash
           FROM track_files t
           LEFT JOIN embeddings e ON e.track_id = t.track_id AND e.feature_set = ?
           LEFT JOIN extended_embeddings x ON x.track_id = t.track_id AND x.feature_set = ?""",
        [params.id, extended.id],
    ).fetchall()
    # Keyed by the real path (what discover sees); see audiodb.paths.
    tracks = [(r[0], from_stored(r[1]), *r[2:]) for r in rows]
    failures = {
        from_stored(p): (s, m) for p, s, m in con.execute("SELECT path, size, mtime_ns FROM failures").fetchall()
    }
    return tracks, failures


def register_feature_sets(con, *feature_sets) -> None:
    """Describe each feature set (a FeatureParams or ExtendedParams) in ``feature_sets``, once."""
    for fs in feature_sets:
        con.execute(
            "INSERT INTO feature_sets VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [fs.id, fs.name, fs.dims, fs.as_json(), fs.feature_names(), utc_now()],
        )


def delete_tracks(con, track_ids: list[int]) -> None:
    """Tracks gone, with their vectors, segments and cluster assignments."""
    if track_ids:
        segment_store.delete_segments(con, track_ids)
        envelope_store.delete_envelopes(con, track_ids)
        con.execute("DELETE FROM cluster_assignments WHERE list_contains(?, track_id)", [track_ids])
        con.execute("DELETE FROM segment_cluster_assignments WHERE list_contains(?, track_id)", [track_ids])
        con.execute("DELETE FROM embeddings WHERE list_contains(?, track_id)", [track_ids])
        con.execute("DELETE FROM extended_embeddings WHERE list_contains(?, track_id)", [track_ids])
        con.execute("DELETE FROM track_files WHERE list_contains(?, track_id)", [track_ids])


def apply_moves_and_removals(
    con,
    params: FeatureParams,
    extended: ExtendedParams,
    *,
    moves: Iterable[tuple[int, str, int, int]],
    touched: Iterable[tuple[int, int]],
    removed: list[int],
    forget_failures: list[str],
) -> None:
    """One transaction, with the feature sets: ``moves`` (track_id, new path, size, mtime_ns),
    ``touched`` (track_id, new mtime_ns: same content), tracks ``removed`` (ids) and the
    failures of files gone (paths)."""
    con.execute("BEGIN TRANSACTION")
    register_feature_sets(con, params, extended)
    now = utc_now()
    for track_id, new_path, size, mtime in moves:
        con.execute(
            "UPDATE track_files SET path = ?, file_name = ?, folder = ?, size = ?, mtime_ns = ?, "
            "indexed_at = ? WHERE track_id = ?",
            [
                to_stored(new_path),
                to_stored(os.path.basename(new_path)),
                to_stored(os.path.dirname(new_path)),
                size,
                mtime,
                now,
                track_id,
            ],
        )
    for track_id, mtime in touched:
        con.execute("UPDATE track_files SET mtime_ns = ? WHERE track_id = ?", [mtime, track_id])
    delete_tracks(con, removed)
    if forget_failures:
        con.execute("DELETE FROM failures WHERE list_contains(?, path)", [[to_stored(p) for p in forget_failures]])
    con.execute("COMMIT")


def write_results(
    con,
    params: FeatureParams,
    extended: ExtendedParams,
    ok: list[dict],
    same: list[dict],
    failed: list[dict],
    segmented: list[dict] | tuple = (),
    *,
    describe: bool = True,
) -> None:
    """One transaction: analysed files (``ok``, as :func:`audiodb.index.worker.analyse` returns
    them) with their vectors and segments, files found unchanged (``same``: their new size and
    mtime), files that failed (recorded; a changed file that no longer decodes loses its old
    vector) and indexed files given segments only (``segmented``). ``describe`` False: the
    feature sets are described already (an earlier batch of the same scan did it)."""
    now = utc_now()
    con.execute("BEGIN TRANSACTION")
    try:
        if ok:
            if describe:
                register_feature_sets(con, params, extended)  # the vectors' feature sets described (once)
            _write_ok(con, params, extended, ok, now)
            segment_store.replace_segments(con, ok, all_of_track=True)
            envelope_store.forget_envelopes(con, ok)  # re-analysed: their audio changed
        if segmented:
            segment_store.replace_segments(con, list(segmented), all_of_track=False)
        retagged = [r for r in same if "audio_hash" in r]
        for r in same:
            if "audio_hash" not in r:  # a Dask worker running an audiodb from before tags
                con.execute(
                    "UPDATE track_files SET size = ?, mtime_ns = ? WHERE path = ?",
                    [r["size"], r["mtime_ns"], to_stored(r["path"])],
                )
        if retagged:
            _write_retagged(con, retagged)
        for r in failed:
            con.execute(
                "INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?, ?)",
                [to_stored(r["path"]), r.get("size"), r.get("mtime_ns"), r["reason"], now],
            )
            # A changed file that no longer decodes: its old vector is stale.
            ids = [
                row[0]
                for row in con.execute(
                    "SELECT track_id FROM track_files WHERE path = ?", [to_stored(r["path"])]
                ).fetchall()
            ]
            delete_tracks(con, ids)
        con.execute("COMMIT")
    except BaseException:
        # A COMMIT that failed (a full disk) has already ended the transaction.
        with contextlib.suppress(Exception):
            con.execute("ROLLBACK")
        raise


#: The columns a file's words fill (migration 005), as the workers return them.
_WORD_COLUMNS = (
    "title",
    "artist",
    "album",
    "album_artist",
    "genre",
    "year",
    "track_number",
    "disc_number",
    "tags",
    "recorded_at",
    "device",
    "tag_error",
    "audio_hash",
)


_WORD_TYPES = {
    **dict.fromkeys(("title", "artist", "album", "album_artist", "genre", "device", "tag_error"), "VARCHAR"),
    **dict.fromkeys(("year", "track_number", "disc_number"), "INTEGER"),
    "tags": "JSON",
    "recorded_at": "TIMESTAMP",
    "audio_hash": "VARCHAR",
}


def _word_arrays(rows: list[dict]) -> dict:
    """Columns (numpy object arrays, None where a worker sent none) of the tags and audio hash of
    ``rows``; :func:`_word_selects` casts them to their SQL types."""
    import json

    import numpy as np

    def col(values) -> np.ndarray:
        out = np.empty(len(rows), dtype=object)
        out[:] = list(values)
        return out

    out = {k: col(r.get(k) for r in rows) for k in _WORD_COLUMNS if k != "tags"}
    out["tags"] = col(json.dumps(r["tags"], ensure_ascii=False) if r.get("tags") else None for r in rows)
    return out


def _word_selects(prefix: str = "") -> str:
    return ", ".join(f"{prefix}{c}::{_WORD_TYPES[c]}" for c in _WORD_COLUMNS)


def _write_retagged(con, rows: list[dict]) -> None:
    """Files whose audio is as stored (a tag edit, or a row from before tags were read): their new
    size, mtime, whole-file hash, tags and audio hash; the vectors are kept."""
    import numpy as np

    paths = np.empty(len(rows), dtype=object)
    paths[:] = [to_stored(r["path"]) for r in rows]
    hashes = np.empty(len(rows), dtype=object)
    hashes[:] = [r["content_hash"] for r in rows]
    batch = {
        "path": paths,
        "size": np.array([r["size"] for r in rows], np.int64),
        "mtime_ns": np.array([r["mtime_ns"] for r in rows], np.int64),
        "content_hash": hashes,
        **_word_arrays(rows),
    }
    con.register("retag_batch", batch)
    try:
        sets = ", ".join(
            [f"{c} = b.{c}" for c in ("size", "mtime_ns", "content_hash")]
            + [f"{c} = b.{c}::{_WORD_TYPES[c]}" for c in _WORD_COLUMNS]
        )
        con.execute(f"UPDATE track_files SET {sets} FROM retag_batch b WHERE track_files.path = b.path")
    finally:
        with contextlib.suppress(Exception):
            con.unregister("retag_batch")


def _write_ok(con, params: FeatureParams, extended: ExtendedParams, ok: list[dict], now) -> None:
    import numpy as np

    dims = params.dims

    # Columns as numpy arrays, which DuckDB scans as they are: no pyarrow, which would import pandas
    # (half a second of a short scan) on its first conversion.
    def strings(values) -> np.ndarray:
        out = np.empty(len(ok), dtype=object)
        out[:] = list(values)
        return out

    def rows(key: str) -> np.ndarray:  # one float32 array per track: a FLOAT[] column
        matrix = np.stack([r[key] for r in ok]).astype(np.float32)
        out = np.empty(len(ok), dtype=object)
        for i, row in enumerate(matrix):
            out[i] = row
        return out

    batch = {
        "path": strings(to_stored(r["path"]) for r in ok),
        "file_name": strings(to_stored(os.path.basename(r["path"])) for r in ok),
        "folder": strings(to_stored(os.path.dirname(r["path"])) for r in ok),
        "size": np.array([r["size"] for r in ok], np.int64),
        "mtime_ns": np.array([r["mtime_ns"] for r in ok], np.int64),
        "content_hash": strings(r["content_hash"] for r in ok),
        "duration_sec": np.array([r["duration_sec"] for r in ok], np.float64),
        "sample_rate": np.array([r["sample_rate"] for r in ok], np.int32),
        "native_sample_rate": np.array([r["native_sample_rate"] for r in ok], np.int32),
        "channels": np.array([r["channels"] for r in ok], np.int32),
        "codec": strings(r["codec"] for r in ok),
        "container": strings(r["container"] for r in ok),
        "decoder": strings(r["decoder"] for r in ok),
        "vector": rows("vector"),
        "extended": rows("extended"),
        **_word_arrays(ok),
    }
    words = ", ".join(_WORD_COLUMNS)
    word_updates = ", ".join(f"{c} = excluded.{c}" for c in _WORD_COLUMNS)
    con.register("scan_batch", batch)
    try:
        con.execute(
            f"""INSERT INTO track_files (path, file_name, folder, size, mtime_ns, content_hash,
                   duration_sec, sample_rate, native_sample_rate, channels, codec, container,
                   decoder, indexed_at, {words})
               SELECT path, file_name, folder, size, mtime_ns, content_hash, duration_sec,
                   sample_rate, native_sample_rate, channels, codec, container, decoder, ?,
                   {_word_selects()}
               FROM scan_batch
               ON CONFLICT (path) DO UPDATE SET
                   size = excluded.size, mtime_ns = excluded.mtime_ns,
                   content_hash = excluded.content_hash, duration_sec = excluded.duration_sec,
                   sample_rate = excluded.sample_rate,
                   native_sample_rate = excluded.native_sample_rate,
                   channels = excluded.channels, codec = excluded.codec,
                   container = excluded.container, decoder = excluded.decoder,
                   indexed_at = excluded.indexed_at, {word_updates}""",
            [now],
        )
        con.execute(
            f"""INSERT OR REPLACE INTO embeddings
                SELECT t.track_id, ?, b.vector::FLOAT[{dims}], ?
                FROM scan_batch b JOIN track_files t USING (path)""",
            [params.id, now],
        )
        con.execute(
            f"""INSERT OR REPLACE INTO extended_embeddings
                SELECT t.track_id, ?, b.extended::FLOAT[{extended.dims}], ?
                FROM scan_batch b JOIN track_files t USING (path)""",
            [extended.id, now],
        )
        if has_rows(con, "failures"):  # files that failed before and decode now
            con.execute("DELETE FROM failures WHERE path IN (SELECT path FROM scan_batch)")
    finally:
        # After an error (Ctrl-C mid-statement: 'Query interrupted') the transaction is aborted and
        # unregistering fails too; the original error is the one to report.
        with contextlib.suppress(Exception):
            con.unregister("scan_batch")
