"""A learned pairwise similarity (in the spirit of KCL/MCL, Hsu et al. ICLR 2018/2019), then clustering.

Meta-training learns a similarity between two examples, the probability that they belong to the same
class: ``s(i, j) = sigmoid(scale * cos(f(x_i), f(x_j)) + bias)`` with ``f`` the backbone and ``scale``,
``bias`` learned. The loss is the binary cross-entropy of ``s(i, j)`` against ``[y_i == y_j]`` over the
pairs of each episode (support and query together): the meta-classification likelihood of MCL, whose
"is this pair the same class?" task transfers to classes never seen. (MCL computes ``s`` as the inner
product of two class posteriors of one classifier; here it is a calibrated cosine, which needs no fixed
output size. KCL's KL-hinge loss is not used.)

New data is partitioned on the learned similarity by average-linkage agglomerative clustering on the
distance ``1 - s`` (scikit-learn, deterministic):

- with ``k`` given, merging stops at ``k`` clusters;
- **without k**, merging stops when the average similarity between the two closest clusters falls
  below ``threshold`` ("the two groups are less likely than ``threshold`` to be one class"). The
  number of clusters is whatever that leaves; ``threshold`` is chosen on validation classes
  (``benchmarks/meta_clustering.py`` picks it on held-out background alphabets).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from sklearn.cluster import AgglomerativeClustering
from torch import Tensor, nn

from metadl.algorithms.base import Capabilities, Learner, LearnerOutput, Predictor, encode_labels
from metadl.algorithms.clustering_steps import align_to_labels, check_k, off_diagonal_bce, same_class
from metadl.algorithms.heads import embed_tasks
from metadl.algorithms.softkmeans import embed_all, episode_examples
from metadl.models.base import Backbone
from metadl.tasks.task import TaskBatch

LINKAGES = ("average", "complete", "single")


def agglomerate(similarity: Tensor, k: int | None, threshold: float, linkage: str = "average") -> Tensor:
    """Cluster ids ``(n,)`` from a ``(n, n)`` similarity in [0, 1]: ``k`` clusters, or cut at ``threshold``.

    Example:
        >>> s = torch.tensor([[1.0, 0.9, 0.1], [0.9, 1.0, 0.2], [0.1, 0.2, 1.0]])
        >>> agglomerate(s, None, 0.5).tolist(), agglomerate(s, 3, 0.5).unique().numel()
        ([0, 0, 1], 3)
    """
    n = len(similarity)
    if k is not None:
        check_k(k, n)
    if n == 1 or k == 1:
        return torch.zeros(n, dtype=torch.long)
    distance = (1 - similarity.detach().double().cpu()).clamp(min=0).fill_diagonal_(0).numpy()
    model = AgglomerativeClustering(
        n_clusters=k,
        metric="precomputed",
        linkage=linkage,
        distance_threshold=None if k is not None else 1 - threshold,
    )
    labels = torch.as_tensor(model.fit_predict(distance), dtype=torch.long)
    _, ordered = torch.unique(labels, return_inverse=True)
    # Number clusters by first appearance, so the ids do not depend on scikit-learn's internal order.
    first = torch.full((int(ordered.max()) + 1,), n, dtype=torch.long).scatter_reduce(
        0, ordered, torch.arange(n), "amin"
    )
    return torch.argsort(torch.argsort(first))[ordered]


class PairwiseSimilarityClusterer(Learner):
    """A meta-learned same-class probability for pairs, clustered agglomeratively (module docstring).

    Args:
        backbone: feature extractor.
        n_way: classes per training episode (the engine passes it).
        threshold: same-class probability below which clusters stay apart when k is not given.
        linkage: ``"average"``, ``"complete"`` or ``"single"``.

    Example:
        >>> from metadl.models import create_backbone
        >>> net = PairwiseSimilarityClusterer(backbone=create_backbone("mlp", in_features=4, hidden=[8]), n_way=2)
        >>> net.similarity(torch.randn(6, 4)).shape
        torch.Size([6, 6])
    """

    capabilities: ClassVar[Capabilities] = Capabilities(clustering=True)

    def __init__(
        self, *, backbone: Backbone, n_way: int, threshold: float = 0.5, linkage: str = "average"
    ) -> None:
        super().__init__()
        if not 0 < threshold < 1:
            raise ValueError(f"threshold must lie strictly between 0 and 1, got {threshold}")
        if linkage not in LINKAGES:
            raise ValueError(f"linkage={linkage!r}; choose one of {LINKAGES}")
        self.backbone, self.n_way, self.threshold, self.linkage = backbone, n_way, threshold, linkage
        self.log_scale = nn.Parameter(torch.tensor(10.0).log())
        self.bias = nn.Parameter(torch.tensor(-5.0))

    def pair_logits(self, z: Tensor) -> Tensor:
        """``(..., n, D)`` embeddings -> ``(..., n, n)`` same-class logits."""
        z = F.normalize(z, dim=-1)
        return self.log_scale.exp() * (z @ z.transpose(-1, -2)) + self.bias

    @torch.no_grad()
    def similarity(self, x: Tensor) -> Tensor:
        """``(n, *x_shape)`` -> ``(n, n)`` learned same-class probabilities."""
        was_training = self.training
        self.eval()
        s = torch.sigmoid(self.pair_logits(embed_all(self.backbone, x)))
        self.train(was_training)
        return s

    def forward(self, batch: TaskBatch) -> LearnerOutput:
        x, y = episode_examples(batch)
        logits = self.pair_logits(embed_tasks(self.backbone, x))  # (T, n, n)
        loss = off_diagonal_bce(torch.sigmoid(logits), same_class(y))
        # The partition (for the reported clustering accuracy) uses the similarity only, never y.
        k = int(y.max()) + 1
        with torch.no_grad():
            parts = [agglomerate(torch.sigmoid(s), k, self.threshold, self.linkage) for s in logits]
            scores = F.one_hot(torch.stack(parts), k).to(logits)
        # Clusters are matched to classes on the whole episode; the engine scores the query rows.
        logits = align_to_labels(scores, y)[:, batch.support_x.shape[1] :]
        return LearnerOutput(loss=loss, logits=logits, query_y=batch.query_y)

    @torch.no_grad()
    def cluster(self, x: Tensor, k: int | None = None, *, seed: int = 0) -> Tensor:
        """Partition ``x (n, *x_shape)``: ``k`` clusters, or as many as ``threshold`` leaves (``seed`` unused:
        agglomerative clustering is deterministic)."""
        return agglomerate(self.similarity(x), k, self.threshold, self.linkage)

    @torch.no_grad()
    def adapt(self, support_x: Tensor, support_y: Tensor) -> Predictor:
        """Mean learned similarity of a query to each class's support examples."""
        classes, y = encode_labels(support_y)
        was_training = self.training
        self.eval()
        zs = F.normalize(embed_all(self.backbone, support_x), dim=-1)
        weights = F.one_hot(y, len(classes)).to(zs) / torch.bincount(y).to(zs)
        self.train(was_training)

        def score(q: Tensor) -> Tensor:
            zq = F.normalize(self.backbone(q), dim=-1)  # unchunked: see SoftKMeansClusterer.adapt
            return torch.sigmoid(self.log_scale.exp() * (zq @ zs.T) + self.bias) @ weights

        return Predictor(score, classes)
