"""Regression scores (MSE, NLL, coverage) by hand, grouping per entity, learners and baselines as regressors."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from metadl.algorithms import create_learner
from metadl.evaluation.baselines import BASELINES, bayesian_ridge, gaussian_process
from metadl.evaluation.regression import (
    calibrate_variance,
    episode_scores,
    learner_regressor,
    paired_difference,
    score_regressor,
)
from metadl.models import create_backbone
from metadl.tasks import SinusoidSampler
from metadl.tasks.source import NamedTask


def test_episode_scores_match_scipy_and_count_the_points_inside_the_interval():
    mean = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    var = torch.tensor([[1.0], [0.25], [4.0], [1.0]])
    y = torch.tensor([[1.5], [1.0], [-2.0], [5.0]])
    mse, nll, coverage = episode_scores(mean, var, y)
    assert mse == pytest.approx((1.5**2 + 0 + 16 + 4) / 4)
    logpdf = stats.norm.logpdf(y.flatten().numpy(), mean.flatten().numpy(), var.sqrt().flatten().numpy())
    assert nll == pytest.approx(-logpdf.mean())
    assert coverage == 0.5  # |1.5| < 1.96 and 0 < 0.98 inside; 4 > 3.92 and 2 > 1.96 outside


def test_a_calibrated_gaussian_covers_95_percent_and_has_the_entropy_as_nll():
    g = torch.Generator().manual_seed(0)
    sigma = 0.7
    tasks = [
        NamedTask(torch.zeros(2, 1), torch.zeros(2, 1), torch.zeros(200, 1), sigma * torch.randn(200, 1, generator=g),
                  name=f"c{i % 10}")
        for i in range(50)
    ]  # fmt: skip
    scores = score_regressor(
        lambda sx, sy, qx: (torch.zeros(len(qx), 1), torch.full((len(qx), 1), sigma**2)), tasks
    )
    assert scores.episodes == 50 and len(scores.per_group) == 10  # five episodes per group
    assert abs(scores.coverage.mean - 0.95) < 0.01 and scores.coverage.half < 0.01
    assert scores.nll.mean == pytest.approx(0.5 * math.log(2 * math.pi * sigma**2) + 0.5, abs=0.02)
    assert scores.mse.mean == pytest.approx(sigma**2, rel=0.05)


def test_paired_difference_is_positive_when_the_first_is_better():
    tasks = list(SinusoidSampler(k_shot=5, n_query=20, seed=0).sample_batch(30))
    truth = score_regressor(lambda sx, sy, qx: (torch.zeros(len(qx), 1), torch.ones(len(qx), 1)), tasks)
    worse = score_regressor(lambda sx, sy, qx: (torch.full((len(qx), 1), 3.0), torch.ones(len(qx), 1)), tasks)
    margin = paired_difference(truth, worse)
    assert margin.mean - margin.half > 0
    with pytest.raises(ValueError, match="same groups"):
        paired_difference(truth, score_regressor(lambda sx, sy, qx: (qx, qx.abs() + 1), tasks[:3]))


def test_learners_without_variance_need_one_and_calibrate_variance_is_their_mean_mse():
    maml = create_learner("maml", backbone=create_backbone("mlp", in_features=1, hidden=[8]), out_features=1)
    tasks = list(SinusoidSampler(k_shot=5, n_query=10, seed=1).sample_batch(6))
    with pytest.raises(ValueError, match="predicts no variance"):
        learner_regressor(maml)
    v = calibrate_variance(maml, tasks)
    scores = score_regressor(learner_regressor(maml, variance=v), tasks)
    assert scores.mse.mean == pytest.approx(v, rel=1e-5)  # one episode per group: the same average


def test_a_neural_process_scores_with_its_own_variance():
    torch.manual_seed(0)
    cnp = create_learner(
        "cnp", backbone=create_backbone("mlp", in_features=1, hidden=[8]), out_features=1, hidden=8
    )
    task = SinusoidSampler(k_shot=5, n_query=10, seed=1).sample()
    mean, var = learner_regressor(cnp, variance=123.0)(task.support_x, task.support_y, task.query_x)
    assert var.shape == mean.shape == (10, 1) and not torch.allclose(var, torch.tensor(123.0))


def test_bayesian_ridge_fits_a_line_per_output_and_grows_its_variance_away_from_the_data():
    x = torch.linspace(-1, 1, 8).view(8, 1)
    y = torch.cat([2 * x + 1, -x], 1) + 0.01 * torch.randn(8, 2, generator=torch.Generator().manual_seed(0))
    mean, var = bayesian_ridge(x, y, torch.tensor([[0.0], [5.0]]))
    assert mean.shape == var.shape == (2, 2)
    torch.testing.assert_close(mean, torch.tensor([[1.0, 0.0], [11.0, -5.0]]), atol=0.1, rtol=0)
    assert (var[1] > var[0]).all()


def test_gaussian_process_interpolates_a_smooth_function_better_than_ridge():
    task = SinusoidSampler(k_shot=10, n_query=50, seed=3).sample()
    errors = {
        name: float((fit(task.support_x, task.support_y, task.query_x)[0] - task.query_y).pow(2).mean())
        for name, fit in BASELINES.items()
    }
    assert errors["gp"] < errors["ridge"]
    _, var = gaussian_process(task.support_x, task.support_y, task.query_x)
    assert (var > 0).all()
