"""Meta-SVM: the dual solver against scikit-learn's Crammer-Singer SVM, exact gradients, learning."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fewshot_blobs import backbone, one_thread, separation  # noqa: F401 (fixture)
from sklearn.svm import LinearSVC

from metadl.algorithms import create_learner
from metadl.algorithms.svm import MetaSVM, crammer_singer_dual, project_simplex
from metadl.tasks.task import TaskBatch

pytestmark = pytest.mark.usefixtures("one_thread")


def _problem(t: int, n: int, k: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ReLU features with a shared positive mean (ill-conditioned, like real embeddings), float64."""
    g = torch.Generator().manual_seed(seed)
    x = torch.relu(
        torch.randn(t, n * k, d, generator=g, dtype=torch.float64)
        + torch.rand(t, 1, d, generator=g, dtype=torch.float64)
    )
    y = torch.arange(n).repeat_interleave(k).expand(t, n * k)
    return x, y, F.one_hot(y, n).double()


def test_simplex_projection_satisfies_its_optimality_conditions() -> None:
    v = torch.randn(50, 7, dtype=torch.float64) * 3
    p = project_simplex(v, 2.5)
    torch.testing.assert_close(p.sum(-1), torch.full((50,), 2.5, dtype=torch.float64))
    assert (p >= 0).all()
    # p = max(v - theta, 0): v - p equals theta on the support and is <= theta off it.
    gap = v - p
    theta = torch.where(p > 0, gap, torch.inf).amin(-1, keepdim=True)
    torch.testing.assert_close(torch.where(p > 0, gap, theta), theta.expand_as(gap))
    assert (torch.where(p > 0, -torch.inf, gap) <= theta + 1e-12).all()


@pytest.mark.parametrize("C", [0.1, 1.0, 10.0])
def test_matches_sklearn_crammer_singer(C: float) -> None:
    x, y, Y = _problem(t=4, n=5, k=5, d=64, seed=int(C * 10))
    q = torch.randn(4, 30, 64, dtype=torch.float64)
    weights = crammer_singer_dual(x @ x.mT, Y, C).mT @ x  # (T, N, D)
    for t in range(4):
        # LinearSVC(crammer_singer) solves the same primal: no intercept, same C, labels 0..N-1.
        svc = LinearSVC(C=C, multi_class="crammer_singer", fit_intercept=False, tol=1e-9, max_iter=1_000_000)
        svc.fit(x[t].numpy(), y[t].numpy())
        np.testing.assert_allclose(weights[t].numpy(), svc.coef_, atol=1e-4 * np.abs(svc.coef_).max())
        np.testing.assert_allclose(
            (q[t] @ weights[t].T).numpy(), svc.decision_function(q[t].numpy()), rtol=1e-4, atol=1e-4
        )


@pytest.mark.parametrize("C", [0.1, 10.0])
def test_gradient_matches_finite_differences(C: float) -> None:
    x, _, Y = _problem(t=1, n=3, k=2, d=7, seed=3)  # D > S: the dual has a unique solution
    x.requires_grad_(True)
    q = torch.randn(1, 4, 7, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: q @ (crammer_singer_dual(x @ x.mT, Y, C).mT @ x).mT, (x,))


def test_tasks_are_solved_independently() -> None:
    x, _, Y = _problem(t=3, n=5, k=2, d=16, seed=4)
    batched = crammer_singer_dual(x @ x.mT, Y, 1.0)
    for t in range(3):
        alone = crammer_singer_dual(x[t : t + 1] @ x[t : t + 1].mT, Y[t : t + 1], 1.0)
        torch.testing.assert_close(batched[t : t + 1], alone)


def test_collinear_support_is_handled_by_the_dual_ridge() -> None:
    """More support examples than dimensions, and duplicates: the plain dual is not strictly convex."""
    g = torch.Generator().manual_seed(5)
    z = torch.randn(2, 10, 3, generator=g)
    z[:, 1] = z[:, 0]  # a duplicated support example
    y = torch.arange(5).repeat_interleave(2).expand(2, 10)
    svm = MetaSVM(backbone=backbone(), n_way=5)
    z.requires_grad_(True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "not solved" fallback
        weights = svm.fit_head(z, y, 5)
    weights.sum().backward()
    assert torch.isfinite(weights).all() and torch.isfinite(z.grad).all()


def test_uncertified_tasks_fall_back_with_a_warning_and_finite_gradients() -> None:
    x, _, Y = _problem(t=3, n=5, k=15, d=8, seed=6)  # S = 75 >> D: a hard, near-degenerate dual
    K = x @ x.mT + 1e-4 * torch.eye(75, dtype=torch.float64)
    K.requires_grad_(True)
    with pytest.warns(RuntimeWarning, match="not solved to KKT tolerance"):
        alpha = crammer_singer_dual(K, Y, 100.0, warm_iter=1, active_set_steps=1, max_iter=1)
    alpha.sum().backward()
    assert torch.isfinite(alpha).all() and torch.isfinite(K.grad).all()
    # Still a feasible dual point: alpha_n sums to zero and alpha_nk <= C [k == y_n].
    torch.testing.assert_close(alpha.sum(-1), torch.zeros(3, 75, dtype=torch.float64))
    assert (alpha <= 100.0 * Y + 1e-9).all()


def test_learner_gradient_reaches_backbone_and_scale() -> None:
    svm = create_learner("svm", backbone=backbone(), n_way=3)
    g = torch.Generator().manual_seed(0)
    batch = TaskBatch(
        torch.randn(2, 6, 20, generator=g),
        torch.arange(3).repeat(2).expand(2, 6),
        torch.randn(2, 9, 20, generator=g),
        torch.arange(3).repeat(3).expand(2, 9),
    )
    svm(batch).loss.backward()
    assert svm.log_scale.grad is not None
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in svm.backbone.parameters())


def test_bad_hyperparameters_say_what_is_allowed() -> None:
    with pytest.raises(ValueError, match="C must be > 0"):
        MetaSVM(backbone=backbone(), n_way=5, C=0.0)
    with pytest.raises(ValueError, match="dual_ridge"):
        MetaSVM(backbone=backbone(), n_way=5, dual_ridge=-1.0)


def test_meta_training_separates_blobs() -> None:
    before, after = separation(create_learner("svm", backbone=backbone(), n_way=5), steps=60)
    assert after > 0.5 and after > before + 0.25, (before, after)
