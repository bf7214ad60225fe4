"""Reptile (Nichol et al. 2018): move the initialisation towards the parameters each task adapts to."""

from __future__ import annotations

import torch
from torch import Tensor

from metadl.algorithms.base import LearnerOutput, make_output, precomputed_gradient
from metadl.algorithms.maml import MAML
from metadl.models.base import Backbone
from metadl.tasks.task import TaskBatch


class Reptile(MAML):
    """Reptile: adapt to each task with plain SGD, then step the initialisation towards the adapted weights.

    Reptile is trained like every other learner: ``out = learner(batch); out.loss.backward();
    optimizer.step()``. In training mode with gradients enabled, ``out.loss`` has the value of the query
    loss after adaptation (what is logged) and its backward delivers the Reptile direction
    ``theta - mean_t(phi_t)`` to ``.grad`` of every adapted parameter (``phi_t``: the parameters after
    ``inner_steps`` steps on task t's support set; see :func:`~metadl.algorithms.base.precomputed_gradient`).
    With ``SGD(lr=eps)`` the step is the paper's update ``theta <- theta + eps * mean_t(phi_t - theta)``;
    Adam (as in the paper's experiments) rescales it per entry. Because the update travels through
    ``backward``, gradient clipping, distributed averaging and the non-finite checks apply to it as to
    any gradient.

    In eval mode or under ``torch.no_grad()`` (evaluation, validation) ``forward`` is first-order MAML
    with the same inner loop: the query loss after adaptation. Arguments: as for
    :class:`~metadl.algorithms.maml.MAML`, always first order.

    Example:
        >>> from metadl.models import create_backbone
        >>> rep = Reptile(backbone=create_backbone("mlp", in_features=1, hidden=[8]), out_features=1)
        >>> x, y = torch.randn(4, 10, 1), torch.randn(4, 10, 1)
        >>> out = rep(TaskBatch(x[:, :5], y[:, :5], x[:, 5:], y[:, 5:]))
        >>> out.loss.backward(); out.logits.shape
        torch.Size([4, 5, 1])
    """

    def __init__(
        self,
        *,
        backbone: Backbone,
        n_way: int | None = None,
        out_features: int | None = None,
        inner_lr: float = 0.1,
        inner_steps: int = 5,
        eval_inner_steps: int | None = None,
        transductive: bool = True,
        vectorize: bool = True,
        task_chunk_size: int | None = None,
    ) -> None:
        super().__init__(
            backbone=backbone, n_way=n_way, out_features=out_features, inner_lr=inner_lr,
            inner_steps=inner_steps, eval_inner_steps=eval_inner_steps, first_order=True,
            transductive=transductive, vectorize=vectorize, task_chunk_size=task_chunk_size,
        )  # fmt: skip

    @torch.no_grad()
    def reptile_direction(self, batch: TaskBatch) -> tuple[dict[str, Tensor], Tensor]:
        """``(theta - mean_t phi_t`` per parameter, query logits at ``phi`` ``(T, Q, N))``, chunk by chunk."""
        theta = self.inner_params()
        direction = {k: torch.zeros_like(v) for k, v in theta.items()}
        steps, size = self.settings.steps(True), self.settings.task_chunk_size or len(batch)
        logits = []
        for chunk in batch.chunks(size):
            phi = self.adapt_params(chunk.support_x, chunk.support_y, steps)  # (t, *shape) each
            for k, v in theta.items():
                direction[k] += (v - phi[k]).sum(0) / len(batch)
            logits.append(self.predict_logits(phi, chunk.support_x, chunk.query_x))
        return direction, torch.cat(logits)

    def forward(self, batch: TaskBatch) -> LearnerOutput:
        if not (self.training and torch.is_grad_enabled()):
            return super().forward(batch)
        self.check_targets(batch)
        direction, logits = self.reptile_direction(batch)
        out = make_output(logits, batch)
        theta = self.inner_params()
        loss = precomputed_gradient(out.loss, [direction[k] for k in theta], list(theta.values()))
        return LearnerOutput(loss=loss, logits=logits, query_y=batch.query_y)
