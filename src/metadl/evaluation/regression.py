"""Meta-regression scores: MSE, Gaussian negative log-likelihood and 95%-interval coverage, with CIs.

A *regressor* here is anything that, given one task's support set, predicts a Gaussian for each
query point: ``fit_predict(support_x, support_y, query_x) -> (mean, variance)``, both ``(Q, out)``.
:func:`learner_regressor` makes one of a metadl learner (``adapt`` then ``predict`` /
``predict_variance``); a learner without a variance (MAML, Meta-SGD) gets a constant one, e.g. its
mean query MSE on validation tasks (:func:`calibrate_variance`: the maximum-likelihood constant, so
its NLL and coverage are defined and fair). :mod:`metadl.evaluation.baselines` has per-task
baselines (Bayesian ridge, Gaussian process) of the same shape.

Scores are computed per episode and averaged per *group* (a task's name: the country of a fertility
episode), and the 95% interval is over groups: episodes drawn from the same entity are not
independent, so an interval over episodes would be too narrow. Unnamed tasks are their own group.
:func:`paired_difference` gives the interval of the per-group difference of two regressors' scores
(the margin by which one beats the other).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from metadl.algorithms.base import Learner, gaussian_nll
from metadl.evaluation.confidence import mean_ci95
from metadl.tasks.source import NamedTask
from metadl.tasks.task import Task

Regressor = Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]
Z95 = 1.959963984540054  # the standard normal's 97.5% quantile


@dataclass(frozen=True)
class Interval:
    """A mean and the half-width of its 95% confidence interval."""

    mean: float
    half: float

    def __str__(self) -> str:
        return f"{self.mean:.4f} ± {self.half:.4f}"


@dataclass(frozen=True)
class RegressionScores:
    """Scores of one regressor over a set of episodes, averaged per group (see the module docstring).

    Attributes:
        mse, nll, coverage: per-group means with 95% intervals over groups; ``coverage`` is the
            fraction of query targets inside ``mean ± 1.96 sqrt(variance)``.
        per_group: ``{name: (mse, nll, coverage)}``, for paired comparisons.
        episodes: how many episodes were scored.
    """

    mse: Interval
    nll: Interval
    coverage: Interval
    per_group: dict[str, tuple[float, float, float]]
    episodes: int


def episode_scores(mean: Tensor, variance: Tensor, y: Tensor) -> tuple[float, float, float]:
    """MSE, mean Gaussian NLL per target element, and 95%-interval coverage of one episode.

    Example:
        >>> mse, nll, cov = episode_scores(torch.zeros(4, 1), torch.ones(4, 1), torch.tensor([[0.0], [1.0], [-1.0], [3.0]]))
        >>> mse, round(nll, 4), cov
        (2.75, 2.2939, 0.75)
    """
    mean, variance, y = mean.double(), variance.double(), y.double()
    inside = (y - mean).abs() <= Z95 * variance.sqrt()
    return (
        float((mean - y).pow(2).mean()),
        float(gaussian_nll(mean, variance, y)),
        float(inside.double().mean()),
    )


def score_regressor(fit_predict: Regressor, tasks: Sequence[Task]) -> RegressionScores:
    """Score ``fit_predict`` on every task (support -> query) and average per group."""
    if not tasks:
        raise ValueError("score_regressor needs at least one task")
    groups: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    for i, task in enumerate(tasks):
        if task.is_classification:
            raise ValueError("score_regressor needs regression tasks (float targets); got class labels")
        mean, variance = fit_predict(task.support_x, task.support_y, task.query_x)
        name = task.name if isinstance(task, NamedTask) else f"episode {i}"
        groups[name].append(episode_scores(mean, variance, task.query_y))
    per_group = {k: tuple(float(v) for v in np.mean(rows, axis=0)) for k, rows in groups.items()}
    columns = np.array(list(per_group.values()))  # (groups, 3)
    mse, nll, cov = (Interval(*mean_ci95(columns[:, j])) for j in range(3))
    return RegressionScores(mse, nll, cov, per_group, len(tasks))  # type: ignore[arg-type]


def paired_difference(a: RegressionScores, b: RegressionScores, metric: str = "mse") -> Interval:
    """Mean and 95% interval over groups of ``b - a`` for ``metric`` (``"mse"``, ``"nll"``): positive when
    ``a`` is better (lower). Both must have scored the same groups.

    Example:
        >>> s = lambda v: RegressionScores(*(Interval(0, 0),) * 3, {"x": (v, 0, 0), "y": (v + 1, 0, 0)}, 2)
        >>> paired_difference(s(1.0), s(3.0))
        Interval(mean=2.0, half=0.0)
    """
    column = {"mse": 0, "nll": 1}[metric]
    if a.per_group.keys() != b.per_group.keys():
        raise ValueError("paired_difference needs scores over the same groups (the same episodes)")
    return Interval(*mean_ci95([b.per_group[k][column] - a.per_group[k][column] for k in a.per_group]))


def learner_regressor(learner: Learner, variance: float | None = None) -> Regressor:
    """A learner as a regressor: ``adapt`` to the support set, predict the query set.

    ``variance``: the constant predictive variance for a learner without its own (required then, e.g.
    from :func:`calibrate_variance`); ignored when the learner predicts one.
    """
    learner.eval()
    if not learner.capabilities.uncertainty and variance is None:
        raise ValueError(
            f"{type(learner).__name__} predicts no variance; give variance= (e.g. calibrate_variance on validation tasks)"
        )
    if variance is not None and not (variance > 0 and math.isfinite(variance)):
        raise ValueError(f"variance must be a positive number, got {variance}")

    def fit_predict(support_x: Tensor, support_y: Tensor, query_x: Tensor) -> tuple[Tensor, Tensor]:
        predictor = learner.adapt(support_x, support_y)
        mean = predictor.predict(query_x)
        if predictor.has_variance:
            return mean, predictor.predict_variance(query_x)
        assert variance is not None
        return mean, torch.full_like(mean, variance)

    return fit_predict


def calibrate_variance(learner: Learner, tasks: Sequence[Task]) -> float:
    """The maximum-likelihood constant variance of a learner's predictions: its mean query MSE on ``tasks``."""
    errors = []
    learner.eval()
    for task in tasks:
        prediction = learner.adapt(task.support_x, task.support_y).predict(task.query_x)
        errors.append(float((prediction - task.query_y).pow(2).mean()))
    return float(np.mean(errors))
