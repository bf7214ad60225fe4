"""The silhouette against scikit-learn, and the best-silhouette estimate of k on blobs."""

from __future__ import annotations

import pytest
import torch
from sklearn.metrics import silhouette_score

from metadl.algorithms.clustering_steps import ClusteringError
from metadl.algorithms.estimate_k import estimate_k, silhouette


@pytest.mark.parametrize("seed", range(10))
def test_silhouette_matches_scikit_learn_on_random_partitions(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    n, k = 40, 2 + seed % 5
    z = torch.randn(n, 3, generator=g)  # float32: scikit-learn computes its distances in float32
    labels = torch.randint(k, (n,), generator=g)
    labels[:k] = torch.arange(k)  # every cluster non-empty; some may be singletons
    labels[k] = 0
    assert silhouette(z, labels) == pytest.approx(silhouette_score(z.numpy(), labels.numpy()), abs=1e-6)


def test_silhouette_gives_singletons_zero_and_ignores_label_values() -> None:
    z = torch.tensor([[0.0], [1.0], [10.0]])
    # sample 2 is alone: s = 0; samples 0 and 1: a = 1, b = 10 and 9 -> s = 0.9 and 8/9
    expected = (0.9 + 8 / 9 + 0.0) / 3
    assert silhouette(z, torch.tensor([7, 7, 3])) == pytest.approx(expected)


def test_silhouette_refuses_one_cluster_or_all_singletons() -> None:
    with pytest.raises(ClusteringError, match="2 to n - 1"):
        silhouette(torch.randn(4, 2), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ClusteringError, match="2 to n - 1"):
        silhouette(torch.randn(4, 2), torch.arange(4))


@pytest.mark.parametrize("true_k", [2, 4, 9])
def test_estimate_k_recovers_the_number_of_separated_blobs(true_k: int) -> None:
    g = torch.Generator().manual_seed(true_k)
    centres = 10 * torch.randn(true_k, 6, generator=g)
    z = centres.repeat_interleave(12, 0) + 0.2 * torch.randn(12 * true_k, 6, generator=g)
    assert estimate_k(z, k_max=20) == true_k


def test_estimate_k_scores_a_seeded_sample_of_large_inputs_deterministically() -> None:
    g = torch.Generator().manual_seed(0)
    z = (5 * torch.randn(3, 4, generator=g)).repeat_interleave(200, 0) + 0.1 * torch.randn(
        600, 4, generator=g
    )
    assert estimate_k(z, k_max=6, sample=100, seed=1) == estimate_k(z, k_max=6, sample=100, seed=1) == 3


def test_estimate_k_bounds() -> None:
    assert estimate_k(torch.randn(2, 3)) == 1
    with pytest.raises(ClusteringError, match="k_min = 5 and k_max = 3"):
        estimate_k(torch.randn(4, 3), k_min=5)
