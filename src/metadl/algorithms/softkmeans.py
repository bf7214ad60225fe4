"""An embedding meta-trained through a differentiable soft k-means step (meta-clustering, known k).

An episode's examples (support and query together, unlabelled as far as the partition is concerned)
are embedded, L2-normalised, seeded by farthest-first traversal and clustered by ``iterations`` soft
k-means steps (:func:`~metadl.algorithms.clustering_steps.soft_kmeans`) into as many clusters as the
episode has classes. The loss is the meta-classification likelihood of Hsu et al. (ICLR 2019) on the
soft assignments ``A``: the probability that two examples share a cluster is ``P = A A^T``, and the loss
is the binary cross-entropy of ``P[i, j]`` against ``[y_i == y_j]`` over all pairs ``i != j``. It does not
depend on how clusters are numbered, so no matching enters the gradient; the embedding learns to make
soft k-means put each class in its own cluster.

New data is partitioned with the same step's limit ``beta -> inf``: hard k-means (restarted from
k-means++ seeds, the lowest within-cluster sum of squares kept) on the learned embedding; without a
given k, into the number of clusters whose partition has the best silhouette
(:mod:`metadl.algorithms.estimate_k`).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metadl.algorithms.base import Capabilities, Learner, LearnerOutput, Predictor, encode_labels
from metadl.algorithms.clustering_steps import (
    align_to_labels,
    farthest_first,
    kmeans,
    off_diagonal_bce,
    same_class,
    soft_kmeans,
    squared_distances,
)
from metadl.algorithms.estimate_k import estimate_k
from metadl.algorithms.heads import embed_tasks
from metadl.models.base import Backbone
from metadl.tasks.task import TaskBatch


def embed_all(backbone: Backbone, x: Tensor, chunk: int = 512) -> Tensor:
    """``(n, *x_shape)`` -> ``(n, D)`` in chunks of ``chunk`` examples (eval mode is the caller's)."""
    return torch.cat([backbone(part) for part in x.split(chunk)]) if len(x) else x.new_zeros(0)


def episode_examples(batch: TaskBatch) -> tuple[Tensor, Tensor]:
    """Support and query of each task as one set: ``x (T, S + Q, *x_shape)``, labels ``(T, S + Q)``."""
    return torch.cat([batch.support_x, batch.query_x], 1), torch.cat([batch.support_y, batch.query_y], 1)


class SoftKMeansClusterer(Learner):
    """Embedding + soft k-means, meta-trained end to end on clustering episodes (module docstring).

    Args:
        backbone: feature extractor.
        n_way: classes per training episode (the engine passes it; every episode is clustered into as
            many clusters as it has classes).
        iterations: soft k-means steps in training.
        temperature: initial inverse temperature ``beta`` on squared distances of unit vectors.
        learn_temperature: learn ``beta``.
        restarts: k-means restarts when clustering new data.

    Example:
        >>> from metadl.models import create_backbone
        >>> net = SoftKMeansClusterer(backbone=create_backbone("mlp", in_features=4, hidden=[8]), n_way=2)
        >>> x = torch.cat([torch.randn(5, 4) + 5, torch.randn(5, 4) - 5])
        >>> net.cluster(x, 2).shape
        torch.Size([10])
    """

    capabilities: ClassVar[Capabilities] = Capabilities(clustering=True)

    def __init__(
        self,
        *,
        backbone: Backbone,
        n_way: int,
        iterations: int = 5,
        temperature: float = 10.0,
        learn_temperature: bool = True,
        restarts: int = 10,
    ) -> None:
        super().__init__()
        if iterations < 1 or restarts < 1:
            raise ValueError(f"iterations and restarts must be >= 1, got {iterations} and {restarts}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.backbone, self.n_way, self.iterations, self.restarts = backbone, n_way, iterations, restarts
        value = torch.tensor(float(temperature)).log()
        if learn_temperature:
            self.log_beta = nn.Parameter(value)
        else:
            self.register_buffer("log_beta", value)

    def embed(self, x: Tensor) -> Tensor:
        """``(n, *x_shape)`` -> ``(n, D)`` unit-length embeddings."""
        return F.normalize(embed_all(self.backbone, x), dim=-1)

    def forward(self, batch: TaskBatch) -> LearnerOutput:
        x, y = episode_examples(batch)
        z = F.normalize(embed_tasks(self.backbone, x), dim=-1)  # (T, n, D)
        k = int(y.max()) + 1
        seeds = torch.stack([farthest_first(zt, k) for zt in z])  # (T, k), chosen without labels
        mu = torch.gather(z, 1, seeds.unsqueeze(-1).expand(-1, -1, z.shape[-1]))
        log_a, _ = soft_kmeans(z, mu, self.log_beta.exp(), self.iterations)  # (T, n, k)
        a = log_a.exp()
        loss = off_diagonal_bce(a @ a.transpose(1, 2), same_class(y))
        # Clusters are matched to classes on the whole episode; the engine scores the query rows.
        logits = align_to_labels(log_a, y)[:, batch.support_x.shape[1] :]
        return LearnerOutput(loss=loss, logits=logits, query_y=batch.query_y)

    @torch.no_grad()
    def cluster(self, x: Tensor, k: int | None = None, *, seed: int = 0) -> Tensor:
        """Partition ``x (n, *x_shape)`` into ``k`` clusters: ``(n,)`` int64 cluster ids.

        Without ``k`` the number of clusters is the best-silhouette one (:func:`estimate_k`).
        """
        was_training = self.training
        self.eval()
        z = self.embed(x)
        self.train(was_training)
        k = estimate_k(z, seed=seed) if k is None else k
        labels, _ = kmeans(z, k, restarts=self.restarts, seed=seed)
        return labels.cpu()

    @torch.no_grad()
    def adapt(self, support_x: Tensor, support_y: Tensor) -> Predictor:
        """Nearest class mean in the learned embedding (a labelled support set given)."""
        classes, y = encode_labels(support_y)
        z = self.embed(support_x)
        means = F.one_hot(y, len(classes)).to(z).T @ z / torch.bincount(y).to(z).unsqueeze(-1)
        beta = self.log_beta.exp()
        # The query path calls the backbone unchunked: embed_all's Python branch on len(x) would fix the
        # batch size of an exported (ONNX) graph to the support's.
        return Predictor(
            lambda q: -beta * squared_distances(F.normalize(self.backbone(q), dim=-1), means), classes
        )
