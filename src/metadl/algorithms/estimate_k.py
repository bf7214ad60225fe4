"""Estimating the number of clusters of an embedding: k-means for each candidate k, best mean silhouette.

The silhouette of example ``i`` (Rousseeuw 1987) compares its mean distance ``a(i)`` to the other
members of its own cluster with its mean distance ``b(i)`` to the nearest other cluster::

    s(i) = (b(i) - a(i)) / max(a(i), b(i))          # 0 for an example alone in its cluster

:func:`estimate_k` partitions the embedding with k-means for every ``k`` in ``[k_min, k_max]`` and keeps
the ``k`` whose partition has the highest mean silhouette (ties: the smaller ``k``). It needs no training
and no threshold, so it serves every clusterer that has an embedding (``softkmeans``, k-means baselines,
text models); the ``pairwise`` learner estimates k its own way (a same-class probability threshold).

The silhouette needs all pairwise distances: above ``sample`` examples it is computed on a seeded subset
of that many (as scikit-learn's ``silhouette_score(sample_size=...)`` does), so memory stays bounded.
"""

from __future__ import annotations

import torch
from torch import Tensor

from metadl.algorithms.clustering_steps import ClusteringError, kmeans

DEFAULT_MAX_K = 100


def silhouette(z: Tensor, labels: Tensor) -> float:
    """Mean silhouette of the partition ``labels (n,)`` of ``z (n, D)``, Euclidean distances.

    Agrees with ``sklearn.metrics.silhouette_score`` (tested); needs at least 2 and at most n - 1
    clusters.

    Example:
        >>> z = torch.tensor([[0.0], [1.0], [10.0], [11.0]])
        >>> round(silhouette(z, torch.tensor([0, 0, 1, 1])), 4)  # (9.5 / 10.5 + 8.5 / 9.5) / 2
        0.8997
    """
    _, y = labels.unique(return_inverse=True)
    k = int(y.max()) + 1 if len(y) else 0
    if not 2 <= k <= len(z) - 1:
        raise ClusteringError(f"the silhouette needs 2 to n - 1 = {len(z) - 1} clusters, got {k}")
    d = torch.cdist(z.double(), z.double())
    one_hot = torch.nn.functional.one_hot(y, k).double()  # (n, k)
    sizes = one_hot.sum(0)
    mean_to = d @ one_hot  # (n, k) summed distances to each cluster
    own = sizes[y]
    a = mean_to.gather(1, y.unsqueeze(1)).squeeze(1) / (own - 1).clamp(min=1)
    others = (mean_to / sizes).masked_fill(one_hot.bool(), float("inf"))
    b = others.min(1).values
    s = (b - a) / torch.maximum(a, b).clamp(min=1e-300)
    return float(torch.where(own > 1, s, torch.zeros_like(s)).mean())


def estimate_k(
    z: Tensor,
    *,
    k_min: int = 2,
    k_max: int | None = None,
    restarts: int = 3,
    sample: int = 2000,
    seed: int = 0,
) -> int:
    """The ``k`` in ``[k_min, k_max]`` whose k-means partition of ``z (n, D)`` has the best silhouette.

    ``k_max`` defaults to ``min(n - 1, 100)``. Fewer than 3 examples cannot be split meaningfully: 1.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> centres = torch.tensor([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
        >>> z = (centres.repeat_interleave(10, 0) + 0.3 * torch.randn(30, 2, generator=g))
        >>> estimate_k(z, k_max=8)
        3
    """
    n = len(z)
    if n < 3:
        return 1
    k_max = min(n - 1, DEFAULT_MAX_K) if k_max is None else min(k_max, n - 1)
    if not 2 <= k_min <= k_max:
        raise ClusteringError(
            f"no number of clusters to try between k_min = {k_min} and k_max = {k_max} for {n} examples; "
            "choose 2 <= k_min <= k_max < n"
        )
    z = z.detach().float()
    if n > sample:  # score on a seeded subset: the silhouette's distance matrix is n x n
        keep = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:sample]
    else:
        keep = torch.arange(n)
    best_k, best_score = k_min, -float("inf")
    for k in range(k_min, k_max + 1):
        labels, _ = kmeans(z, k, restarts=restarts, seed=seed)
        found = labels[keep].unique().numel()  # the scored sample may miss small clusters
        if found < 2:
            continue
        score = silhouette(z[keep], labels[keep]) if found < len(keep) else 0.0
        if score > best_score:
            best_k, best_score = k, score
    return best_k
