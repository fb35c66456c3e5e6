"""The searched segments cached beside the library (audiodb.store.segment_cache) and the search's
fast paths (Space.min_distances, merge_moments' candidate cut) give what the plain ones give."""

from __future__ import annotations

import os

import numpy as np
from audio import write_audio

from audiodb import Library
from audiodb.query.moments import METRIC, merge_moments
from audiodb.query.space import Space
from audiodb.store import segment_cache
from audiodb.store import segments as segment_store

SR = 22050


def _recording(seed: int, seconds: float = 12.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = rng.standard_normal(int(seconds * SR)) * 0.01
    t = np.arange(int(0.5 * SR)) / SR
    for at in (2.0, 6.0, 9.5):
        f = 1500 + 800 * seed + 300 * t
        a = int(at * SR)
        y[a : a + len(t)] += 0.3 * np.sin(2 * np.pi * np.cumsum(f) / SR) * np.hanning(len(t))
    return y.astype(np.float32)


def _files(lib):
    return sorted(os.listdir(segment_cache.cache_dir(lib.file.path)))


def test_the_cache_is_rebuilt_when_segments_change_and_searches_agree_with_duckdb(tmp_path):
    rec = tmp_path / "rec"
    rec.mkdir()
    for k in range(2):
        write_audio(rec / f"r{k}.wav", _recording(k), SR)
    lib = Library(tmp_path / "lib.duckdb")
    lib.scan([rec], segments="calls", workers=1)
    query = f"{rec / 'r0.wav'}@2.0-2.5"
    first = lib.similar_moments(query, n=5)
    files = _files(lib)
    assert len([f for f in files if f.endswith(".npy")]) == 1 and any(f.endswith(".stats.npz") for f in files)
    with lib.file.connect() as con:
        seg = segment_store.registered(con)[0]
        rows, saved, _ = segment_cache.cached_segments(lib.file.path, con, seg.id, seg.dims, active_only=True)
        plain = segment_store.load_segments(con, seg.id, active_only=True)
    assert isinstance(rows["vectors"], np.memmap)
    for k in ("track_ids", "seg_index", "start_ms", "end_ms", "active", "vectors"):
        np.testing.assert_array_equal(rows[k], getattr(plain, k))
    assert lib.similar_moments(query, n=5) == first  # from the cache, with its statistics
    # A file re-analysed (another sound): a new version; the old files are gone, the results follow.
    write_audio(rec / "r1.wav", _recording(5), SR)
    os.utime(rec / "r1.wav", (1, 1))
    lib.scan([rec], workers=1)
    again = lib.similar_moments(query, n=5)
    assert _files(lib) != files and len([f for f in _files(lib) if f.endswith(".npy")]) == 1
    with lib.file.connect() as con:
        plain = segment_store.load_segments(con, seg.id, active_only=True)
    space = Space(np.arange(len(plain.track_ids)), plain.vectors, METRIC, seg.feature_names())
    own = plain.track_ids == plain.track_ids[0]
    hit = own & (plain.start_ms < 2500) & (plain.end_ms > 2000)
    best = space.min_distances(plain.vectors[hit])
    best[hit] = np.inf
    expected = merge_moments(plain.track_ids, plain.start_ms, plain.end_ms, best, 5)
    assert [(r["track_id"], r["start_sec"]) for r in again] == [(m.track_id, m.start_ms / 1000) for m in expected]
    np.testing.assert_allclose([r["distance"] for r in again], [m.distance for m in expected], rtol=1e-5)


def test_a_library_whose_folder_cannot_hold_the_cache_still_searches(tmp_path):
    rec = tmp_path / "rec"
    rec.mkdir()
    write_audio(rec / "r.wav", _recording(0), SR)
    lib = Library(tmp_path / "lib.duckdb")
    lib.scan([rec], segments="calls", workers=1)
    with open(segment_cache.cache_dir(lib.file.path), "w") as f:  # a file where the folder would go
        f.write("not a folder")
    rows = lib.similar_moments(f"{rec / 'r.wav'}@2.0-2.5", n=3)
    assert rows and all(r["start_sec"] >= 5 for r in rows)


def test_min_distances_is_the_minimum_of_distances_for_every_metric():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3000, 24)).astype(np.float32) * rng.uniform(0.1, 10, 24).astype(np.float32)
    names = [f"mel_mean_{i}" for i in range(12)] + [f"mfcc_mean_{i}" for i in range(12)]
    for metric in ("notebook", "cosine", "blocks", "extended"):
        space = Space(np.arange(len(X)), X, metric, names)
        Q = X[[3, 70, 900]] + 0.05
        ref = np.min([space.distances(q) for q in Q], axis=0)
        np.testing.assert_allclose(space.min_distances(Q), ref, rtol=1e-4, atol=1e-5)
        again = Space(np.arange(len(X)), X, metric, names, stats=space.stats())
        np.testing.assert_array_equal(again.distances(Q[0]), space.distances(Q[0]))


def _reference_merge(track_ids, start_ms, end_ms, distance, n):
    """merge_moments as it was before the candidate cut: every finite window, nearest first."""
    ok = np.flatnonzero(np.isfinite(distance))
    order = ok[np.lexsort((start_ms[ok], track_ids[ok], distance[ok]))]
    by_track, found = {}, []
    for i in order:
        t, a, b, d = int(track_ids[i]), int(start_ms[i]), int(end_ms[i]), float(distance[i])
        moments = by_track.setdefault(t, [])
        touching = [m for m in moments if a <= m[1] and b >= m[0]]
        if touching:
            touching[0][0] = min([a] + [m[0] for m in touching])
            touching[0][1] = max([b] + [m[1] for m in touching])
            for m in touching[1:]:
                moments.remove(m)
                found.remove(m)
            continue
        if len(found) >= n:
            break
        m = [a, b, d, t]
        moments.append(m)
        found.append(m)
    return sorted((t, a, b, d) for a, b, d, t in found)


def test_merge_over_the_nearest_candidates_equals_the_merge_over_all_windows():
    rng = np.random.default_rng(1)
    n = 20000
    track = rng.integers(0, 40, n)
    start = rng.integers(0, 2000, n) * 500
    dist = np.round(rng.uniform(0, 5, n), 2)  # many ties
    dist[rng.random(n) < 0.1] = np.inf
    for k in (1, 10, 50, 400):
        got = merge_moments(track, start, start + 1000, dist, k)
        assert len(got) == k
        assert sorted((m.track_id, m.start_ms, m.end_ms, m.distance) for m in got) == _reference_merge(
            track, start, start + 1000, dist, k
        )
