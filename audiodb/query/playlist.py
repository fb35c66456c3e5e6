"""Playlists: tracks near one or more seeds, never twice, never the same recording twice."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from ..errors import UsageError
from ..store import catalog
from ..store.connection import LibraryFile
from ..store.words import WORD_KEYS, same_codes, track_words
from .duplicates import DUPLICATE_THRESHOLD, DupSpace, same_duration
from .neighbours import load_for, require_tracks, resolve_queries
from .space import EXTENDED_METRICS, Space, space_for

__all__ = ["PLAYLIST_COLUMNS", "playlist"]

PLAYLIST_COLUMNS = ("position", "track_id", "path", *WORD_KEYS, "distance", "duration_sec", "seed")


@dataclasses.dataclass
class _Pick:
    """A track chosen for the playlist so far."""

    track_id: int | None  # None: a seed file that is not indexed
    path: str
    vector: np.ndarray  # raw
    duration_sec: float
    content_hash: str | None
    distance: float  # to the nearest seed
    seed: bool


def playlist(
    file: LibraryFile,
    seeds: Sequence[str],
    *,
    n: int = 20,
    metric: str | None = None,
    smooth: bool = False,
    include_seeds: bool = True,
    where: str | None = None,
    threshold: float = DUPLICATE_THRESHOLD,
    max_per_artist: int | None = None,
    max_per_album: int | None = None,
) -> list[dict]:
    """A playlist of ``n`` tracks near the ``seeds`` (paths, indexed or not, or track ids).

    Candidates are ranked by their distance to the nearest seed. A track is
    never listed twice, and a candidate that is the same recording as a track
    already chosen (same content, or a duplicate as :func:`duplicates` judges
    it) is skipped. The seeds come first unless ``include_seeds`` is false;
    with ``smooth``, the rest are ordered so each next track is the nearest
    remaining one to the last.

    ``max_per_artist`` / ``max_per_album``: at most that many tracks of one artist
    (album, as :func:`audiodb.store.words.same_codes` groups them) in the playlist,
    the seeds counted; a candidate over the limit is skipped for the next nearest.
    Tracks without an artist (album) tag are not limited.

    Returns
    -------
    list of dict
        Keys :data:`PLAYLIST_COLUMNS`; ``distance`` is to the nearest seed.
    """
    if n < 1:
        raise UsageError("-n must be at least 1.")
    if not seeds:
        raise UsageError("Give at least one seed track.")
    for limit, option in ((max_per_artist, "--max-per-artist"), (max_per_album, "--max-per-album")):
        if limit is not None and limit < 1:
            raise UsageError(f"{option} must be at least 1.")
    with file.connect() as con:
        (metric,), tracks = load_for(con, file, [metric])
        require_tracks(tracks, con)
    queries = resolve_queries(file, seeds, extended=metric in EXTENDED_METRICS)
    with file.connect() as con:
        space = space_for(tracks, metric)
        dup = DupSpace(space, file.params)
        allowed = catalog.where_mask(con, space.track_ids, where)
        info = catalog.track_info(con, None, ("path", "content_hash"))
        limits = [
            (
                same_codes(
                    con, np.append(space.track_ids, [-1 if q.track_id is None else q.track_id for q in queries]), kind
                ),
                limit,
            )
            for kind, limit in (("artist", max_per_artist), ("album", max_per_album))
            if limit is not None
        ]
    paths = {t: row[0] for t, row in info.items()}
    hashes = {t: row[1] for t, row in info.items()}

    chosen: list[_Pick] = []
    seen_paths: set[str] = set()
    used: list[dict[int, int]] = [{} for _ in limits]  # per limit: {group code: tracks chosen}

    def count(codes_at: list[int]) -> None:
        for u, c in zip(used, codes_at):
            if c >= 0:
                u[c] = u.get(c, 0) + 1

    for k, q in enumerate(queries):
        if q.path in seen_paths:
            continue
        seen_paths.add(q.path)
        count([int(codes[len(space) + k]) for codes, _ in limits])
        chosen.append(_Pick(q.track_id, q.path, q.vector, q.duration_sec or 0.0, q.content_hash, 0.0, True))
    dist = np.min([space.distances(q.vector) for q in queries], axis=0)
    if allowed is not None:
        dist[~allowed] = np.inf
    seed_ids = {q.track_id for q in queries if q.track_id is not None}
    order = np.lexsort((space.track_ids, dist))
    picked_coords = [dup(c.vector) for c in chosen]
    want = n + (len(chosen) if not include_seeds else 0)
    for i in order:
        if len(chosen) >= want or not np.isfinite(dist[i]):
            break
        t = int(space.track_ids[i])
        if t in seed_ids:
            continue
        groups = [int(codes[i]) for codes, _ in limits]
        if any(c >= 0 and u.get(c, 0) >= limit for c, u, (_, limit) in zip(groups, used, limits)):
            continue
        duration = tracks.duration_sec[i]
        h = hashes.get(t)
        coords = dup(space.vectors[i])
        if any(
            (h is not None and h == c.content_hash)
            or (same_duration(duration, c.duration_sec) and float(np.linalg.norm(coords - pc)) < threshold)
            for c, pc in zip(chosen, picked_coords)
        ):
            continue
        chosen.append(_Pick(t, paths[t], space.vectors[i], duration, h, float(dist[i]), False))
        picked_coords.append(coords)
        count(groups)

    seeds_part = [c for c in chosen if c.seed]
    rest = [c for c in chosen if not c.seed]
    if smooth and rest:
        rest = _smooth(space, seeds_part[-1].vector, rest)
    items = (seeds_part if include_seeds else []) + rest
    items = items[:n]
    with file.connect() as con:
        words = track_words(con, [c.track_id for c in items if c.track_id is not None])
    unknown = dict.fromkeys(WORD_KEYS)
    return [
        {
            "position": k + 1,
            "track_id": c.track_id,
            "path": c.path,
            **(words.get(c.track_id, unknown) if c.track_id is not None else unknown),
            "distance": c.distance,
            "duration_sec": float(c.duration_sec) if c.duration_sec is not None else None,
            "seed": c.seed,
        }
        for k, c in enumerate(items)
    ]


def _smooth(space: Space, start: np.ndarray, items: list[_Pick]) -> list[_Pick]:
    """Greedy nearest-neighbour walk from ``start`` through ``items``."""
    coords = space.transform(np.stack([c.vector for c in items]))
    here = space.transform(start)
    left = list(range(len(items)))
    out = []
    while left:
        sub = coords[left]
        d = 1.0 - sub @ here if space.metric == "cosine" else np.linalg.norm(sub - here, axis=1)
        k = left.pop(int(np.argmin(d)))
        out.append(items[k])
        here = coords[k]
    return out
