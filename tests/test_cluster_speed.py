"""A fast ``cluster``: umap's compiled code kept between processes, ``--k auto``'s range
scaled with the library (and a note at its edges), and the stages said while it works."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from audiodb.query import cluster as C
from audiodb.query.kchoice import choose_k, k_auto_range, tie_note


def blobs(groups: int, per_group: int, dims: int = 12, seed: int = 0) -> np.ndarray:
    """``groups`` tight, well-separated groups of ``per_group`` points each."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=10.0, size=(groups, dims))
    return np.repeat(centres, per_group, axis=0) + rng.normal(scale=0.1, size=(groups * per_group, dims))


# --------------------------------------------------------------------------- --k auto


def test_k_auto_range_keeps_2_to_10_for_small_libraries_and_grows_with_larger_ones():
    assert k_auto_range(5) == range(2, 5)  # at most tracks - 1
    assert k_auto_range(28) == range(2, 11)  # the demo: as before
    assert k_auto_range(56) == range(2, 15)  # 2·√56 = 14.97
    assert k_auto_range(60) == range(2, 16)
    assert k_auto_range(100_000) == range(2, 31)  # capped


def test_k_auto_finds_more_than_ten_groups_when_the_library_is_larger():
    run = C.cluster_vectors(blobs(12, 5), method="kmeans")
    assert run.parameters["k"] == 12 and sorted(map(int, run.parameters["k_scores"])) == list(range(2, 16))
    assert not any("--k auto chose" in line for line in run.advice)


def test_k_auto_says_when_its_choice_is_the_largest_it_tried():
    run = C.cluster_vectors(blobs(20, 3), method="kmeans")  # 20 groups, 60 tracks: tries 2..15
    assert run.parameters["k"] == 15
    (note,) = [line for line in run.advice if "--k auto chose" in line]
    assert "k=15, the largest it tried (2..15)" in note and "--k 17" in note


def test_k_auto_says_when_its_choice_is_the_smallest_it_tried():
    run = C.cluster_vectors(blobs(2, 15), method="kmeans")
    assert run.parameters["k"] == 2
    (note,) = [line for line in run.advice if "--k auto chose" in line]
    assert "the smallest it tried (2..10)" in note and "--method hdbscan" in note


def test_a_given_k_gets_no_note():
    run = C.cluster_vectors(blobs(2, 15), method="kmeans", k=2)
    assert not any("--k auto chose" in line for line in run.advice)


def test_k_auto_finds_the_known_number_of_groups_and_says_nothing_more():
    for groups, per_group in ((3, 10), (7, 8), (9, 4)):
        run = C.cluster_vectors(blobs(groups, per_group, dims=180, seed=groups), method="kmeans")
        assert run.parameters["k"] == groups
        assert not any("--k auto chose" in line for line in run.advice), run.advice


def test_k_auto_says_which_k_it_cannot_tell_from_its_choice():
    """Points with no groups at all: several k score alike, within the noise, and the note names them."""
    X = np.random.default_rng(1).uniform(size=(60, 2))
    best, scores, ties = choose_k(C.standardize(X), k_auto_range(60))
    assert ties and best not in ties and set(ties) <= set(scores)
    run = C.cluster_vectors(X, method="kmeans")
    assert run.parameters["k"] == best
    (note,) = [line for line in run.advice if "within one standard error" in line]
    assert note.startswith(f"--k auto chose k={best}, but k=") and f"--k {min(ties)}." in note
    assert tie_note(8, [7, 9]) is not None and "k=7 and 9 score" in tie_note(8, [7, 9])
    assert tie_note(8, []) is None


@pytest.mark.slow
def test_the_note_on_the_choice_of_k_is_shown_by_the_command(cli, db_path, tmp_path):
    """Two kinds of sound, three of each: --k auto chooses 2, the smallest k it tries, and the command says so."""
    import shutil

    from audiodb import Library
    from audiodb.demo import KINDS, write_demo_library

    write_demo_library(tmp_path / "audio", n_per_kind=3)
    for kind in set(KINDS) - {"tones", "noise"}:
        shutil.rmtree(tmp_path / "audio" / kind)
    assert Library(db_path).scan([tmp_path / "audio"], workers=1).added == 6
    result = cli("--db", db_path, "cluster", "--method", "kmeans")
    assert "kmeans run 1 (k=2 (auto)" in result.stdout
    assert "--k auto chose k=2, the smallest it tried (2..5)" in result.stderr


# --------------------------------------------------------------------------- stages


def test_each_stage_is_said_as_it_starts():
    seen: list[str] = []
    C.cluster_vectors(blobs(4, 5), method="kmeans", space="pca", on_stage=seen.append)
    C.cluster_vectors(blobs(4, 5), method="hdbscan", space="pca", on_stage=seen.append)
    assert seen == [
        "kmeans: reducing 20 tracks with PCA…",
        "kmeans: choosing k among 2..10 by silhouette…",
        "kmeans: clustering with k = 4…",
        "hdbscan: reducing 20 tracks with PCA…",
        "hdbscan: clustering…",
    ]


# --------------------------------------------------------------------------- umap's numba cache

RUN_UMAP = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from audiodb.query import cluster as C
    rng = np.random.default_rng(0)
    X = np.repeat(rng.normal(scale=10.0, size=(4, 12)), 6, axis=0) + rng.normal(scale=0.1, size=(24, 12))
    run = C.cluster_vectors(X, method="hdbscan", space="umap")
    import umap.umap_
    stats = umap.umap_.smooth_knn_dist.stats
    print(json.dumps({"labels": run.labels.tolist(), "hits": sum(stats.cache_hits.values())}))
    """
)


@pytest.mark.slow
def test_umaps_compiled_code_is_kept_and_used_by_the_next_process(tmp_path):
    """A new process loads umap's numba code from the cache the first one wrote, and clusters alike."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}

    def run() -> dict:
        done = subprocess.run([sys.executable, "-c", RUN_UMAP], env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    first = run()
    kept = {p.name.split("-")[0] for p in (tmp_path / "numba").rglob("*.nbi") if "umap" in str(p.parent)}
    assert {"umap_.smooth_knn_dist", "umap_.compute_membership_strengths"} <= kept, sorted(kept)
    assert any(name.startswith("layouts.") for name in kept), sorted(kept)
    second = run()
    assert first["hits"] == 0 and second["hits"] >= 1
    assert second["labels"] == first["labels"]


# --------------------------------------------------------------------------- pynndescent only when used

NO_PYNNDESCENT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from audiodb.maps.projection import project
    from audiodb.query import cluster as C
    rng = np.random.default_rng(0)
    X = np.repeat(rng.normal(scale=10.0, size=(4, 12)), 6, axis=0) + rng.normal(scale=0.1, size=(24, 12))
    run = C.cluster_vectors(X, method="hdbscan", space="umap")
    project(C.standardize(X), "umap")
    loaded = sorted(name for name in sys.modules if name.startswith("pynndescent"))
    import umap.umap_ as U
    known = "euclidean" in U.pynn_named_distances  # answered without importing pynndescent
    still = sorted(name for name in sys.modules if name.startswith("pynndescent"))
    print(json.dumps({"loaded": loaded + still, "known": known, "clusters": run.n_clusters}))
    """
)


def test_a_small_library_is_clustered_and_mapped_with_umap_without_importing_pynndescent():
    """pynndescent's import compiles ~1,200 numba functions (17 s of CPU on a fresh install); exact neighbours
    do not need it."""
    done = subprocess.run([sys.executable, "-c", NO_PYNNDESCENT], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got == {"loaded": [], "known": True, "clusters": 4}


ON_DEMAND = textwrap.dedent(
    """
    import json
    from audiodb.query.compiled import import_umap
    umap = import_umap()
    U = umap.umap_
    import pynndescent
    from pynndescent.distances import named_distances
    import numpy as np
    X = np.random.default_rng(0).normal(size=(60, 3)).astype(np.float32)
    index = U.NNDescent(X, n_neighbors=5, random_state=0)
    print(json.dumps({
        "real": type(index) is pynndescent.NNDescent,
        "isinstance": isinstance(index, U.NNDescent),
        "same": U.pynn_named_distances["cosine"] is named_distances["cosine"],
        "keys": sorted(U.pynn_named_distances) == sorted(named_distances),
    }))
    """
)


@pytest.mark.slow
def test_pynndescent_s_names_in_umap_are_the_real_ones_when_used():
    """Above the exact-neighbour sizes umap needs pynndescent: the stand-ins import it and give the real things."""
    done = subprocess.run([sys.executable, "-c", ON_DEMAND], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "real": True,
        "isinstance": True,
        "same": True,
        "keys": True,
    }


ANOTHER_UMAP = textwrap.dedent(
    """
    import json
    from audiodb.query import compiled
    # An umap that imports a fourth name from pynndescent: the stand-ins cannot serve it.
    compiled.PYNNDESCENT_NAMES = {k: v for k, v in compiled.PYNNDESCENT_NAMES.items() if k != "pynndescent.sparse"}
    umap = compiled.import_umap()
    import pynndescent.sparse
    print(json.dumps({"real": umap.umap_.pynn_sparse_named_distances is pynndescent.sparse.sparse_named_distances,
                      "fit": umap.UMAP is not None}))
    """
)


@pytest.mark.slow
def test_an_umap_the_stand_ins_cannot_serve_is_imported_as_it_always_was():
    """If umap's imports from pynndescent change, the import falls back to the plain one (compiling pynndescent)."""
    done = subprocess.run([sys.executable, "-c", ANOTHER_UMAP], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"real": True, "fit": True}
