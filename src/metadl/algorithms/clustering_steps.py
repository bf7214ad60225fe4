"""The pieces the clustering learners share: centroid seeding, soft k-means, pair targets, label alignment.

**Soft k-means** (the differentiable clustering step). Embeddings ``z (n, D)``, centroids ``mu (k, D)``,
inverse temperature ``beta``; one step is ::

    A[i, c] = softmax_c(-beta * ||z_i - mu_c||^2)          # soft assignment, rows sum to 1
    mu_c    = sum_i A[i, c] z_i / sum_i A[i, c]           # weighted means

Every operation is smooth, so gradients flow from a loss on ``A`` back into the embedding (and ``beta``),
which is how :class:`~metadl.algorithms.softkmeans.SoftKMeansClusterer` is meta-trained end to end. As
``beta -> inf`` a step becomes Lloyd's hard k-means step.

**Seeding**: without a generator, farthest-first traversal (start at the example nearest the mean, then
repeatedly the example farthest from every chosen centroid), which needs no randomness, so training
stays a function of the data; with a generator, k-means++ (Arthur and Vassilvitskii 2007) for restarts.

**Pair targets**: ``same[i, j] = (y_i == y_j)``: the only use of labels by the clustering learners is in
their loss (through these pair targets) and in :func:`align_to_labels`, which permutes cluster scores so
that the engine's accuracy is the clustering accuracy. The partition itself never sees a label.
"""

from __future__ import annotations

from typing import Protocol, cast

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from metadl.algorithms.base import Learner


class ClusteringError(ValueError):
    """A clustering request that cannot be met (k out of range, no k and no way to estimate it)."""


class Clusterer(Protocol):
    """What a learner with ``Capabilities(clustering=True)`` provides besides the learner protocol."""

    def cluster(self, x: Tensor, k: int | None = None, *, seed: int = 0) -> Tensor:
        """Partition ``x (n, *x_shape)`` into ``k`` clusters (estimated when None): ``(n,)`` int64 ids."""
        ...


def as_clusterer(learner: Learner) -> Clusterer:
    """``learner`` as a :class:`Clusterer`, when it declares ``Capabilities(clustering=True)``; else a one-line error."""
    if not learner.capabilities.clustering:
        raise ClusteringError(
            f"{type(learner).__name__} does not cluster (it declares no clustering capability); "
            "train a clustering learner such as 'softkmeans' or 'pairwise' (config cluster_omniglot_lake)"
        )
    return cast(Clusterer, learner)


def check_k(k: int, n: int) -> None:
    """``1 <= k <= n`` or a one-line error naming both."""
    if not 1 <= k <= n:
        raise ClusteringError(f"k = {k} clusters for {n} examples; choose k between 1 and {n}")


def squared_distances(z: Tensor, mu: Tensor) -> Tensor:
    """``z (..., n, D)``, ``mu (..., k, D)`` -> ``(..., n, k)`` squared Euclidean distances (clamped at 0)."""
    sq = z.pow(2).sum(-1, keepdim=True) - 2 * z @ mu.transpose(-1, -2) + mu.pow(2).sum(-1).unsqueeze(-2)
    return sq.clamp(min=0)


def farthest_first(z: Tensor, k: int) -> Tensor:
    """Indices ``(k,)`` of deterministic seeds for ``z (n, D)`` (see the module docstring).

    Example:
        >>> farthest_first(torch.tensor([[0.0], [0.1], [5.0], [-4.0]]), 3).tolist()
        [1, 2, 3]
    """
    check_k(k, len(z))
    with torch.no_grad():
        first = int((z - z.mean(0)).pow(2).sum(-1).argmin())
        chosen = [first]
        nearest = (z - z[first]).pow(2).sum(-1)
        for _ in range(k - 1):
            nxt = int(nearest.argmax())
            chosen.append(nxt)
            nearest = torch.minimum(nearest, (z - z[nxt]).pow(2).sum(-1))
    return torch.tensor(chosen, device=z.device)


def kmeans_plus_plus(z: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """Indices ``(k,)`` of k-means++ seeds for ``z (n, D)``, drawn with ``generator`` (CPU)."""
    check_k(k, len(z))
    with torch.no_grad():
        zc = z.detach().double().cpu()
        chosen = [int(torch.randint(len(zc), (1,), generator=generator))]
        nearest = (zc - zc[chosen[0]]).pow(2).sum(-1)
        for _ in range(k - 1):
            total = float(nearest.sum())
            if total <= 0:  # fewer distinct points than k: take any unchosen one
                rest = [i for i in range(len(zc)) if i not in set(chosen)]
                nxt = rest[0]
            else:
                nxt = int(torch.multinomial(nearest / total, 1, generator=generator))
            chosen.append(nxt)
            nearest = torch.minimum(nearest, (zc - zc[nxt]).pow(2).sum(-1))
    return torch.tensor(chosen, device=z.device)


def soft_kmeans(z: Tensor, mu: Tensor, beta: Tensor | float, iterations: int) -> tuple[Tensor, Tensor]:
    """``iterations`` soft k-means steps from centroids ``mu``; returns ``(log_assign (..., n, k), mu)``.

    ``z (..., n, D)``, ``mu (..., k, D)``. The returned log-assignments are those of the last centroids.

    Example:
        >>> z = torch.tensor([[0.0], [0.2], [4.0], [4.2]])
        >>> log_a, mu = soft_kmeans(z, z[[0, 2]], 10.0, 3)
        >>> log_a.argmax(-1).tolist(), [round(v, 2) for v in mu.flatten().tolist()]
        ([0, 0, 1, 1], [0.1, 4.1])
    """
    for _ in range(iterations):
        a = torch.softmax(-beta * squared_distances(z, mu), -1)  # (..., n, k)
        mu = (a.transpose(-1, -2) @ z) / a.sum(-2).unsqueeze(-1).clamp(min=1e-12)
    return torch.log_softmax(-beta * squared_distances(z, mu), -1), mu


def kmeans(
    z: Tensor, k: int, *, restarts: int = 10, iterations: int = 50, seed: int = 0
) -> tuple[Tensor, float]:
    """Hard k-means (Lloyd) on ``z (n, D)`` from ``restarts`` k-means++ seedings; ``(labels (n,), inertia)``.

    The first run starts from the farthest-first seeds, the others from k-means++ with a generator seeded
    by ``seed``; the run with the lowest within-cluster sum of squares is kept.
    """
    check_k(k, len(z))
    z = z.detach().float()
    gen = torch.Generator().manual_seed(seed)
    best: tuple[Tensor, float] | None = None
    for r in range(max(1, restarts)):
        seeds = farthest_first(z, k) if r == 0 else kmeans_plus_plus(z, k, gen)
        mu = z[seeds]
        labels = torch.full((len(z),), -1, dtype=torch.long, device=z.device)
        for _ in range(iterations):
            new = squared_distances(z, mu).argmin(-1)
            if torch.equal(new, labels):
                break
            labels = new
            one_hot = F.one_hot(labels, k).to(z)
            counts = one_hot.sum(0)
            means = one_hot.T @ z / counts.clamp(min=1).unsqueeze(-1)
            mu = torch.where(counts.unsqueeze(-1) > 0, means, mu)  # an emptied cluster keeps its centroid
        inertia = float(squared_distances(z, mu).gather(1, labels.unsqueeze(1)).sum())
        if best is None or inertia < best[1]:
            best = (labels, inertia)
    assert best is not None
    return best


def same_class(y: Tensor) -> Tensor:
    """``(..., n)`` labels -> ``(..., n, n)`` float pair targets, 1 where two examples share a label."""
    return (y.unsqueeze(-1) == y.unsqueeze(-2)).float()


def off_diagonal_bce(probability: Tensor, target: Tensor) -> Tensor:
    """Mean binary cross-entropy over the pairs ``i != j`` of ``(..., n, n)`` probabilities."""
    n = probability.shape[-1]
    mask = ~torch.eye(n, dtype=torch.bool, device=probability.device)
    p = probability.clamp(1e-6, 1 - 1e-6)
    return F.binary_cross_entropy(p[..., mask], target[..., mask])


def align_to_labels(scores: Tensor, y: Tensor) -> Tensor:
    """Permute cluster scores ``(T, n, k)`` so cluster ``c`` sits in the column of its matched class.

    The Hungarian matching of argmax clusters to labels ``y (T, n)`` (in ``0..N-1``); ``k`` must equal
    ``N``. Then ``scores.argmax(-1) == y`` exactly where the clustering accuracy counts a hit. A
    permutation of columns only, so the values (and their gradients) are unchanged.
    """
    out = torch.empty_like(scores)
    k = scores.shape[-1]
    for t in range(scores.shape[0]):
        table = np.zeros((k, k), dtype=np.int64)
        np.add.at(table, (scores[t].argmax(-1).cpu().numpy(), y[t].cpu().numpy()), 1)
        rows, cols = linear_sum_assignment(table, maximize=True)
        perm = torch.empty(k, dtype=torch.long)
        perm[torch.as_tensor(cols)] = torch.as_tensor(rows)
        out[t] = scores[t][:, perm.to(scores.device)]
    return out
