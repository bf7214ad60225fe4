"""Baseline clusterers: k-means on a fixed representation (raw pixels, or a trained backbone's features).

They follow the :class:`~metadl.algorithms.clustering_steps.Clusterer` protocol, so the clustering
protocol scores them exactly like the meta-trained clustering learners.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metadl.algorithms.clustering_steps import kmeans
from metadl.algorithms.estimate_k import estimate_k


class EmbeddingKMeans:
    """k-means (``restarts`` k-means++ restarts) on ``embed(x)``, optionally L2-normalised.

    Example:
        >>> x = torch.cat([torch.zeros(4, 2), torch.full((4, 2), 9.0)])
        >>> EmbeddingKMeans(lambda x: x.flatten(1)).cluster(x, 2).tolist()
        [0, 0, 0, 0, 1, 1, 1, 1]
    """

    def __init__(
        self, embed: Callable[[Tensor], Tensor], *, normalize: bool = False, restarts: int = 10
    ) -> None:
        self.embed, self.normalize, self.restarts = embed, normalize, restarts

    @torch.no_grad()
    def cluster(self, x: Tensor, k: int | None = None, *, seed: int = 0) -> Tensor:
        z = self.embed(x)
        z = F.normalize(z, dim=-1) if self.normalize else z
        k = estimate_k(z, seed=seed) if k is None else k  # the best-silhouette k when none is given
        labels, _ = kmeans(z, k, restarts=self.restarts, seed=seed)
        return labels.cpu()


def pixels(x: Tensor) -> Tensor:
    """Raw pixels as vectors: ``(n, C, H, W)`` -> ``(n, C * H * W)``."""
    return x.flatten(1)


def backbone_features(backbone: nn.Module, chunk: int = 512) -> Callable[[Tensor], Tensor]:
    """``x -> backbone(x)`` in eval mode, in chunks (a trained backbone's frozen features)."""

    @torch.no_grad()
    def embed(x: Tensor) -> Tensor:
        was_training = backbone.training
        backbone.eval()
        z = torch.cat([backbone(part) for part in x.split(chunk)])
        backbone.train(was_training)
        return z

    return embed
