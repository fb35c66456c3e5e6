"""Group weights are applied one way: Space weighs squared differences by ``group_weights``;
cluster and the maps scale z-scored columns by ``group_scale`` (its square root). Both give the
same distances, so a map's or a clustering's neighbourhoods are those of ``audiodb similar``."""

from __future__ import annotations

import numpy as np

from audiodb.analysis.params import EXTENDED, NOTEBOOK
from audiodb.query.space import Space, group_scale, group_weights, standardize


def test_cluster_and_map_scaling_gives_the_distances_of_the_extended_metric():
    rng = np.random.default_rng(7)
    names = NOTEBOOK.feature_names() + EXTENDED.feature_names()
    X = (rng.standard_normal((40, len(names))) * rng.uniform(0.1, 50, len(names))).astype(np.float32)
    space = Space(np.arange(40), X, "extended", names)
    from_space = space.distances(X[3])
    scaled = standardize(X) * group_scale(names)
    by_scaling = np.linalg.norm(scaled - scaled[3], axis=1)
    # (the self-distance is float32 cancellation in Space's one matrix-vector product: about 3e-4)
    np.testing.assert_allclose(by_scaling, from_space, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(group_scale(names) ** 2, group_weights(names), rtol=1e-12)
