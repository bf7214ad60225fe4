"""The generated task distributions: at least 30, distinct, seeded, and of different difficulty."""

from __future__ import annotations

import pytest
import torch

from metadl.experiments.metafeatures import distribution_features
from metadl.tune.distributions import CLASSES, find_distribution, task_distributions


def test_there_are_36_distinct_distributions_with_their_own_glyphs() -> None:
    dists = task_distributions()
    assert len(dists) == 36 >= 30
    assert len({d.name for d in dists}) == len({d.glyph_seed for d in dists}) == 36
    assert {(d.ways, d.shots) for d in dists} == {(5, 1), (5, 5), (10, 1)}
    assert find_distribution(dists[7].name) == dists[7]
    with pytest.raises(ValueError, match="unknown task distribution"):
        find_distribution("glyphs-impossible")


def test_splits_are_seeded_disjoint_and_sized() -> None:
    dist = task_distributions()[1]
    a, b = dist.splits(), dist.splits()
    assert all(torch.equal(a[s].data, b[s].data) for s in CLASSES)
    assert {s: a[s].num_classes for s in CLASSES} == CLASSES
    assert a["train"].x_shape == (1, dist.image_size, dist.image_size)
    assert not torch.equal(a["train"].data[:10], a["test"].data[:10])


@pytest.mark.usefixtures("one_thread")
def test_difficulty_shows_in_the_landmarker() -> None:
    """The easy style's nearest-prototype accuracy is well above the hard one's (same pen, size and shape)."""
    by_name = {d.name: d for d in task_distributions()}
    scores = {}
    for level in ("easy", "hard"):
        dist = by_name[f"glyphs-{level}-thick-16px-5w1s"]
        features = distribution_features(dist.split("test"), ways=5, shots=1, queries=5, episodes=20)
        assert features.landmark_raw is not None
        scores[level] = features.landmark_raw
    assert scores["easy"] > scores["hard"] + 0.1
