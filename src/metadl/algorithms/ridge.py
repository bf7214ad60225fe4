"""R2D2 (Bertinetto et al. 2019): a ridge-regression head solved in closed form per task.

Ridge regression of one-hot targets ``Y`` (S, N) on support embeddings ``X`` (S, D)::

    W = argmin ||X W - Y||^2 + lambda ||W||^2 = (X^T X + lambda I)^{-1} X^T Y = X^T (X X^T + lambda I)^{-1} Y

The second form (Woodbury) solves an S x S system, which is what makes R2D2 cheap in the few-shot
regime S << D; when S > D the first (D x D) form is used instead. Logits are ``scale * X_q W + bias``
with a meta-learned scale and bias ("adjust" layer of the paper) and an optionally meta-learned lambda.
The paper's extra column of ones in ``X`` is left out; ``bias`` is the scalar offset of its adjust layer.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from metadl.algorithms.heads import HeadLearner, one_hot, register_log_scale
from metadl.models.base import Backbone


def ridge_weights(x: Tensor, y: Tensor, lam: Tensor | float) -> Tensor:
    """Ridge solution ``W`` (T, D, N) for inputs ``x`` (T, S, D) and targets ``y`` (T, S, N); differentiable.

    Example:
        >>> x = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])
        >>> ridge_weights(x, torch.eye(2)[None], 1.0)  # diag(1 / (1 + 1), 2 / (4 + 1))
        tensor([[[0.5000, 0.0000],
                 [0.0000, 0.4000]]])
    """
    s, d = x.shape[-2:]
    xt = x.transpose(-2, -1)
    if s <= d:  # Woodbury: an S x S system
        eye = torch.eye(s, dtype=x.dtype, device=x.device)
        return xt @ torch.linalg.solve(x @ xt + lam * eye, y)
    eye = torch.eye(d, dtype=x.dtype, device=x.device)
    return torch.linalg.solve(xt @ x + lam * eye, xt @ y)


class R2D2(HeadLearner):
    """Ridge-regression differentiable discriminator over any backbone.

    Args:
        backbone: feature extractor.
        n_way: classes per episode (kept for the common constructor; an episode may have any number).
        lam: initial ridge penalty lambda (> 0); ``learn_lambda`` meta-learns it (in log space).
        scale, bias: initial logit scale (> 0) and offset; ``learn_adjust`` meta-learns both.

    Example:
        >>> from metadl.models import create_backbone
        >>> from metadl.tasks import TaskBatch
        >>> r2d2 = R2D2(backbone=create_backbone("mlp", in_features=4, hidden=[8]), n_way=3)
        >>> b = TaskBatch(torch.randn(2, 6, 4), torch.arange(3).repeat(2).expand(2, 6), torch.randn(2, 3, 4), torch.arange(3).expand(2, 3))
        >>> r2d2(b).logits.shape
        torch.Size([2, 3, 3])
    """

    log_scale: Tensor  # registered by register_log_scale: a parameter or a buffer
    log_lam: Tensor  # registered by register_log_scale: a parameter or a buffer

    def __init__(
        self,
        *,
        backbone: Backbone,
        n_way: int,
        lam: float = 1.0,
        learn_lambda: bool = True,
        scale: float = 10.0,
        bias: float = 0.0,
        learn_adjust: bool = True,
    ) -> None:
        super().__init__()
        if n_way < 2:
            raise ValueError(f"n_way must be >= 2, got {n_way}")
        self.backbone, self.n_way = backbone, n_way
        register_log_scale(self, lam, learn_lambda, name="log_lam")
        register_log_scale(self, scale, learn_adjust)
        b = torch.tensor(float(bias))
        if learn_adjust:
            self.bias = nn.Parameter(b)
        else:
            self.register_buffer("bias", b)

    def fit_head(self, support_z: Tensor, support_y: Tensor, n_way: int) -> Tensor:
        """Ridge weights of every task: ``(T, S, D)`` -> ``(T, D, N)``."""
        return ridge_weights(support_z, one_hot(support_y, n_way, support_z), self.log_lam.exp())

    def score_head(self, weights: Tensor, query_z: Tensor) -> Tensor:
        return self.log_scale.exp() * (query_z @ weights) + self.bias
