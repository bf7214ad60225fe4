"""The clustering learners: soft k-means gradients, perfect blobs, learning on a tiny problem, determinism."""

from __future__ import annotations

import pytest
import torch
from fewshot_blobs import IN_FEATURES, backbone, blobs
from sklearn.cluster import KMeans

from metadl.algorithms import create_learner
from metadl.algorithms.clustering_steps import (
    ClusteringError,
    align_to_labels,
    farthest_first,
    kmeans,
    soft_kmeans,
)
from metadl.algorithms.pairwise import agglomerate
from metadl.evaluation.clustering import clustering_accuracy
from metadl.models import create_backbone
from metadl.tasks.samplers import EpisodeSampler
from metadl.training.meta import meta_train

pytestmark = pytest.mark.usefixtures("one_thread")

CLUSTERERS = ("softkmeans", "pairwise")


def separated_blobs(
    k: int = 6, per: int = 15, seed: int = 0, dim: int = 5
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = 20 * torch.randn(k, dim, generator=g)
    x = centres.repeat_interleave(per, 0) + 0.5 * torch.randn(k * per, dim, generator=g)
    return x, torch.arange(k).repeat_interleave(per)


def test_soft_kmeans_gradcheck_float64() -> None:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(7, 3, dtype=torch.float64, generator=g, requires_grad=True)
    mu = torch.randn(3, 3, dtype=torch.float64, generator=g, requires_grad=True)
    beta = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z, mu, b: soft_kmeans(z, mu, b, 3)[0], (z, mu, beta))
    assert torch.autograd.gradcheck(lambda z, mu, b: soft_kmeans(z, mu, b, 2)[1], (z, mu, beta))


def test_soft_kmeans_step_is_the_weighted_mean() -> None:
    z = torch.tensor([[0.0], [1.0], [10.0]], dtype=torch.float64)
    mu = torch.tensor([[0.0], [10.0]], dtype=torch.float64)
    _, new = soft_kmeans(z, mu, 1.0, 1)
    a = torch.softmax(-((z - mu.T) ** 2), -1)  # closed form of one step
    expected = (a.T @ z) / a.sum(0).unsqueeze(-1)
    assert torch.allclose(new, expected)


def test_kmeans_matches_sklearn_inertia() -> None:
    g = torch.Generator().manual_seed(3)
    z = torch.randn(120, 4, generator=g)
    labels, inertia = kmeans(z, 5, restarts=10, seed=0)
    ref = KMeans(5, n_init=10, random_state=0).fit(z.numpy())
    assert inertia <= ref.inertia_ * 1.02
    assert labels.unique().numel() == 5


@pytest.mark.parametrize("name", CLUSTERERS)
def test_perfect_clustering_of_well_separated_blobs(name: str) -> None:
    x, y = separated_blobs()
    net = create_learner(name, backbone=create_backbone("identity", in_features=5), n_way=6)
    assert clustering_accuracy(net.cluster(x, 6), y) == 1.0
    # k = 12 > 6 classes: every class split or left whole, unmatched clusters count as errors.
    assert clustering_accuracy(net.cluster(x, 12), y) < 1.0


def test_threshold_estimates_the_number_of_clusters_on_blobs() -> None:
    # In 32 dimensions blob directions are nearly orthogonal: cosine ~0 across, ~1 within blobs.
    x, y = separated_blobs(k=7, dim=32)
    net = create_learner("pairwise", backbone=create_backbone("identity", in_features=32), n_way=7)
    labels = net.cluster(x)  # no k: cut the learned similarity at the threshold
    assert labels.unique().numel() == 7 and clustering_accuracy(labels, y) == 1.0


def test_softkmeans_estimates_k_by_silhouette_and_refuses_a_k_above_n() -> None:
    x, y = separated_blobs(k=5, dim=32)
    net = create_learner("softkmeans", backbone=create_backbone("identity", in_features=32), n_way=5)
    labels = net.cluster(x)  # no k: the best-silhouette number of clusters
    assert labels.unique().numel() == 5 and clustering_accuracy(labels, y) == 1.0
    with pytest.raises(ClusteringError, match="k = 9 clusters for 4 examples"):
        net.cluster(torch.randn(4, 32), 9)


def test_agglomerate_numbers_clusters_by_first_appearance() -> None:
    s = torch.tensor([[1, 0.1, 0.9], [0.1, 1, 0.2], [0.9, 0.2, 1]])
    assert agglomerate(s, 2, 0.5).tolist() == [0, 1, 0]


def test_align_to_labels_makes_argmax_count_matched_hits() -> None:
    y = torch.tensor([[0, 0, 1, 1, 2, 2]])
    scores = torch.nn.functional.one_hot(torch.tensor([[2, 2, 0, 1, 1, 1]]), 3).float()
    aligned = align_to_labels(scores, y)
    hits = (aligned.argmax(-1) == y).float().mean().item()
    assert hits == pytest.approx(clustering_accuracy([2, 2, 0, 1, 1, 1], [0, 0, 1, 1, 2, 2]))


def test_farthest_first_needs_no_randomness() -> None:
    z = torch.randn(30, 3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(farthest_first(z, 4), farthest_first(z.clone(), 4))


def _episode_accuracy(net: torch.nn.Module, seed: int = 5) -> float:
    """Mean clustering accuracy of ``net.cluster`` on 5-way episodes of unseen blob classes."""
    sampler = EpisodeSampler(blobs(32, 20, seed=1), n_way=5, k_shot=5, n_query=5, seed=seed)
    scores = []
    for _ in range(12):
        t = sampler.sample()
        x, y = torch.cat([t.support_x, t.query_x]), torch.cat([t.support_y, t.query_y])
        scores.append(clustering_accuracy(net.cluster(x, 5), y))
    return sum(scores) / len(scores)


@pytest.mark.parametrize("name", CLUSTERERS)
def test_meta_training_on_clustering_episodes_improves_clustering_of_new_classes(name: str) -> None:
    net = create_learner(name, backbone=backbone(0), n_way=5)
    before = _episode_accuracy(net)
    train = EpisodeSampler(blobs(64, 20, seed=0), n_way=5, k_shot=5, n_query=5, seed=0)
    history = meta_train(
        net, train, torch.optim.Adam(net.parameters(), 1e-2), iterations=300, meta_batch=4, progress=False
    )
    after = _episode_accuracy(net)
    first, last = history[:20], history[-20:]
    assert sum(r["loss"] for r in last) < 0.8 * sum(r["loss"] for r in first)
    # Measured: softkmeans 0.35 -> 0.75, pairwise 0.33 -> 0.74 (chance-level partitions before).
    assert after > before + 0.25 and after > 0.65, (before, after)


@pytest.mark.parametrize("name", CLUSTERERS)
def test_seeded_training_and_clustering_are_deterministic(name: str) -> None:
    def run() -> torch.Tensor:
        net = create_learner(name, backbone=backbone(1), n_way=5)
        train = EpisodeSampler(blobs(64, 20, seed=0), n_way=5, k_shot=5, n_query=5, seed=2)
        meta_train(
            net, train, torch.optim.Adam(net.parameters(), 3e-3), iterations=5, meta_batch=2, progress=False
        )
        x = blobs(8, 10, seed=4).data
        return net.cluster(x, 8, seed=3)

    assert torch.equal(run(), run())


def test_forward_reports_query_rows_of_the_episode_clustering() -> None:
    sampler = EpisodeSampler(blobs(10, 20, seed=0), n_way=4, k_shot=3, n_query=2, seed=0)
    batch = sampler.sample_batch(2)
    net = create_learner("pairwise", backbone=create_backbone("identity", in_features=IN_FEATURES), n_way=4)
    out = net(batch)
    assert out.logits.shape == (2, 8, 4) and torch.equal(out.query_y, batch.query_y)
    assert out.loss.requires_grad
