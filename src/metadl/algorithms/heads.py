"""What the embedding-plus-head learners share: embed tasks, fit a head per task, score queries.

MatchingNet, RelationNet and the closed-form heads (SVM, ridge, logistic regression, random forest)
all work the same way: the backbone embeds support and query sets, a head is *fitted* on each
task's support embeddings (prototypes, a solved linear classifier, ...) and *scores* the query
embeddings. A learner states the two steps as methods ::

    fit_head(support_z (T, S, D), support_y (T, S), n_way) -> state
    score_head(state, query_z (T, Q, D)) -> logits (T, Q, N)

and the base class :class:`HeadLearner` turns them into ``forward`` (mean query loss of the head's logits)
and ``adapt`` (a predictor), so the support set is solved once per task and each ``predict`` call only
scores. A learner whose loss is not cross-entropy on the logits (RelationNet) overrides ``forward``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metadl.algorithms.base import Learner, LearnerOutput, Predictor, encode_labels, make_output
from metadl.models.base import Backbone
from metadl.tasks.task import TaskBatch


class HeadLearner(Learner):
    """A learner made of a backbone and a per-task head (see the module docstring).

    Subclasses set ``self.backbone`` and define ``fit_head`` and ``score_head``; ``forward`` and
    ``adapt`` are shared.
    """

    backbone: Backbone

    def fit_head(self, support_z: Tensor, support_y: Tensor, n_way: int) -> Any:
        """Per-task head state from support embeddings ``(T, S, D)`` and labels ``(T, S)`` in ``0..n_way-1``."""
        raise NotImplementedError

    def score_head(self, state: Any, query_z: Tensor) -> Tensor:
        """Query logits ``(T, Q, N)`` from the fitted state and query embeddings ``(T, Q, D)``."""
        raise NotImplementedError

    def forward(self, batch: TaskBatch) -> LearnerOutput:
        return make_output(head_logits(self, batch), batch)

    def adapt(self, support_x: Tensor, support_y: Tensor) -> Predictor:
        return head_predictor(self, support_x, support_y)


def embed_tasks(backbone: Backbone, x: Tensor) -> Tensor:
    """``(T, S, *x_shape)`` -> ``(T, S, D)``: all tasks through the backbone in one batch."""
    t, s = x.shape[:2]
    return backbone(x.reshape(t * s, *x.shape[2:])).reshape(t, s, -1)


def one_hot(y: Tensor, n_way: int, like: Tensor) -> Tensor:
    """``(T, S)`` labels -> ``(T, S, N)`` one-hot in the dtype and device of ``like``."""
    return F.one_hot(y, n_way).to(like)


def head_logits(learner: HeadLearner, batch: TaskBatch) -> Tensor:
    """``(T, Q, N)`` query logits of a batch, ``N`` = the episode's number of classes (as ProtoNet).

    Support and query are embedded separately, so batch-norm statistics in training mode never mix
    the two sets.
    """
    if not batch.is_classification:
        raise ValueError(
            f"this learner classifies: support_y must hold integer labels 0..n_way-1, got dtype {batch.support_y.dtype}"
        )
    state = learner.fit_head(embed_tasks(learner.backbone, batch.support_x), batch.support_y, batch.n_way)
    return learner.score_head(state, embed_tasks(learner.backbone, batch.query_x))


@torch.no_grad()
def head_predictor(learner: HeadLearner, support_x: Tensor, support_y: Tensor) -> Predictor:
    """Fit the head once on one support set ``(S, *x_shape)`` with arbitrary integer labels."""
    classes, y = encode_labels(support_y)
    state = learner.fit_head(
        embed_tasks(learner.backbone, support_x.unsqueeze(0)), y.unsqueeze(0), len(classes)
    )

    def score(x: Tensor) -> Tensor:
        return learner.score_head(state, embed_tasks(learner.backbone, x.unsqueeze(0)))[0]

    return Predictor(score, classes)


def register_log_scale(module: nn.Module, init: float, learn: bool, name: str = "log_scale") -> None:
    """Register ``log(init)`` on ``module`` as a parameter (``learn``) or a buffer; the scale is ``.exp()``."""
    if init <= 0:
        raise ValueError(f"{name.removeprefix('log_')} must be > 0, got {init}")
    value = torch.tensor(float(init)).log()
    if learn:
        module.register_parameter(name, nn.Parameter(value))
    else:
        module.register_buffer(name, value)
