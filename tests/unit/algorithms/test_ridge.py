"""R2D2: the closed-form ridge head against numpy's solve on the primal, its parameters, learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fewshot_blobs import backbone, one_thread, separation  # noqa: F401 (fixture)

from metadl.algorithms import create_learner
from metadl.algorithms.ridge import R2D2, ridge_weights
from metadl.tasks.task import TaskBatch

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("s, d", [(10, 32), (40, 6)])  # Woodbury (S < D) and primal (S > D) branches
def test_matches_numpy_solve_on_the_primal(s: int, d: int) -> None:
    g = torch.Generator().manual_seed(s)
    x = torch.randn(3, s, d, generator=g, dtype=torch.float64)
    y = F.one_hot(torch.randint(0, 4, (3, s), generator=g), 4).double()
    lam = 0.7
    w = ridge_weights(x, y, lam)
    for t in range(3):
        xt, yt = x[t].numpy(), y[t].numpy()
        expected = np.linalg.solve(xt.T @ xt + lam * np.eye(d), xt.T @ yt)
        np.testing.assert_allclose(w[t].numpy(), expected, rtol=1e-9, atol=1e-10)


def test_gradient_matches_finite_differences() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 7, generator=g, dtype=torch.float64, requires_grad=True)
    y = F.one_hot(torch.arange(5).expand(2, 5) % 3, 3).double()
    lam = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, lam: ridge_weights(x, y, lam), (x, lam))


def test_learned_lambda_scale_and_bias_get_gradients() -> None:
    net = create_learner("ridge", backbone=backbone(), n_way=3)
    g = torch.Generator().manual_seed(1)
    batch = TaskBatch(
        torch.randn(2, 6, 20, generator=g),
        torch.arange(3).repeat(2).expand(2, 6),
        torch.randn(2, 9, 20, generator=g),
        torch.arange(3).repeat(3).expand(2, 9),
    )
    net(batch).loss.backward()
    for p in (net.log_lam, net.log_scale, net.bias):
        assert p.grad is not None and p.grad.abs() > 0


def test_fixed_hyperparameters_are_buffers() -> None:
    net = R2D2(backbone=backbone(), n_way=5, learn_lambda=False, learn_adjust=False, lam=2.0)
    assert {name for name, _ in net.named_parameters()} == {
        n for n, _ in net.backbone.named_parameters(prefix="backbone")
    }
    assert float(net.log_lam.exp()) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="lam must be > 0"):
        R2D2(backbone=backbone(), n_way=5, lam=0.0)


def test_meta_training_separates_blobs() -> None:
    before, after = separation(create_learner("ridge", backbone=backbone(), n_way=5), steps=60)
    assert after > 0.5 and after > before + 0.25, (before, after)
