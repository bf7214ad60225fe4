import math

import numpy as np
import pytest
import torch
from scipy import stats

from metadl.algorithms import create_learner
from metadl.data.base import FewShotDataset
from metadl.evaluation import evaluate, mean_ci95
from metadl.models import create_backbone
from metadl.tasks import EpisodeSampler, SinusoidSampler


def test_ci_matches_scipy_t_interval():
    x = np.random.default_rng(0).random(57)
    mean, half = mean_ci95(x)
    low, high = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    assert mean == pytest.approx(x.mean()) and half == pytest.approx((high - low) / 2)
    assert mean_ci95([0.5])[1] == math.inf
    with pytest.raises(ValueError):
        mean_ci95([])


def test_fixed_seed_gives_identical_episodes_and_scores():
    g = torch.Generator().manual_seed(0)
    ds = FewShotDataset(
        torch.randn(200, 4, generator=g), torch.arange(10).repeat_interleave(20), list("abcdefghij")
    )
    torch.manual_seed(0)
    learner = create_learner("protonet", backbone=create_backbone("mlp", in_features=4, hidden=[8]), n_way=5)
    runs = [
        evaluate(
            learner, EpisodeSampler(ds, n_way=5, k_shot=1, n_query=3, seed=11), episodes=40, batch_size=7
        )
        for _ in range(2)
    ]
    other_batching = evaluate(
        learner, EpisodeSampler(ds, n_way=5, k_shot=1, n_query=3, seed=11), episodes=40, batch_size=40
    )
    assert runs[0].per_episode == runs[1].per_episode == other_batching.per_episode and runs[0].episodes == 40
    assert runs[0].metric == "accuracy" and 0 <= runs[0].mean <= 1


def test_regression_is_reported_as_mse():
    class Zero(torch.nn.Module):  # predicts 0: its MSE is the mean of y^2
        def forward(self, batch):
            from metadl.algorithms.base import make_output

            return make_output(torch.zeros_like(batch.query_y), batch)

    res = evaluate(Zero(), SinusoidSampler(k_shot=5, n_query=50, seed=0), episodes=200)
    again = SinusoidSampler(k_shot=5, n_query=50, seed=0)
    expected = torch.stack([again.sample().query_y.pow(2).mean() for _ in range(200)]).mean()
    assert res.metric == "mse" and res.mean == pytest.approx(float(expected), rel=1e-5)
