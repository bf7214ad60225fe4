"""Scores of a partition against true classes: clustering accuracy, NMI and ARI.

All three read the contingency table ``C[i, j]`` = number of examples put in cluster ``i`` whose class is
``j`` (``n`` examples, cluster sizes ``a_i = sum_j C[i, j]``, class sizes ``b_j = sum_i C[i, j]``):

- **Clustering accuracy** (the L2C / KCL / MCL protocol): the one-to-one matching of clusters to classes
  that maximises the matched examples (the Hungarian algorithm, ``scipy.optimize.linear_sum_assignment``),
  divided by ``n``. With more clusters than classes (k = 100 on an alphabet of 20 characters), only one
  cluster per class is matched and the examples of every unmatched cluster count as errors: nothing is
  merged back.
- **NMI**: ``I(U; V) / mean(H(U), H(V))`` with the arithmetic mean (scikit-learn's default); 1 for two
  partitions equal up to names, and defined as 1 when both have a single group.
- **ARI** (Hubert and Arabie 1985): the Rand index corrected for chance,
  ``(sum_ij C(n_ij, 2) - E) / (mean(sum_i C(a_i, 2), sum_j C(b_j, 2)) - E)`` with
  ``E = sum_i C(a_i, 2) * sum_j C(b_j, 2) / C(n, 2)``.

Labels may be any integers (cluster ids need not be 0..k-1 nor contiguous).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike
from scipy.optimize import linear_sum_assignment


def contingency(clusters: ArrayLike, classes: ArrayLike) -> np.ndarray:
    """``(k, c)`` counts of examples per (cluster, class), over the values that occur in each.

    Example:
        >>> contingency([0, 0, 1, 5], [1, 1, 1, 2]).tolist()
        [[2, 0], [1, 0], [0, 1]]
    """
    u, v = _as_labels(clusters), _as_labels(classes)
    if u.shape != v.shape:
        raise ValueError(f"{u.size} cluster ids but {v.size} class labels; give one of each per example")
    if u.size == 0:
        raise ValueError("cannot score an empty partition: give at least one example")
    _, ui = np.unique(u, return_inverse=True)
    _, vi = np.unique(v, return_inverse=True)
    table = np.zeros((ui.max() + 1, vi.max() + 1), dtype=np.int64)
    np.add.at(table, (ui, vi), 1)
    return table


def _as_labels(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x).reshape(-1)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {arr.dtype}")
    return arr


def cluster_matching(clusters: ArrayLike, classes: ArrayLike) -> dict[int, int]:
    """The Hungarian matching: cluster id -> class label, one-to-one, maximising matched examples.

    Clusters left unmatched (more clusters than classes) are absent from the mapping.

    Example:
        >>> cluster_matching([7, 7, 3, 3], [0, 0, 1, 1])
        {3: 1, 7: 0}
    """
    table = contingency(clusters, classes)
    rows, cols = linear_sum_assignment(table, maximize=True)
    u, v = np.unique(_as_labels(clusters)), np.unique(_as_labels(classes))
    return {int(u[r]): int(v[c]) for r, c in zip(rows, cols, strict=True)}


def clustering_accuracy(clusters: ArrayLike, classes: ArrayLike) -> float:
    """Fraction of examples whose cluster is matched to their class by the best one-to-one matching.

    Example:
        >>> clustering_accuracy([1, 1, 0, 0, 2], [0, 0, 1, 1, 1])  # cluster 2 is unmatched: one error
        0.8
    """
    table = contingency(clusters, classes)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / table.sum())


def _entropy(counts: np.ndarray, n: int) -> float:
    p = counts[counts > 0] / n
    return float(-(p * np.log(p)).sum())


def normalized_mutual_info(clusters: ArrayLike, classes: ArrayLike) -> float:
    """NMI with the arithmetic mean of the two entropies (scikit-learn's default).

    Example:
        >>> round(normalized_mutual_info([0, 0, 1, 1], [5, 5, 2, 2]), 12)
        1.0
    """
    table = contingency(clusters, classes)
    n = int(table.sum())
    a, b = table.sum(1), table.sum(0)
    if len(a) == len(b) == 1:  # both partitions are one group: identical
        return 1.0
    nz = table > 0
    outer = np.outer(a, b)[nz]
    mi = float((table[nz] / n * (np.log(table[nz] * n) - np.log(outer))).sum())
    denom = 0.5 * (_entropy(a, n) + _entropy(b, n))
    return 0.0 if denom <= 0 else max(0.0, min(1.0, mi / denom))


def _pairs(x: np.ndarray) -> float:
    return float((x * (x - 1) / 2).sum())


def adjusted_rand_index(clusters: ArrayLike, classes: ArrayLike) -> float:
    """The Rand index adjusted for chance (1: identical partitions, about 0: random ones).

    Example:
        >>> adjusted_rand_index([0, 0, 1, 1], [1, 1, 0, 0])
        1.0
    """
    table = contingency(clusters, classes)
    n = int(table.sum())
    total = n * (n - 1) / 2
    same = _pairs(table)
    pa, pb = _pairs(table.sum(1)), _pairs(table.sum(0))
    expected = pa * pb / total if total else 0.0
    top = 0.5 * (pa + pb) - expected
    if top == 0:  # both partitions all-in-one or all-singletons: they agree on every pair
        return 1.0
    return float((same - expected) / top)


@dataclass(frozen=True)
class ClusteringScores:
    """The three scores of one partition, and how many clusters it had (``k``) against the classes."""

    accuracy: float
    nmi: float
    ari: float
    k: int
    classes: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def score_partition(clusters: ArrayLike, classes: ArrayLike) -> ClusteringScores:
    """Accuracy, NMI and ARI of ``clusters`` against ``classes``.

    Example:
        >>> s = score_partition([0, 0, 1, 1], [3, 3, 4, 4])
        >>> s.accuracy, round(s.nmi, 6), s.ari, s.k
        (1.0, 1.0, 1.0, 2)
    """
    table = contingency(clusters, classes)
    return ClusteringScores(
        accuracy=clustering_accuracy(clusters, classes),
        nmi=normalized_mutual_info(clusters, classes),
        ari=adjusted_rand_index(clusters, classes),
        k=table.shape[0],
        classes=table.shape[1],
    )
