"""Meta-SVM (MetaOptNet, Lee et al. 2019): a Crammer-Singer multi-class linear SVM solved per task.

Primal, on support embeddings ``x_n`` with labels ``y_n`` (no intercept, as ``LinearSVC(multi_class=
"crammer_singer", fit_intercept=False)``)::

    min_W  1/2 sum_k ||w_k||^2 + C sum_n xi_n   s.t.  w_{y_n}.x_n - w_k.x_n >= 1 - [k == y_n] - xi_n

Dual, with ``K = X X^T`` and one-hot ``Y`` (S, N), written in ``beta = C Y - alpha`` so that every row
lies on a scaled simplex::

    min_beta  g(beta) = 1/2 tr(alpha^T K alpha) - <Y, alpha>   s.t.  beta_n >= 0,  sum_k beta_nk = C

and ``W = alpha^T X``. The solver is batched over tasks (no Python loop over tasks):

1. accelerated projected-gradient steps (FISTA with adaptive restart; 100 by default) approach the
   optimum and give a guess of the active set ``{beta_nk = 0}``;
2. the equality-constrained QP on the free entries is solved exactly (one batched Cholesky solve per
   class plus an S x S Schur complement for the simplex equalities), its KKT conditions are checked,
   and wrong guesses are corrected by a few primal-dual active-set steps; tasks still uncertified get
   twice as many projected-gradient steps and a new guess, up to ``max_iter``;
3. the final exact solve is repeated with gradients on: with the active set fixed it *is* the solution
   map near the optimum, so back-propagating through ``torch.linalg.solve`` gives the exact implicit
   gradient of the KKT conditions (no unrolling, no QP package).
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from metadl.algorithms.heads import HeadLearner, one_hot, register_log_scale
from metadl.models.base import Backbone


def project_simplex(v: Tensor, radius: float) -> Tensor:
    """Euclidean projection of each row of ``v`` (..., N) onto ``{b >= 0, sum(b) = radius}``.

    Example:
        >>> project_simplex(torch.tensor([[0.5, 0.2, -1.0]]), 1.0)
        tensor([[0.6500, 0.3500, 0.0000]])
    """
    u = v.sort(-1, descending=True).values
    excess = u.cumsum(-1) - radius
    ranks = torch.arange(1, v.shape[-1] + 1, device=v.device, dtype=v.dtype)
    count = (u - excess / ranks > 0).sum(-1, keepdim=True)  # the condition holds for a prefix
    theta = excess.gather(-1, count - 1) / count.to(v.dtype)
    return (v - theta).clamp(min=0)


def _fista(K: Tensor, Y: Tensor, C: float, beta: Tensor, iters: int) -> Tensor:
    """Accelerated projected gradient on the dual with gradient-based restart (O'Donoghue & Candes)."""
    step = 1.0 / torch.linalg.eigvalsh(K)[:, -1].clamp(min=1e-12).view(-1, 1, 1)  # 1 / Lipschitz
    cy = C * Y
    z, t = beta, torch.ones_like(step)
    for _ in range(iters):
        new = project_simplex(z - step * (K @ (z - cy) + Y), C)
        restart = ((z - new) * (new - beta)).sum((1, 2), keepdim=True) > 0
        t_next = (1 + (1 + 4 * t * t).sqrt()) / 2
        momentum = torch.where(restart, 0.0, (t - 1) / t_next)
        t = torch.where(restart, 1.0, t_next)
        z, beta = new + momentum * (new - beta), new
    return beta


def _solve_free(K: Tensor, Y: Tensor, C: float, free: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Minimise g with ``beta_nk = 0`` off the boolean mask ``free`` (T, S, N) and the simplex equalities.

    Returns ``beta`` (T, S, N), the bound multipliers ``mu = grad g - nu`` (T, S, N) and ``ok`` (T,):
    whether ``(beta, mu)`` satisfies the KKT conditions of the full problem (``beta >= 0`` on the free
    entries, ``mu >= 0`` on the others), to a tolerance for the dtype.
    """
    dtype = K.dtype
    f = free.transpose(1, 2).to(dtype)  # (T, N, S): column k of beta is one block of the Hessian K (x) I
    eye = torch.eye(K.shape[-1], dtype=dtype, device=K.device)
    blocks = f.unsqueeze(-1) * f.unsqueeze(-2) * K.unsqueeze(1) + eye * (1 - f).unsqueeze(-1)  # (T, N, S, S)
    b = f * (C * K @ Y - Y).transpose(1, 2)  # (T, N, S): stationarity K beta - nu = C K Y - Y on free entries
    # Each block is SPD when K is (masked rows and columns are identity): one Cholesky factor per block.
    chol, info = torch.linalg.cholesky_ex(blocks)
    sol = torch.cholesky_solve(torch.cat([b.unsqueeze(-1), torch.diag_embed(f)], -1), chol)
    x, z = sol[..., 0], sol[..., 1:]  # beta_k = x_k + Z_k nu
    schur, info2 = torch.linalg.cholesky_ex(z.sum(1))  # Schur complement of the simplex equalities (SPD)
    nu = torch.cholesky_solve((C - x.sum(1)).unsqueeze(-1), schur).squeeze(-1)
    beta = (x + (z @ nu.unsqueeze(1).unsqueeze(-1)).squeeze(-1)).transpose(1, 2)
    mu = K @ (beta - C * Y) + Y - nu.unsqueeze(-1)
    tol = torch.finfo(dtype).eps ** 0.5
    scale = C * K.diagonal(dim1=-2, dim2=-1).amax(-1).view(-1, 1, 1) + 1
    ok = (
        torch.where(free, beta >= -tol * C, mu >= -tol * scale).flatten(1).all(1)
        & beta.flatten(1).isfinite().all(1)
        & (info.flatten(1) == 0).all(1)
        & (info2 == 0)
    )
    return beta, mu, ok


def crammer_singer_dual(
    K: Tensor, Y: Tensor, C: float, *, warm_iter: int = 100, active_set_steps: int = 4, max_iter: int = 5000
) -> Tensor:
    """Dual solution ``alpha`` (T, S, N) of the Crammer-Singer SVM for kernels ``K`` (T, S, S), one-hot ``Y``.

    Differentiable with respect to ``K`` (exact implicit gradient). A task whose active set cannot be
    certified after ``max_iter`` projected-gradient steps keeps the projected-gradient solution, with no
    gradient through its kernel, and a warning says so.

    Example:
        >>> x = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]], dtype=torch.float64)
        >>> alpha = crammer_singer_dual(x @ x.mT, torch.eye(2, dtype=torch.float64)[None], C=10.0)
        >>> (alpha.mT @ x).round(decimals=6)  # W: +-1/2 margins
        tensor([[[ 0.5000, -0.5000],
                 [-0.5000,  0.5000]]], dtype=torch.float64)
    """
    if C <= 0:
        raise ValueError(f"C must be > 0, got {C}")
    if warm_iter < 1 or active_set_steps < 1:
        raise ValueError(
            f"warm_iter and active_set_steps must be >= 1, got {warm_iter} and {active_set_steps}"
        )
    dtype = K.dtype
    K, Y = K.double(), Y.double()  # the active-set test needs the precision; the solves are small
    tol = torch.finfo(K.dtype).eps ** 0.5
    with torch.no_grad():
        Kd = K.detach()
        beta = _fista(Kd, Y, C, C * Y, warm_iter)
        done, free = warm_iter, beta > 0
        while True:
            for step in range(active_set_steps):
                exact, mu, ok = _solve_free(Kd, Y, C, free)
                if bool(ok.all()) or step == active_set_steps - 1:
                    break
                fixed = (free & (exact >= -tol * C)) | (~free & (mu < 0))  # primal-dual active-set step
                free = torch.where(ok.view(-1, 1, 1), free, fixed)
            if bool(ok.all()) or done >= max_iter:
                break
            more = min(done, max_iter - done)  # double the projected-gradient budget each round
            beta, done = _fista(Kd, Y, C, beta, more), done + more  # refine, then guess the active set again
            free = torch.where(ok.view(-1, 1, 1), free, beta > 0)
    # The exact solve again, now with gradients. A task that failed gets an identity kernel here so its
    # (discarded) solve stays finite and no NaN can leak into the backward pass.
    eye = torch.eye(K.shape[-1], dtype=K.dtype, device=K.device)
    exact, _, _ = _solve_free(torch.where(ok.view(-1, 1, 1), K, eye), Y, C, free)
    if not bool(ok.all()):
        warnings.warn(
            f"SVM dual: {int((~ok).sum())} of {len(ok)} tasks not solved to KKT tolerance after {done} "
            "iterations; their projected-gradient solution carries no gradient. Raise max_iter or dual_ridge.",
            RuntimeWarning,
            stacklevel=2,
        )
        exact = torch.where(ok.view(-1, 1, 1), exact, beta)
    return (C * Y - exact).to(dtype)


class MetaSVM(HeadLearner):
    """MetaOptNet-SVM: backbone embeddings, a Crammer-Singer SVM fitted per task, logits ``scale * x W^T``.

    Args:
        backbone: feature extractor.
        n_way: classes per episode (kept for the common constructor; an episode may have any number).
        C: SVM regularisation (MetaOptNet uses 0.1).
        scale: initial logit scale; ``learn_scale`` makes it a parameter (MetaOptNet learns it).
        dual_ridge: adds ``dual_ridge * mean(diag K)`` to the kernel diagonal, keeping the dual strictly
            convex when support embeddings are collinear (MetaOptNet adds 1.0 to the kernel for the same
            reason). 0 solves the plain SVM exactly.
        max_iter: projected-gradient budget before a task falls back (see :func:`crammer_singer_dual`).

    Example:
        >>> from metadl.models import create_backbone
        >>> from metadl.tasks import TaskBatch
        >>> svm = MetaSVM(backbone=create_backbone("mlp", in_features=4, hidden=[8]), n_way=3)
        >>> b = TaskBatch(torch.randn(2, 6, 4), torch.arange(3).repeat(2).expand(2, 6), torch.randn(2, 3, 4), torch.arange(3).expand(2, 3))
        >>> svm(b).logits.shape
        torch.Size([2, 3, 3])
    """

    log_scale: Tensor  # registered by register_log_scale: a parameter or a buffer

    def __init__(
        self,
        *,
        backbone: Backbone,
        n_way: int,
        C: float = 0.1,
        scale: float = 1.0,
        learn_scale: bool = True,
        dual_ridge: float = 1e-4,
        max_iter: int = 5000,
    ) -> None:
        super().__init__()
        if n_way < 2:
            raise ValueError(f"n_way must be >= 2, got {n_way}")
        if C <= 0:
            raise ValueError(f"C must be > 0, got {C}")
        if dual_ridge < 0:
            raise ValueError(f"dual_ridge must be >= 0, got {dual_ridge}")
        if max_iter < 1:
            raise ValueError(f"max_iter must be >= 1, got {max_iter}")
        self.backbone, self.n_way, self.C = backbone, n_way, C
        self.dual_ridge, self.max_iter = dual_ridge, max_iter
        register_log_scale(self, scale, learn_scale)

    def fit_head(self, support_z: Tensor, support_y: Tensor, n_way: int) -> Tensor:
        """Solve the SVM of every task: ``(T, S, D)`` -> weights ``(T, N, D)``."""
        K = support_z @ support_z.transpose(1, 2)
        if self.dual_ridge:
            ridge = self.dual_ridge * K.diagonal(dim1=-2, dim2=-1).mean(-1)
            K = K + ridge.view(-1, 1, 1) * torch.eye(K.shape[-1], dtype=K.dtype, device=K.device)
        alpha = crammer_singer_dual(K, one_hot(support_y, n_way, K), self.C, max_iter=self.max_iter)
        return alpha.transpose(1, 2) @ support_z

    def score_head(self, weights: Tensor, query_z: Tensor) -> Tensor:
        return self.log_scale.exp() * query_z @ weights.transpose(1, 2)
