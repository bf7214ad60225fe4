"""Clustering accuracy, NMI and ARI against scikit-learn and a brute-force matching."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from metadl.evaluation.clustering import (
    adjusted_rand_index,
    cluster_matching,
    clustering_accuracy,
    normalized_mutual_info,
    score_partition,
)

# (clusters, classes): hand-made partitions, including more clusters than classes and fewer.
PARTITIONS = [
    ([0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 2, 2]),
    ([2, 2, 0, 0, 1, 1], [0, 0, 1, 1, 2, 2]),
    ([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 2, 2]),
    ([0, 1, 2, 3, 4, 5], [0, 0, 1, 1, 2, 2]),  # k = 6 > 3 classes
    ([0, 0, 0, 0, 0, 0], [0, 0, 1, 1, 2, 2]),
    ([5, 5, 9, 9, 9, 1, 1, 1, 7], [0, 0, 0, 1, 1, 1, 2, 2, 2]),  # 4 clusters, 3 classes, odd ids
    ([0, 1, 0, 1, 0, 1, 0, 1], [0, 0, 0, 0, 1, 1, 1, 1]),  # independent: NMI 0, ARI < 0
]


def brute_force_accuracy(clusters: list[int], classes: list[int]) -> float:
    """Try every injective map of the smaller side into the larger one."""
    u, v = sorted(set(clusters)), sorted(set(classes))
    best = 0
    if len(u) <= len(v):
        for image in itertools.permutations(v, len(u)):
            m = dict(zip(u, image, strict=True))
            best = max(best, sum(m[c] == y for c, y in zip(clusters, classes, strict=True)))
    else:
        for image in itertools.permutations(u, len(v)):
            m = dict(zip(image, v, strict=True))
            best = max(best, sum(m.get(c) == y for c, y in zip(clusters, classes, strict=True)))
    return best / len(classes)


@pytest.mark.parametrize(("clusters", "classes"), PARTITIONS)
def test_scores_match_sklearn_and_brute_force(clusters: list[int], classes: list[int]) -> None:
    assert clustering_accuracy(clusters, classes) == pytest.approx(brute_force_accuracy(clusters, classes))
    assert normalized_mutual_info(clusters, classes) == pytest.approx(
        normalized_mutual_info_score(classes, clusters), abs=1e-12
    )
    assert adjusted_rand_index(clusters, classes) == pytest.approx(
        adjusted_rand_score(classes, clusters), abs=1e-12
    )


def test_random_partitions_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    for _ in range(30):
        n = int(rng.integers(2, 60))
        classes = rng.integers(0, int(rng.integers(1, 8)), n)
        clusters = rng.integers(0, int(rng.integers(1, 12)), n)
        assert normalized_mutual_info(clusters, classes) == pytest.approx(
            normalized_mutual_info_score(classes, clusters), abs=1e-10
        )
        assert adjusted_rand_index(clusters, classes) == pytest.approx(
            adjusted_rand_score(classes, clusters), abs=1e-10
        )
        if n <= 9:
            assert clustering_accuracy(clusters, classes) == pytest.approx(
                brute_force_accuracy(clusters.tolist(), classes.tolist())
            )


def test_more_clusters_than_classes_counts_unmatched_as_errors() -> None:
    # 3 classes of 4; each class split in two clusters of 2: only one half per class is matched.
    classes = [0] * 4 + [1] * 4 + [2] * 4
    clusters = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert clustering_accuracy(clusters, classes) == pytest.approx(0.5)
    assert len(cluster_matching(clusters, classes)) == 3


def test_tensors_and_scores_dataclass() -> None:
    s = score_partition(torch.tensor([1, 1, 0, 0]), torch.tensor([0, 0, 1, 1]))
    assert (s.accuracy, s.ari, s.k, s.classes) == (1.0, 1.0, 2, 2) and s.nmi == pytest.approx(1.0)


def test_bad_input_is_one_line_error() -> None:
    with pytest.raises(ValueError, match="2 cluster ids but 3 class labels"):
        clustering_accuracy([0, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="integers"):
        clustering_accuracy([0.5, 1.0], [0, 1])
    with pytest.raises(ValueError, match="empty"):
        clustering_accuracy([], [])
