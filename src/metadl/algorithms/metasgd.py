"""Meta-SGD (Li et al. 2017): MAML with a learned learning rate for every parameter entry."""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from metadl.algorithms.inner_loop import StepLR, check_lr
from metadl.algorithms.maml import MAML
from metadl.models.base import Backbone


class MetaSGD(MAML):
    """Meta-SGD: the inner update is ``theta - alpha * grad`` with ``alpha`` (same shape as ``theta``) meta-learned.

    Everything else is :class:`~metadl.algorithms.maml.MAML`; only the inner learning rates differ. They
    live in ``inner_lrs[step][i]`` (``i``: the i-th trainable parameter of the backbone, then the head)
    and are trained by the meta-loss like every other parameter. With ``per_step_lr=True`` each inner
    step has its own rates (steps past ``inner_steps``, e.g. a larger ``eval_inner_steps``, reuse the
    last step's); otherwise one set serves all steps.

    Args:
        inner_lr: initial value of every learned rate (the paper draws them from U[0.005, 0.1]; a
            constant start, as in learn2learn, is the common choice).
        per_step_lr: learn separate rates for each inner step.
        The others: as for MAML.

    Example:
        >>> from metadl.models import create_backbone
        >>> net = MetaSGD(backbone=create_backbone("mlp", in_features=2, hidden=[4]), n_way=3, inner_lr=0.1)
        >>> [tuple(a.shape) for a in net.inner_lrs[0]]
        [(4, 2), (4,), (3, 4), (3,)]
    """

    def __init__(
        self,
        *,
        backbone: Backbone,
        n_way: int | None = None,
        out_features: int | None = None,
        inner_lr: float = 0.1,
        per_step_lr: bool = False,
        inner_steps: int = 1,
        eval_inner_steps: int | None = None,
        first_order: bool = False,
        transductive: bool = True,
        vectorize: bool = True,
        task_chunk_size: int | None = None,
    ) -> None:
        super().__init__(
            backbone=backbone, n_way=n_way, out_features=out_features, inner_lr=inner_lr,
            inner_steps=inner_steps, eval_inner_steps=eval_inner_steps, first_order=first_order,
            transductive=transductive, vectorize=vectorize, task_chunk_size=task_chunk_size,
        )  # fmt: skip
        init = check_lr("inner_lr", inner_lr)
        shapes = [p.shape for p in self.inner_params().values()]
        self.inner_lrs = nn.ModuleList(
            nn.ParameterList(nn.Parameter(torch.full(s, init)) for s in shapes)
            for _ in range(inner_steps if per_step_lr else 1)
        )

    def step_lrs(self) -> list[StepLR]:
        names = list(self.inner_params())
        return [dict(zip(names, cast(nn.ParameterList, rates), strict=True)) for rates in self.inner_lrs]
