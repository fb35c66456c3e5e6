"""Duplicates: files that hold one recording (a wav and its mp3, a renamed copy).

Duplicates are judged in a fixed space of their own, whatever metric ranks
the neighbours: the root-mean-square difference of the z-scores of the mel
bands below 6 kHz, under :data:`DUPLICATE_THRESHOLD`, lengths agreeing.
"""

from __future__ import annotations

import math
from typing import cast

import numpy as np

from ..analysis.params import NOTEBOOK, FeatureParams
from ..errors import UsageError
from ..store import catalog
from ..store.connection import LibraryFile
from ..store.vectors import load_tracks
from ..store.words import track_words
from .neighbours import require_tracks
from .space import Space, space_for

__all__ = [
    "DUPLICATE_MAX_HZ",
    "DUPLICATE_THRESHOLD",
    "DupSpace",
    "duplicate_features",
    "duplicates",
    "duration_tolerance",
    "same_duration",
]

#: Duplicates are judged on the mel bands below this frequency (Hz): lossy
#: codecs and resamplers change the top of the spectrum, not what is below.
DUPLICATE_MAX_HZ = 6000.0

#: Two tracks whose RMS z-score difference over those bands is below this (and
#: whose durations agree, see :func:`same_duration`) are one recording. Measured
#: on 20-s excerpts of real music (README, "Similarity"): wav -> flac / mp3 / ogg
#: / m4a at the encoders' default quality and a 22.05 kHz resample stay at or
#: below 0.040; different recordings start at 0.071 (a very low bitrate copy of a
#: neighbouring passage of the same piece), other pairs at 0.10.
DUPLICATE_THRESHOLD = 0.06


def duration_tolerance(duration_sec: np.ndarray | float) -> np.ndarray | float:
    """How far apart two files of one recording may be in length: 0.5 s plus 0.5 %.

    Encoders pad or drop a few frames (MP3 and AAC add tens of milliseconds);
    a different edit of a song is a different recording.
    """
    return 0.5 + 0.005 * np.asarray(duration_sec)


def same_duration(a: float, b: float) -> bool:
    """Whether two lengths (seconds) could be one recording: within the shorter one's tolerance."""
    return cast(bool, abs(a - b) <= duration_tolerance(min(a, b)))  # a numpy bool at run time


def duplicate_features(params: FeatureParams = NOTEBOOK) -> np.ndarray:
    """Which features judge duplicates: mean and std of the mel bands that lie wholly
    below :data:`DUPLICATE_MAX_HZ`. Boolean mask, shape (params.dims,)."""
    from ..analysis.filters import hz_to_mel, mel_to_hz

    edges = mel_to_hz(
        np.linspace(hz_to_mel(np.array([0.0]))[0], hz_to_mel(np.array([params.sr / 2]))[0], params.n_mels + 2)
    )
    low = edges[2:] <= DUPLICATE_MAX_HZ  # upper edge of each band
    mask = np.zeros(params.dims, dtype=bool)
    mask[: params.n_mels] = low
    mask[params.n_mels : 2 * params.n_mels] = low
    return mask


class DupSpace:
    """Raw vectors to duplicate-comparison coordinates: the :func:`duplicate_features`
    z-scored and divided by sqrt(their number), so that the euclidean distance there is
    the root-mean-square z-score difference."""

    def __init__(self, space: Space, params: FeatureParams = NOTEBOOK):
        # The notebook's columns come first; any after them (the second set) are not used.
        self.mask = np.zeros(space.vectors.shape[1], dtype=bool)
        self.mask[: params.dims] = duplicate_features(params)
        self.mean = space.mean[self.mask]
        self.scale = 1.0 / (space.std[self.mask] * math.sqrt(self.mask.sum()))

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        return (np.asarray(raw, dtype=np.float64)[..., self.mask] - self.mean) * self.scale


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        a, b = self.find(i), self.find(j)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


def _lossless(codec: str | None, container: str | None) -> bool:
    codec, container = (codec or "").upper(), (container or "").upper()
    return (
        codec.startswith("PCM")
        or codec in ("FLAC", "ALAC", "FLOAT", "DOUBLE")
        or container in ("WAV", "FLAC", "AIFF", "AIFC", "W64", "RF64")
    )


def duplicates(
    file: LibraryFile, *, threshold: float = DUPLICATE_THRESHOLD, where: str | None = None
) -> list[list[dict]]:
    """Groups of tracks that are one recording in different files, most certain first.

    Two tracks are linked when their lengths agree (:func:`duration_tolerance`)
    and the RMS difference of their z-scored mel bands below 6 kHz is below
    ``threshold``; groups are the connected sets of links, ordered by their
    largest distance to their first file. In a group the first file is the best copy
    (lossless, then the largest); each member's ``distance`` is to it, and
    the others follow nearest first.

    Returns
    -------
    list of list of dict
        Each dict: ``group``, ``track_id``, ``path``, ``artist``, ``title``, ``album``
        (None when the file has no such tag), ``distance``, ``duration_sec``, ``codec``, ``size``.
    """
    if threshold <= 0:
        raise UsageError("--threshold must be positive.")
    with file.connect() as con:
        tracks = load_tracks(con, file.params)
        require_tracks(tracks, con)
        space = space_for(tracks, "notebook")
        keep = catalog.where_mask(con, space.track_ids, where)
        to_dup = DupSpace(space, file.params)
        pairs = _duplicate_pairs(space, to_dup, tracks.duration_sec, threshold, keep)
        if not pairs:
            return []
        members = sorted({i for p in pairs for i in p[:2]})
        ids = [int(space.track_ids[i]) for i in members]
        info = catalog.track_info(con, ids, ("path", "duration_sec", "codec", "container", "size"))
        words = track_words(con, ids)
    uf = _UnionFind(len(space))
    for i, j, _ in pairs:
        uf.union(i, j)
    groups: dict[int, list[int]] = {}
    for i in members:
        groups.setdefault(uf.find(i), []).append(i)
    out = []
    for rows in groups.values():

        def quality(i: int):
            path, _, codec, container, size = info[int(space.track_ids[i])]
            return (not _lossless(codec, container), -(size or 0), path)

        rows.sort(key=quality)
        coords = to_dup(space.vectors[rows])
        dist = np.linalg.norm(coords - coords[0], axis=1)
        order = np.lexsort((np.arange(len(rows)), dist))  # the best copy (distance 0) stays first
        rows, dist = [rows[k] for k in order], dist[order]
        group = []
        for i, d in zip(rows, dist):
            t = int(space.track_ids[i])
            path, dur, codec, _, size = info[t]
            group.append(
                {
                    "track_id": t,
                    "path": path,
                    **words[t],
                    "distance": float(d),
                    "duration_sec": dur,
                    "codec": codec,
                    "size": size,
                }
            )
        out.append(group)
    out.sort(key=lambda g: (max(m["distance"] for m in g), g[0]["path"]))
    for number, group in enumerate(out, 1):
        for m in group:
            m["group"] = number
    return out


def _duplicate_pairs(
    space: Space, to_dup: DupSpace, duration: np.ndarray, threshold: float, keep: np.ndarray | None = None
) -> list[tuple[int, int, float]]:
    """(row, row, distance) of every pair closer than ``threshold`` with agreeing durations.

    Rows are sorted by duration and each is compared only with the rows whose
    length could match, so the work grows with n times the number of tracks
    of about the same length, not n squared.
    """
    rows = np.arange(len(space)) if keep is None else np.flatnonzero(keep)
    order = rows[np.argsort(duration[rows], kind="stable")]
    dur = duration[order]
    pairs = []
    block = 512
    for a in range(0, len(order), block):
        b = min(len(order), a + block)
        hi = int(np.searchsorted(dur, dur[b - 1] + duration_tolerance(dur[b - 1]), side="right"))
        left = to_dup(space.vectors[order[a:b]])
        right = to_dup(space.vectors[order[a:hi]])
        d2 = (left**2).sum(1)[:, None] + (right**2).sum(1)[None, :] - 2.0 * left @ right.T
        ii, jj = np.nonzero(d2 < threshold**2 * 1.5)
        for i, j in zip(ii, jj):
            gi, gj = a + i, a + j
            if gj <= gi:
                continue
            if dur[gj] - dur[gi] > duration_tolerance(dur[gi]):  # sorted: dur[gi] is the shorter
                continue
            d = float(np.linalg.norm(left[i] - right[j]))
            if d < threshold:
                pairs.append((int(order[gi]), int(order[gj]), d))
    return pairs
