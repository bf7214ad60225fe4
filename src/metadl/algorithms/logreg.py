"""Multinomial L2 logistic regression solved per task, differentiable with respect to the embeddings.

Objective on support embeddings ``X`` (S, D) with one-hot labels ``Y`` (S, N), no intercept (the same
as scikit-learn's ``LogisticRegression(C=C, fit_intercept=False)``)::

    min_W  1/2 ||W||^2 + C sum_n CE(softmax(W x_n), y_n)

By the representer theorem ``W = A^T X`` with ``A`` (S, N), and the optimum satisfies
``F(A) = A - C (Y - softmax(K A)) = 0`` with ``K = X X^T``. Newton's method on ``F`` (an S*N system,
independent of D; identical to Newton on the objective in ``A``) with a batched backtracking line
search converges in a handful of steps. It runs without gradients; then one more Newton step is taken
*with* gradients from the solution. At a root the step's derivative with respect to ``A`` vanishes and
its derivative with respect to ``K`` is ``-J^{-1} dF/dK``, the implicit-function-theorem gradient,
so the head is exactly differentiable without unrolling the iterations.
"""

from __future__ import annotations

import torch
from torch import Tensor

from metadl.algorithms.heads import HeadLearner, one_hot, register_log_scale
from metadl.models.base import Backbone

_STEPS = (1.0, 0.5, 0.25, 0.125, 0.0625)  # line-search candidates, tried all at once


def _objective(K: Tensor, Y: Tensor, A: Tensor, C: float) -> Tensor:
    """``1/2 tr(A^T K A) + C sum CE(K A, Y)`` for ``A`` (..., T, S, N); returns (..., T)."""
    scores = K @ A
    ce = -(Y * scores.log_softmax(-1)).sum((-2, -1))
    return 0.5 * (A * scores).sum((-2, -1)) + C * ce


def _newton_step(K: Tensor, Y: Tensor, A: Tensor, C: float) -> tuple[Tensor, Tensor]:
    """The full Newton step ``-J^{-1} F(A)`` (T, S, N) and the residual ``F(A)``."""
    t, s, n = A.shape
    p = (K @ A).softmax(-1)  # (T, S, N)
    residual = A - C * (Y - p)
    hess = torch.diag_embed(p) - p.unsqueeze(-1) * p.unsqueeze(-2)  # (T, S, N, N) softmax Jacobians
    # J[(i, k), (j, l)] = [i == j][k == l] + C K_ij H_i[k, l]
    jac = C * torch.einsum("tij,tikl->tikjl", K, hess).reshape(t, s * n, s * n)
    jac = jac + torch.eye(s * n, dtype=A.dtype, device=A.device)
    step = torch.linalg.solve(jac, -residual.reshape(t, s * n, 1)).reshape(t, s, n)
    return step, residual


def logreg_dual(K: Tensor, Y: Tensor, C: float, *, max_iter: int = 50, tol: float | None = None) -> Tensor:
    """Coefficients ``A`` (T, S, N) with ``W = A^T X`` for kernels ``K`` (T, S, S) and one-hot ``Y``.

    Differentiable with respect to ``K`` (exact at convergence, see the module docstring).

    Example:
        >>> x = torch.tensor([[[1.0], [-1.0]]], dtype=torch.float64)
        >>> a = logreg_dual(x @ x.mT, torch.eye(2, dtype=torch.float64)[None], C=1.0)
        >>> (a.mT @ x).flatten()  # w_0 = -w_1 = w solving w = 2 / (1 + exp(2 w))
        tensor([ 0.5213, -0.5213], dtype=torch.float64)
    """
    if C <= 0:
        raise ValueError(f"C must be > 0, got {C}")
    tol = torch.finfo(K.dtype).eps ** 0.5 if tol is None else tol
    steps = torch.tensor(_STEPS, dtype=K.dtype, device=K.device).view(-1, 1, 1, 1)
    with torch.no_grad():
        Kd = K.detach()
        A = torch.zeros_like(Y)
        for _ in range(max_iter):
            step, residual = _newton_step(Kd, Y, A, C)
            if float(residual.abs().amax()) <= tol * max(C, 1.0):
                break
            # Batched backtracking: the largest candidate step that lowers the objective, per task.
            trial = _objective(Kd, Y, A + steps * step, C)  # (len(_STEPS), T)
            better = trial < _objective(Kd, Y, A, C)
            pick = torch.where(better.any(0), better.to(torch.uint8).argmax(0), len(_STEPS) - 1)
            A = A + steps.flatten()[pick].view(-1, 1, 1) * step
    step, _ = _newton_step(K, Y, A, C)
    return A + step


class LogRegHead(HeadLearner):
    """Logistic-regression head over any backbone (the "LR" baseline of Tian et al. 2020, meta-trainable).

    Args:
        backbone: feature extractor.
        n_way: classes per episode (kept for the common constructor; an episode may have any number).
        C: inverse L2 strength, as in scikit-learn.
        normalize: L2-normalise embeddings before the head (as Tian et al. 2020 do).
        scale: initial logit scale; ``learn_scale`` meta-learns it (1 and off = the plain solution).
        max_iter: Newton iterations at most.

    Example:
        >>> from metadl.models import create_backbone
        >>> from metadl.tasks import TaskBatch
        >>> lr = LogRegHead(backbone=create_backbone("mlp", in_features=4, hidden=[8]), n_way=3)
        >>> b = TaskBatch(torch.randn(2, 6, 4), torch.arange(3).repeat(2).expand(2, 6), torch.randn(2, 3, 4), torch.arange(3).expand(2, 3))
        >>> lr(b).logits.shape
        torch.Size([2, 3, 3])
    """

    log_scale: Tensor  # registered by register_log_scale: a parameter or a buffer

    def __init__(
        self,
        *,
        backbone: Backbone,
        n_way: int,
        C: float = 1.0,
        normalize: bool = False,
        scale: float = 1.0,
        learn_scale: bool = False,
        max_iter: int = 50,
    ) -> None:
        super().__init__()
        if n_way < 2:
            raise ValueError(f"n_way must be >= 2, got {n_way}")
        if C <= 0:
            raise ValueError(f"C must be > 0, got {C}")
        if max_iter < 1:
            raise ValueError(f"max_iter must be >= 1, got {max_iter}")
        self.backbone, self.n_way, self.C = backbone, n_way, C
        self.normalize, self.max_iter = normalize, max_iter
        register_log_scale(self, scale, learn_scale)

    def _prepare(self, z: Tensor) -> Tensor:
        return torch.nn.functional.normalize(z, dim=-1) if self.normalize else z

    def fit_head(self, support_z: Tensor, support_y: Tensor, n_way: int) -> Tensor:
        """Solve every task's logistic regression: ``(T, S, D)`` -> weights ``(T, N, D)``."""
        x = self._prepare(support_z)
        A = logreg_dual(x @ x.transpose(1, 2), one_hot(support_y, n_way, x), self.C, max_iter=self.max_iter)
        return A.transpose(1, 2) @ x

    def score_head(self, weights: Tensor, query_z: Tensor) -> Tensor:
        return self.log_scale.exp() * self._prepare(query_z) @ weights.transpose(1, 2)
