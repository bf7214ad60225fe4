"""A closed-form alternative to MeLU: per-user ridge regression on meta-learned item embeddings.

Each item has a learned embedding ``e_i`` (``dim``) and bias ``b_i``; a user is a linear taste vector
``w_u`` fitted in closed form to the support residuals::

    z_i = [e_i, 1]                       (the 1 carries the user's own bias)
    w_u = argmin sum_s (z_s w - (r_s - mu - b_s))^2 + lambda ||w||^2       (metadl.algorithms.ridge)
    r_hat(u, i) = mu + b_i + z_i w_u

Meta-training back-propagates the query loss through the solve into the embeddings, the biases and
``log lambda``, so the embeddings are learned for exactly this few-shot fold-in (unlike matrix
factorisation, whose item factors are fitted for users with all their ratings). Vectorised over the
users of a meta-batch by batched ``torch.linalg.solve``; no inner loop.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from metadl.algorithms.base import Capabilities, Learner, LearnerOutput, Predictor, make_output
from metadl.algorithms.ridge import ridge_weights
from metadl.tasks.task import TaskBatch


class UserRidge(Learner):
    """Per-user ridge head on meta-learned item embeddings (see the module docstring).

    Args:
        n_items: catalogue size (x holds ``(user, item)`` index pairs; only the item is used).
        dim: embedding width. lam: initial ridge penalty. global_mean: initial ``mu``. seed: init.

    Example:
        >>> model = UserRidge(n_items=5, dim=3, global_mean=3.5)
        >>> x = torch.tensor([[[0, 1], [0, 2], [0, 3]]])
        >>> batch = TaskBatch(x[:, :2], torch.tensor([[[4.0], [2.0]]]), x[:, 2:], torch.tensor([[[3.0]]]))
        >>> model(batch).logits.shape
        torch.Size([1, 1, 1])
    """

    capabilities: ClassVar[Capabilities] = Capabilities(regression=True)

    def __init__(
        self, *, n_items: int, dim: int = 32, lam: float = 1.0, global_mean: float = 3.5, seed: int = 0
    ) -> None:
        super().__init__()
        if n_items < 1 or dim < 1 or not lam > 0:
            raise ValueError(f"UserRidge needs n_items >= 1, dim >= 1, lam > 0; got {n_items}, {dim}, {lam}")
        g = torch.Generator().manual_seed(seed)
        self.item_embedding = nn.Parameter(0.1 * torch.randn(n_items, dim, generator=g))
        self.item_bias = nn.Parameter(torch.zeros(n_items))
        self.mu = nn.Parameter(torch.tensor(float(global_mean)))
        self.log_lam = nn.Parameter(torch.tensor(float(lam)).log())

    def _z(self, items: Tensor) -> Tensor:
        e = self.item_embedding[items]
        return torch.cat([e, torch.ones(*e.shape[:-1], 1)], dim=-1)

    def predict_tasks(self, support_x: Tensor, support_y: Tensor, query_x: Tensor) -> Tensor:
        """Predicted ratings ``(T, Q, 1)`` for supports ``(T, S, 2)`` / ``(T, S, 1)`` and queries ``(T, Q, 2)``."""
        s_items, q_items = support_x[..., 1], query_x[..., 1]
        target = support_y - self.mu - self.item_bias[s_items].unsqueeze(-1)  # (T, S, 1)
        w = ridge_weights(self._z(s_items), target, self.log_lam.exp())  # (T, dim + 1, 1)
        return self.mu + self.item_bias[q_items].unsqueeze(-1) + self._z(q_items) @ w

    def forward(self, batch: TaskBatch) -> LearnerOutput:
        return make_output(self.predict_tasks(batch.support_x, batch.support_y, batch.query_x), batch)

    def adapt(self, support_x: Tensor, support_y: Tensor) -> Predictor:
        sx, sy = support_x.unsqueeze(0), support_y.unsqueeze(0)
        return Predictor(lambda x: self.predict_tasks(sx, sy, x.unsqueeze(0))[0], None)
