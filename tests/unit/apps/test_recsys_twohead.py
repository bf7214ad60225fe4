"""The two-head learner: its rating head's inner loop, its implicit head, its ranking, learning on planted data."""

from __future__ import annotations

import math

import pytest
import torch

from metadl.apps.recsys.evaluate import evaluate_users, paired, summarise, user_metrics
from metadl.apps.recsys.meta import EpisodeSettings, TwoHeadMetaRecommender
from metadl.apps.recsys.protocol import ColdStartProtocol, split_users
from metadl.apps.recsys.registry import create_recommender
from metadl.apps.recsys.twohead import TwoHeadRecommender
from metadl.data.synthetic_ratings import planted_ratings
from metadl.tasks.task import Task, TaskBatch

pytestmark = pytest.mark.usefixtures("one_thread_per_module")  # tests/conftest.py

SETTINGS = EpisodeSettings(steps=300, meta_batch=16, shots=(5, 10), lr=1e-2, validate_every=100)


@pytest.fixture(scope="module")
def split():
    # users rate the items that match their taste more often: which items they rate is informative
    ratings = planted_ratings(n_users=400, n_items=80, min_ratings=15, max_ratings=45, selection=1.5, seed=0)
    return split_users(ratings, ColdStartProtocol(), seed=0)


@pytest.fixture(scope="module")
def fitted(split):
    model = create_recommender("twohead", settings=SETTINGS, dim=8, implicit_dim=8)
    model.fit(split)
    return model


def _learner(split, **kwargs):
    stats = split.stats
    return TwoHeadRecommender(item_mean=stats.item_mean(), item_count=stats.count, dim=4, seed=1, **kwargs)


def test_rating_head_starts_at_the_user_item_bias_baseline(split):
    learner = _learner(split, eval_inner_steps=0)
    with torch.no_grad():  # F random, but w0 = 0 and Y = Z = 0: no interaction before any training
        learner.w0.zero_()
    baseline = create_recommender("user_item_bias")
    baseline.fit(split)
    task = split.tasks("test")[0]
    ratings, _ = learner.user_scores(task.support_x, task.support_y)
    torch.testing.assert_close(ratings, baseline.scores(task), atol=1e-5, rtol=0)


def test_inner_loop_lowers_the_support_loss_of_each_user(split):
    learner = _learner(split, inner_lr=0.5)
    with torch.no_grad():
        learner.w0.normal_(generator=torch.Generator().manual_seed(0))  # a start away from the optimum
    batch = split.source("train", k_shot=10, seed=0).sample_batch(8)

    def support_loss(steps):
        state = learner.user_state(batch.support_x, batch.support_y, steps)
        return (learner.predict_ratings(state, batch.support_x) - batch.support_y).pow(2).mean((1, 2))

    with torch.no_grad():
        before, after = support_loss(0), support_loss(3)
    assert (after < before).all(), (before, after)


def test_forward_is_rating_loss_plus_weighted_implicit_cross_entropy(split):
    batch: TaskBatch = split.source("train", k_shot=5, seed=1).sample_batch(4)
    plain, weighted = _learner(split, implicit_weight=0.0), _learner(split, implicit_weight=0.5)
    mse = plain(batch).loss
    log_p = plain.log_p_rated(batch.support_x)
    ce = -log_p.gather(1, batch.query_x[..., 1]).mean()
    torch.testing.assert_close(weighted(batch).loss, mse + 0.5 * ce)
    l1 = _learner(split, implicit_weight=0.0, rating_loss="l1")
    torch.testing.assert_close(l1(batch).loss, (l1(batch).logits - batch.query_y).abs().mean())


def test_implicit_head_is_a_distribution_over_unrated_items(split):
    learner = _learner(split)
    task = split.tasks("val")[0]
    with torch.no_grad():
        log_p = learner.log_p_rated(task.support_x.unsqueeze(0))[0]
        assert torch.isinf(log_p[task.support_x[:, 1]]).all()
        assert math.isclose(float(log_p.exp().sum()), 1.0, rel_tol=1e-5)
        learner.key.zero_()  # no taste read from the support: p(i) is proportional to meta-train count + 1
        log_p = learner.log_p_rated(task.support_x.unsqueeze(0))[0]
    unseen = torch.isfinite(log_p)
    expected = (split.stats.count[unseen] + 1) / (split.stats.count[unseen] + 1).sum()
    torch.testing.assert_close(log_p[unseen].exp(), expected.float())


def test_ranking_mixes_the_heads_with_the_validation_chosen_beta(split, fitted):
    assert set(fitted.validation_ndcg) == set(fitted.betas) and fitted.beta in fitted.betas
    assert fitted.validation_ndcg[fitted.beta] == max(fitted.validation_ndcg.values())
    task = split.tasks("test")[0]
    ratings, log_p = fitted.learner.user_scores(task.support_x, task.support_y)
    torch.testing.assert_close(fitted.scores(task), ratings)
    torch.testing.assert_close(fitted.ranking(task), log_p + fitted.beta * ratings)


def test_beats_global_and_item_mean_on_mae_and_popularity_on_full_ranking(split, fitted):
    tasks = split.tasks("test")
    ours = evaluate_users(fitted, tasks)
    for name, metric in (("global_mean", "mae"), ("item_mean", "mae"), ("popularity", "ndcg@10_full")):
        baseline = create_recommender(name)
        baseline.fit(split)
        diff = paired(ours, evaluate_users(baseline, tasks), metric)
        ahead = diff.mean + diff.ci95 < 0 if metric == "mae" else diff.mean - diff.ci95 > 0
        assert ahead, (name, metric, diff, summarise(ours[metric]))


def test_unfitted_and_bad_settings_fail_with_one_line(split):
    with pytest.raises(ValueError, match="not fitted"):
        TwoHeadMetaRecommender().scores(split.tasks("test")[0])
    with pytest.raises(ValueError, match="betas is empty"):
        TwoHeadMetaRecommender(betas=())
    with pytest.raises(ValueError, match="rating_loss='l2'"):
        _learner(split, rating_loss="l2")
    with pytest.raises(ValueError, match="dim, implicit_dim, inner_steps >= 1"):
        _learner(split, implicit_dim=0)


def test_user_metrics_rank_by_the_ranking_not_the_ratings():
    x = torch.tensor([[0, 0]])
    task = Task(x, torch.tensor([[3.0]]), torch.tensor([[0, 1], [0, 2]]), torch.tensor([[5.0], [1.0]]))
    ratings = torch.tensor([3.0, 2.0, 4.0])  # item 2 first by rating, but item 1 is the relevant one
    by_rating = user_metrics(ratings, task, predicts_ratings=True)
    by_ranking = user_metrics(ratings, task, predicts_ratings=True, ranking=torch.tensor([0.0, 1.0, 0.5]))
    assert by_rating["recall@10_full"] == 1.0 and by_rating["ndcg@10_full"] == pytest.approx(1 / math.log2(3))
    assert by_ranking["ndcg@10_full"] == 1.0 and by_ranking["mae"] == by_rating["mae"] == pytest.approx(
        3.0
    )  # |2 - 5|, |4 - 1|
