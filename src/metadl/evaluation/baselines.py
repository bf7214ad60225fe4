"""Per-task regression baselines: fitted on one task's support set alone, no meta-learning.

Both predict a Gaussian per query point (mean and variance, noise included), so they are scored like
the neural processes (:mod:`metadl.evaluation.regression`):

* ``ridge``: scikit-learn's ``BayesianRidge`` (ridge regression whose penalty and noise level are set
  by evidence maximisation) on the flattened inputs, one model per output;
* ``gp``: a Gaussian process, ``ConstantKernel * RBF + WhiteKernel`` with targets normalised, its
  hyperparameters fitted by marginal likelihood on the support set (2 restarts, seeded).

Each is ``fit_predict(support_x, support_y, query_x) -> (mean, variance)`` on ``(S, *x)``, ``(S, out)``,
``(Q, *x)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
from sklearn.linear_model import BayesianRidge
from torch import Tensor

Fitted = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
MIN_VARIANCE = 1e-6


def _per_output(fit: Fitted, support_x: Tensor, support_y: Tensor, query_x: Tensor) -> tuple[Tensor, Tensor]:
    sx = support_x.flatten(1).double().numpy()
    qx = query_x.flatten(1).double().numpy()
    means, variances = zip(*(fit(sx, y, qx) for y in support_y.double().numpy().T), strict=True)
    mean = torch.from_numpy(np.stack(means, -1)).to(support_y.dtype)
    var = torch.from_numpy(np.stack(variances, -1)).to(support_y.dtype).clamp(min=MIN_VARIANCE)
    return mean, var


def _ridge(sx: np.ndarray, y: np.ndarray, qx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, std = BayesianRidge().fit(sx, y).predict(qx, return_std=True)
    return mean, std**2


def _gp(sx: np.ndarray, y: np.ndarray, qx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    kernel = ConstantKernel(1.0, (1e-3, 1e3)) * RBF(1.0, (1e-2, 1e2)) + WhiteKernel(0.1, (1e-6, 1e1))
    gp = GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=2, random_state=0)
    with warnings.catch_warnings():  # a noise level at its bound on noise-free data is expected
        warnings.simplefilter("ignore", ConvergenceWarning)
        gp.fit(sx, y)
    mean, std = gp.predict(qx, return_std=True)
    return mean, std**2


def bayesian_ridge(support_x: Tensor, support_y: Tensor, query_x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-task Bayesian ridge regression (see the module docstring).

    Example:
        >>> x = torch.arange(6.0).view(6, 1); y = 2 * x + 1
        >>> mean, var = bayesian_ridge(x, y, torch.tensor([[10.0]]))
        >>> round(mean.item(), 2), bool(var.item() < 0.01)
        (21.0, True)
    """
    return _per_output(_ridge, support_x, support_y, query_x)


def gaussian_process(support_x: Tensor, support_y: Tensor, query_x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-task Gaussian process regression (see the module docstring).

    Example:
        >>> x = torch.linspace(0, 6, 12).view(12, 1)
        >>> mean, var = gaussian_process(x, x.sin(), torch.tensor([[1.55], [30.0]]))
        >>> round(mean[0].item(), 2), bool(var[1] > 10 * var[0])    # sure inside the data, unsure far away
        (1.0, True)
    """
    return _per_output(_gp, support_x, support_y, query_x)


BASELINES: dict[str, Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]] = {
    "ridge": bayesian_ridge,
    "gp": gaussian_process,
}
