"""Duplicates: files that hold one recording (a wav and its mp3, a renamed copy).

Duplicates are judged in a fixed space of their own, whatever metric ranks
the neighbours: the root-mean-square difference of the z-scores of the mel
bands below 6 kHz, under :data:`DUPLICATE_THRESHOLD`, lengths agreeing.

Short clips (:data:`SHORT_CLIP_SECONDS`) are judged by their audio instead: a
low-bitrate copy of a 2-s sound moves those averages as far as a different
sound does, so two clips whose averages are within :data:`SHORT_GATE` are
decoded and their log-mel envelopes compared over time (:func:`clip_similarity`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import cast

import numpy as np

from ..analysis.envelope import (
    CLIP_SECONDS,
    ENVELOPE_HOP,
    ENVELOPE_SR,
    MAX_HZ,
    clip_envelope_of,
    decode_envelope,
    is_clip,
)
from ..analysis.params import NOTEBOOK, FeatureParams
from ..errors import UsageError
from ..store import catalog
from ..store.connection import LibraryFile
from ..store.envelopes import keep_envelopes, load_envelopes
from ..store.vectors import load_tracks
from ..store.words import track_words
from .neighbours import require_tracks
from .space import Space, space_for

__all__ = [
    "DUPLICATE_MAX_HZ",
    "DUPLICATE_THRESHOLD",
    "ENVELOPE_THRESHOLD",
    "SHORT_CLIP_SECONDS",
    "SHORT_GATE",
    "ClipEnvelopes",
    "DupSpace",
    "clip_envelope",
    "clip_similarity",
    "duplicate_features",
    "duplicates",
    "duration_tolerance",
    "same_duration",
]

#: Duplicates are judged on the mel bands below this frequency (Hz): lossy
#: codecs and resamplers change the top of the spectrum, not what is below.
DUPLICATE_MAX_HZ = MAX_HZ

#: Two tracks whose RMS z-score difference over those bands is below this (and
#: whose durations agree, see :func:`same_duration`) are one recording. Measured
#: on 20-s excerpts of real music (README, "Similarity"): wav -> flac / mp3 / ogg
#: / m4a at the encoders' default quality and a 22.05 kHz resample stay at or
#: below 0.040; different recordings start at 0.071 (a very low bitrate copy of a
#: neighbouring passage of the same piece), other pairs at 0.10.
DUPLICATE_THRESHOLD = 0.06

#: Pairs whose shorter file lasts this long (seconds, from, up to) are judged by
#: :func:`clip_similarity`. Measured on the 35 freedesktop sounds and 1-5 s excerpts of
#: 12 Wesnoth pieces, each transcoded to mp3 128k/64k, AAC 128k/64k, Vorbis q4/q0 and
#: Opus 64k/24k (benchmarks/bench_short_duplicates.py): copies of 1-5 s clips lay at
#: 0.01-0.56 in the mel-band space, different recordings from 0.055, so no threshold
#: there finds the copies without joining other sounds. Below 0.5 s the envelope has too
#: few frames to tell (the averages decide); from 10 s the averages do (README).
SHORT_CLIP_SECONDS = CLIP_SECONDS

#: Short clips closer than this in the mel-band space are compared by their audio
#: (copies measured up to 0.56), at the default threshold; the gate scales with
#: ``threshold`` (10 times it), so a smaller --threshold is stricter for clips too.
SHORT_GATE = 0.6

#: Two short clips are one recording when :func:`clip_similarity` reaches this. Copies
#: measured: median 0.96, 1st percentile 0.68 (two very low bitrate copies compared with
#: each other; each is above it with the better copies); different recordings at most
#: 0.80 (one voice saying "front left" and "front right").
ENVELOPE_THRESHOLD = 0.82

_MAX_LAG_SEC = 0.3  # encoders shift the start by tens of milliseconds


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


def clip_envelope(path: str) -> np.ndarray:
    """The envelope of a file for :func:`clip_similarity`, decoded now: what the library keeps
    (:func:`stored_envelope`) as compared (:func:`audiodb.analysis.envelope.decode_envelope`).
    Shape (frames, bands), float64.

    Raises :class:`audiodb.errors.DecodeError` (or OSError) when the file cannot be read.
    """
    return decode_envelope(stored_envelope(path))


def stored_envelope(path: str) -> np.ndarray:
    """The envelope the library keeps of a clip: :func:`audiodb.analysis.envelope.clip_envelope_of`
    of the file decoded at 22.05 kHz mono. Shape (frames, bands), uint8."""
    from ..analysis.decode import load

    return clip_envelope_of(load(path, sr=ENVELOPE_SR).y)


def clip_similarity(a: np.ndarray, b: np.ndarray, max_lag_sec: float = _MAX_LAG_SEC) -> float:
    """How alike two :func:`clip_envelope` are over time: the largest correlation of
    their log-mel envelopes with one shifted by up to ``max_lag_sec`` against the other
    (1: the same; copies of a recording measured above 0.9, different sounds at most 0.8)."""
    lag = _lag_frames(max_lag_sec)
    size = _fft_size(max(len(a), len(b)), lag)
    return _best_correlation(_spectrum(a, size), _spectrum(b, size)[None], size, lag)[0]


def _lag_frames(max_lag_sec: float) -> int:
    return int(round(max_lag_sec * ENVELOPE_SR / ENVELOPE_HOP))


def _fft_size(frames: int, lag: int) -> int:
    """The transform length that gives the circular correlation of two envelopes of up to
    ``frames`` frames exactly at every shift up to ``lag`` (no wrap-around there)."""
    return 1 << int(np.ceil(np.log2(max(2, frames + lag + 1))))


def _spectrum(env: np.ndarray, size: int) -> np.ndarray:
    """Each band's FFT over time, zero-padded to ``size``: shape (size // 2 + 1, bands)."""
    return np.fft.rfft(env, size, axis=0)


def _best_correlation(fa: np.ndarray, fbs: np.ndarray, size: int, lag: int) -> list[float]:
    """:func:`clip_similarity` of one envelope's :func:`_spectrum` against several (m, f, bands).

    The correlation summed over bands is the inverse transform of the band-summed cross
    spectra (the transform is linear), so one 1-D inverse per pair instead of one per band.
    Conjugating the one spectrum and then the (m, f) sums, not the m spectra, gives the same
    numbers bit for bit (a conjugate is a sign) without copying the batch.
    """
    cross = np.conj(np.einsum("fk,mfk->mf", np.conj(fa), fbs))
    corr = np.fft.irfft(cross, size, axis=1)
    best = corr[:, : lag + 1].max(axis=1)
    if lag:
        best = np.maximum(best, corr[:, -lag:].max(axis=1))
    return [float(x) for x in best]


class ClipEnvelopes:
    """:func:`clip_envelope` of each row, read once a run, and its :func:`_spectrum`
    (by transform length); None for a file that cannot be read. The envelopes the library
    keeps (``stored``: given the rows needed, their kept envelopes by row, read by :meth:`prefetch`)
    are used as they are; a clip without one is decoded, and its envelope is in :attr:`fresh`
    (row -> :func:`stored_envelope`) for the caller to keep. :meth:`drop` frees a row's once no
    later pair needs it."""

    def __init__(self, paths: dict[int, str], stored: Callable[[list[int]], dict[int, np.ndarray]] | None = None):
        self.paths = paths
        self.stored_reader = stored
        self.stored: dict[int, np.ndarray] = {}
        self.cache: dict[int, np.ndarray | None] = {}
        self.spectra: dict[tuple[int, int], np.ndarray] = {}
        self.fresh: dict[int, np.ndarray] = {}  # envelopes decoded this run, to keep

    def prefetch(self, rows: list[int]) -> None:
        """Read the stored envelopes of ``rows`` (those that have one) in one go."""
        if self.stored_reader is not None and rows:
            self.stored.update(self.stored_reader(rows))

    def __call__(self, row: int) -> np.ndarray | None:
        if row not in self.cache:
            from ..errors import DecodeError
            from ..paths import from_stored

            if row in self.stored:
                self.cache[row] = decode_envelope(self.stored[row])
                return self.cache[row]
            try:
                self.fresh[row] = stored_envelope(from_stored(self.paths[row]))
                self.cache[row] = decode_envelope(self.fresh[row])
            except (DecodeError, OSError, ValueError):
                self.cache[row] = None
        return self.cache[row]

    def spectrum(self, row: int, size: int) -> np.ndarray:
        key = (row, size)
        if key not in self.spectra:
            env = self(row)
            assert env is not None
            self.spectra[key] = _spectrum(env, size)
        return self.spectra[key]

    def drop(self, row: int) -> None:
        self.cache.pop(row, None)
        self.stored.pop(row, None)
        for key in [k for k in self.spectra if k[0] == row]:
            del self.spectra[key]

    def similar(self, row: int, others: list[int], threshold: float) -> list[bool]:
        """Whether :func:`clip_similarity` of ``row`` and each of ``others`` (all readable)
        reaches ``threshold``, computed from each file's spectra, a batch at a time."""
        lag = _lag_frames(_MAX_LAG_SEC)
        env = self(row)
        assert env is not None
        sizes = [_fft_size(max(len(env), len(self(o))), lag) for o in others]  # type: ignore[arg-type]
        out = [False] * len(others)
        for size in sorted(set(sizes)):
            picked = [k for k, s in enumerate(sizes) if s == size]
            fa = self.spectrum(row, size)
            for start in range(0, len(picked), 64):  # a batch of spectra: 64 x (f, bands) complex
                batch = picked[start : start + 64]
                fbs = np.stack([self.spectrum(others[k], size) for k in batch])
                for k, value in zip(batch, _best_correlation(fa, fbs, size, lag)):
                    out[k] = value >= threshold
        return out


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
    file: LibraryFile,
    *,
    threshold: float = DUPLICATE_THRESHOLD,
    where: str | None = None,
    audio_check: bool = True,
) -> list[list[dict]]:
    """Groups of tracks that are one recording in different files, most certain first.

    Two tracks are linked when their lengths agree (:func:`duration_tolerance`)
    and the RMS difference of their z-scored mel bands below 6 kHz is below
    ``threshold``; groups are the connected sets of links, ordered by their
    largest distance to their first file. Pairs whose shorter file is a short clip
    (:data:`SHORT_CLIP_SECONDS`) are decided by their audio instead, when both files
    can be read (:func:`clip_similarity`; ``audio_check`` False: by ``threshold``
    alone, as before). In a group the first file is the best copy
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
        short = np.flatnonzero([is_clip(float(d)) for d in tracks.duration_sec])
        short_paths = catalog.track_info(con, [int(space.track_ids[i]) for i in short], ("path",))
    envelopes = None
    if audio_check:

        def stored(rows: list[int]) -> dict[int, np.ndarray]:
            ids = {int(space.track_ids[r]): r for r in rows}
            with file.connect() as con:
                return {ids[t]: env for t, env in load_envelopes(con, list(ids)).items()}

        envelopes = ClipEnvelopes({int(i): short_paths[int(space.track_ids[i])][0] for i in short}, stored)
    pairs = _duplicate_pairs(space, to_dup, tracks.duration_sec, threshold, keep, envelopes=envelopes)
    if envelopes is not None and envelopes.fresh:
        keep_envelopes(file, {int(space.track_ids[r]): env for r, env in envelopes.fresh.items()})
    with file.connect() as con:
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
    space: Space,
    to_dup: DupSpace,
    duration: np.ndarray,
    threshold: float,
    keep: np.ndarray | None = None,
    *,
    envelopes: ClipEnvelopes | None = None,
) -> list[tuple[int, int, float]]:
    """(row, row, distance) of every pair that is one recording, durations agreeing.

    A pair is closer than ``threshold``; or, with ``envelopes`` (each row's
    :func:`clip_envelope`, read once) and a shorter file of
    :data:`SHORT_CLIP_SECONDS`, closer than :data:`SHORT_GATE` (scaled by ``threshold`` /
    :data:`DUPLICATE_THRESHOLD`) with a
    :func:`clip_similarity` of at least :data:`ENVELOPE_THRESHOLD` (the threshold
    decides for a clip that cannot be read). Identical vectors always pair.

    Rows are sorted by duration and each is compared only with the rows whose
    length could match, so the work grows with n times the number of tracks
    of about the same length, not n squared.
    """
    rows = np.arange(len(space)) if keep is None else np.flatnonzero(keep)
    order = rows[np.argsort(duration[rows], kind="stable")]
    gate = SHORT_GATE * threshold / DUPLICATE_THRESHOLD
    dur = duration[order]
    pairs = []
    # Short pairs to check by their audio, by the shorter (earlier) row: rows are visited
    # shortest first, so once a row's pairs are checked its envelope is not needed again.
    pending: dict[int, list[tuple[int, float]]] = {}
    block = 512
    for a in range(0, len(order), block):
        b = min(len(order), a + block)
        hi = int(np.searchsorted(dur, dur[b - 1] + duration_tolerance(dur[b - 1]), side="right"))
        left = to_dup(space.vectors[order[a:b]])
        right = to_dup(space.vectors[order[a:hi]])
        ln, rn = (left**2).sum(1), (right**2).sum(1)
        d2 = ln[:, None] + rn[None, :] - 2.0 * left @ right.T
        # d2 loses digits to cancellation (about 1e-16 of the norms): identical vectors
        # may come out a little above 0, so the bound allows for it.
        slack = 1e-9 * (ln[:, None] + rn[None, :]) + 1e-12
        limit: float | np.ndarray = threshold
        if envelopes is not None:
            limit = np.where([is_clip(float(x)) for x in dur[a:b]], max(threshold, gate), threshold)[:, None]
        ii, jj = np.nonzero(d2 < limit**2 * 1.5 + slack)
        for i, j in zip(ii, jj):
            gi, gj = a + i, a + j
            if gj <= gi:
                continue
            if dur[gj] - dur[gi] > duration_tolerance(dur[gi]):  # sorted: dur[gi] is the shorter
                continue
            d = float(np.linalg.norm(left[i] - right[j]))
            ri, rj = int(order[gi]), int(order[gj])
            if envelopes is not None and is_clip(float(dur[gi])) and d < gate:
                pending.setdefault(gi, []).append((gj, d))
                continue
            if d < threshold:
                pairs.append((ri, rj, d))
    if envelopes is not None:
        pairs += _checked_by_audio(order, pending, envelopes, threshold)
    return pairs


def _checked_by_audio(
    order: np.ndarray, pending: dict[int, list[tuple[int, float]]], envelopes: ClipEnvelopes, threshold: float
) -> list[tuple[int, int, float]]:
    """The pending short pairs (sorted position -> [(later position, distance)]) that are one
    recording: identical vectors, or a :func:`clip_similarity` of at least
    :data:`ENVELOPE_THRESHOLD`; a pair with a file that cannot be read is decided by ``threshold``."""
    pairs = []
    envelopes.prefetch(sorted({int(order[g]) for gi, later in pending.items() for g in (gi, *(gj for gj, _ in later))}))
    held: set[int] = set()  # positions whose envelopes may be cached
    for gi in sorted(pending):
        ri = int(order[gi])
        checked = []
        for gj, d in pending[gi]:
            rj = int(order[gj])
            held.add(gj)
            if envelopes(ri) is None or envelopes(rj) is None:
                if d < threshold:
                    pairs.append((ri, rj, d))
            elif d == 0.0:
                pairs.append((ri, rj, d))
            else:
                checked.append((rj, d))
        if checked:
            same = envelopes.similar(ri, [rj for rj, _ in checked], ENVELOPE_THRESHOLD)
            pairs += [(ri, rj, d) for (rj, d), ok in zip(checked, same) if ok]
        envelopes.drop(ri)
        # Later rows pair only with rows after them: what lies before gi is not needed again.
        for g in [g for g in held if g < gi]:
            envelopes.drop(int(order[g]))
        held = {g for g in held if g > gi}
    return pairs
