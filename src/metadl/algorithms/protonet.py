"""Prototypical Networks (Snell et al. 2017): classify queries by distance to class-mean embeddings."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metadl.algorithms.base import Learner, LearnerOutput, Predictor, encode_labels, make_output
from metadl.algorithms.heads import embed_tasks
from metadl.models.base import Backbone
from metadl.tasks.task import TaskBatch

DISTANCES = ("euclidean", "cosine")


def prototypes(support_z: Tensor, support_y: Tensor, n_way: int) -> Tensor:
    """Class means: ``support_z (T, S, D)``, ``support_y (T, S)`` -> ``(T, N, D)``."""
    one_hot = F.one_hot(support_y, n_way).to(support_z.dtype)  # (T, S, N)
    sums = one_hot.transpose(1, 2) @ support_z  # (T, N, D)
    return sums / one_hot.sum(1).unsqueeze(-1).clamp(min=1)


def prototype_logits(query_z: Tensor, protos: Tensor, distance: str, scale: Tensor | float) -> Tensor:
    """``query_z (T, Q, D)``, ``protos (T, N, D)`` -> ``(T, Q, N)`` logits = -scale * distance."""
    if distance == "euclidean":
        # ||q - p||^2 expanded; one batched matmul instead of a (T, Q, N, D) difference tensor.
        sq = (
            query_z.pow(2).sum(-1, keepdim=True)
            - 2 * query_z @ protos.transpose(1, 2)
            + protos.pow(2).sum(-1).unsqueeze(1)
        )
        return -scale * sq
    cos = F.normalize(query_z, dim=-1) @ F.normalize(protos, dim=-1).transpose(1, 2)
    return scale * cos


class ProtoNet(Learner):
    """Prototypical network over any backbone.

    Args:
        backbone: feature extractor.
        n_way: classes per training episode. Prototypes are computed for as many classes as each
            episode has, so a model trained 20-way evaluates 5-way unchanged.
        distance: ``"euclidean"`` (squared, as in the paper) or ``"cosine"``.
        learn_temperature: learn a scale on the logits (init 1 for euclidean, 10 for cosine).

    Batch norm: in training mode the support sets of all tasks in a meta-batch form one backbone
    batch (and the query sets another), as in a plain mini-batch; in eval mode the running statistics
    are used, so a test episode's predictions never depend on its other queries. With meta_batch 1
    (the paper's setting) statistics come from one task only.

    Example:
        >>> from metadl.models import create_backbone
        >>> net = ProtoNet(backbone=create_backbone("mlp", in_features=4, hidden=[8]), n_way=3)
        >>> b = TaskBatch(torch.randn(2, 6, 4), torch.arange(3).repeat(2).expand(2, 6), torch.randn(2, 3, 4), torch.arange(3).expand(2, 3))
        >>> net(b).logits.shape
        torch.Size([2, 3, 3])
    """

    def __init__(
        self, *, backbone: Backbone, n_way: int, distance: str = "euclidean", learn_temperature: bool = False
    ) -> None:
        super().__init__()
        if distance not in DISTANCES:
            raise ValueError(f"distance={distance!r}; choose one of {DISTANCES}")
        self.backbone, self.n_way, self.distance = backbone, n_way, distance
        init = 1.0 if distance == "euclidean" else 10.0
        if learn_temperature:
            self.log_scale = nn.Parameter(torch.tensor(init).log())
        else:
            self.register_buffer("log_scale", torch.tensor(init).log())

    def embed(self, x: Tensor) -> Tensor:
        """``(T, S, *x_shape)`` -> ``(T, S, D)``: all tasks through the backbone in one batch."""
        return embed_tasks(self.backbone, x)

    def forward(self, batch: TaskBatch) -> LearnerOutput:
        # Support and query pass through the backbone separately, so batch-norm statistics (in
        # training mode) never mix support and query, matching the episodic protocol of the paper.
        protos = prototypes(self.embed(batch.support_x), batch.support_y, batch.n_way)
        logits = prototype_logits(self.embed(batch.query_x), protos, self.distance, self.log_scale.exp())
        return make_output(logits, batch)

    @torch.no_grad()
    def adapt(self, support_x: Tensor, support_y: Tensor) -> Predictor:
        classes, y = encode_labels(support_y)
        protos = prototypes(self.embed(support_x.unsqueeze(0)), y.unsqueeze(0), len(classes))
        scale = self.log_scale.exp()
        return Predictor(
            lambda x: prototype_logits(self.embed(x.unsqueeze(0)), protos, self.distance, scale)[0], classes
        )
