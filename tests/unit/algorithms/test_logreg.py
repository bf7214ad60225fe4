"""Logistic-regression head: the Newton solver against scikit-learn, exact gradients, learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fewshot_blobs import backbone, one_thread, separation  # noqa: F401 (fixture)
from sklearn.linear_model import LogisticRegression

from metadl.algorithms import create_learner
from metadl.algorithms.logreg import LogRegHead, logreg_dual

pytestmark = pytest.mark.usefixtures("one_thread")


def _problem(t: int, n: int, k: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.relu(
        torch.randn(t, n * k, d, generator=g, dtype=torch.float64)
        + torch.randn(t, 1, d, generator=g, dtype=torch.float64)
    )
    y = torch.arange(n).repeat_interleave(k).expand(t, n * k)
    return x, y, F.one_hot(y, n).double()


@pytest.mark.parametrize("C, d", [(0.01, 64), (1.0, 64), (100.0, 8)])  # d=8 < S=25: a singular kernel
def test_matches_sklearn_logistic_regression(C: float, d: int) -> None:
    x, y, Y = _problem(t=3, n=5, k=5, d=d, seed=d)
    weights = logreg_dual(x @ x.mT, Y, C).mT @ x
    for t in range(3):
        # Same objective: 1/2 ||W||^2 + C * sum of multinomial log-losses, no intercept.
        sk = LogisticRegression(C=C, fit_intercept=False, tol=1e-10, max_iter=10_000).fit(
            x[t].numpy(), y[t].numpy()
        )
        np.testing.assert_allclose(weights[t].numpy(), sk.coef_, atol=1e-5 * np.abs(sk.coef_).max())


@pytest.mark.parametrize("C", [0.1, 10.0])
def test_gradient_matches_finite_differences(C: float) -> None:
    x, _, Y = _problem(t=2, n=3, k=2, d=4, seed=0)
    x.requires_grad_(True)
    q = torch.randn(2, 4, 4, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: q @ (logreg_dual(x @ x.mT, Y, C).mT @ x).mT, (x,))


def test_normalised_features_and_learned_scale() -> None:
    net = LogRegHead(backbone=backbone(), n_way=3, normalize=True, learn_scale=True)
    g = torch.Generator().manual_seed(2)
    z = torch.randn(2, 6, 32, generator=g)
    y = torch.arange(3).repeat(2).expand(2, 6)
    # Normalising makes the head invariant to the scale of the embeddings.
    torch.testing.assert_close(net.fit_head(z, y, 3), net.fit_head(5 * z, y, 3))
    net.score_head(net.fit_head(z, y, 3), z).sum().backward()
    assert net.log_scale.grad is not None


def test_bad_C_names_the_value() -> None:
    with pytest.raises(ValueError, match="C must be > 0, got -1"):
        LogRegHead(backbone=backbone(), n_way=5, C=-1)


def test_meta_training_separates_blobs() -> None:
    before, after = separation(create_learner("logreg", backbone=backbone(), n_way=5), steps=60)
    assert after > 0.5 and after > before + 0.25, (before, after)
