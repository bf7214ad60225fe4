"""Recommenders: baselines by hand, MeLU's per-user adaptation, meta-learners on planted low-rank data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from metadl.algorithms.inner_loop import query_loss
from metadl.algorithms.melu import MeLU
from metadl.apps.recsys.evaluate import evaluate_users, paired, summarise, user_metrics
from metadl.apps.recsys.meta import EpisodeSettings, MetaRecommender, melu_builder, ridge_builder
from metadl.apps.recsys.protocol import ColdStartProtocol, split_users
from metadl.apps.recsys.registry import BASELINES, create_recommender, list_recommenders
from metadl.data.synthetic_ratings import planted_ratings
from metadl.models.melu import MeLUNet
from metadl.tasks.task import Task, TaskBatch

pytestmark = pytest.mark.usefixtures("one_thread_per_module")  # tests/conftest.py


@pytest.fixture(scope="module")
def split():
    ratings = planted_ratings(n_users=400, n_items=80, min_ratings=15, max_ratings=45, seed=0)
    return split_users(ratings, ColdStartProtocol(), seed=0)


def _task(support, query, user=0):
    """A task from ``[(item, rating), ...]`` pairs."""

    def side(pairs):
        x = torch.tensor([[user, i] for i, _ in pairs])
        return x, torch.tensor([[float(r)] for _, r in pairs])

    return Task(*side(support), *side(query))


def test_baselines_by_hand(split):
    stats = split.stats
    task = _task([(0, 5), (1, 4)], [(2, 3)])
    mean = create_recommender("global_mean")
    mean.fit(split)
    assert torch.allclose(mean.scores(task), torch.full((80,), stats.global_mean))
    item = create_recommender("item_mean", damping=2.0)
    item.fit(split)
    expected = (stats.total[7] + 2 * stats.global_mean) / (stats.count[7] + 2)
    assert item.scores(task)[7].item() == pytest.approx(float(expected), rel=1e-6)
    bias = create_recommender("user_item_bias", damping=2.0, user_damping=3.0)
    bias.fit(split)
    b_u = ((5 - item.scores(task)[0]) + (4 - item.scores(task)[1])) / (2 + 3)
    assert torch.allclose(bias.scores(task), item.scores(task) + b_u)
    pop = create_recommender("popularity")
    pop.fit(split)
    assert torch.equal(pop.scores(task), stats.count.float())
    a, b = create_recommender("random", seed=1), create_recommender("random", seed=1)
    a.fit(split)
    b.fit(split)
    assert torch.equal(a.scores(task), b.scores(task))


def test_mf_fold_in_fits_the_new_users_support(split):
    mf = create_recommender("mf", epochs=100)
    mf.fit(split)
    item = create_recommender("item_mean")
    item.fit(split)
    errors = []
    for task in split.tasks("test"):
        items, ratings = task.support_x[:, 1], task.support_y[:, 0]
        errors.append(
            (
                (mf.scores(task)[items] - ratings).abs().mean()
                - (item.scores(task)[items] - ratings).abs().mean()
            ).item()
        )
    assert np.mean(errors) < 0  # fine-tuning on the support fits it better than item means do


def test_user_metrics_by_hand():
    # catalogue of 6 items; support items 0, 1; query items 2 (rated 5), 3 (rated 2), 4 (rated 4)
    task = _task([(0, 3), (1, 4)], [(2, 5), (3, 2), (4, 4)])
    scores = torch.tensor([9.0, 9.0, 4.0, 5.0, 3.0, 1.0])
    m = user_metrics(scores, task, predicts_ratings=True)
    assert m["mae"] == pytest.approx((1 + 3 + 1) / 3)
    assert m["rmse"] == pytest.approx(math.sqrt((1 + 9 + 1) / 3))
    # full catalogue without the support: items 3 (5.0), 2 (4.0), 4 (3.0), 5; relevant: items 2 and 4
    ideal = 1 + 1 / math.log2(3)
    assert m["ndcg@10_full"] == pytest.approx((1 / math.log2(3) + 1 / 2) / ideal)
    assert m["recall@10_full"] == pytest.approx(1.0)
    assert math.isnan(user_metrics(scores, task, predicts_ratings=False)["mae"])


def _melu(split, adapt="decision"):
    torch.manual_seed(0)
    net = MeLUNet(user_features=split.ratings.user_features, item_features=split.ratings.item_features,
                  embed_dim=4, hidden=[16, 8])  # fmt: skip
    return MeLU(backbone=net, adapt=adapt, inner_lr=0.05, inner_steps=3)


@pytest.mark.parametrize("adapt", ["decision", "full"])
def test_per_user_adaptation_lowers_the_support_loss(split, adapt):
    learner = _melu(split, adapt)
    batch = split.source("train", k_shot=10, seed=0).sample_batch(8)
    theta = learner.inner_params()
    fn = learner.network()
    before = query_loss(torch.stack([fn(theta, x) for x in batch.support_x]), batch.support_y)
    with torch.no_grad():
        phi = learner.adapt_params(batch.support_x, batch.support_y, steps=3)
    after = query_loss(torch.stack([fn({k: v[t] for k, v in phi.items()}, x) for t, x in enumerate(batch.support_x)]),
                       batch.support_y)  # fmt: skip
    assert after < before
    adapted = set(phi)
    assert ("backbone.item_id_embedding.weight" in adapted) == (adapt == "full")
    assert {"head.weight", "backbone.decision.0.weight"} <= adapted


def test_melu_vectorised_over_users_equals_the_per_user_loop(split):
    learner = _melu(split)
    batch: TaskBatch = split.source("train", k_shot=5, seed=1).sample_batch(4)
    out = learner(batch).logits
    learner.settings = type(learner.settings)(inner_steps=3, vectorize=False)
    assert torch.allclose(learner(batch).logits, out, atol=1e-5)


def test_melu_rejects_an_unknown_adaptation_scope(split):
    with pytest.raises(ValueError, match="adapt='heads'; use 'decision'"):
        MeLU(backbone=_melu(split).backbone, adapt="heads")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "builder", [melu_builder(embed_dim=8, hidden=(32, 16)), ridge_builder(dim=8)], ids=["melu", "ridge"]
)
def test_meta_learners_beat_global_and_item_mean_on_planted_low_rank_data(split, builder):
    tasks = split.tasks("test")
    model = MetaRecommender(
        builder, EpisodeSettings(steps=300, meta_batch=16, shots=(5, 10), lr=1e-2, validate_every=100)
    )
    model.fit(split)
    ours = evaluate_users(model, tasks)
    for name in ("global_mean", "item_mean"):
        baseline = create_recommender(name)
        baseline.fit(split)
        diff = paired(ours, evaluate_users(baseline, tasks), "mae")
        assert diff.mean + diff.ci95 < 0, (name, diff, summarise(ours["mae"]))


def test_registry_builds_every_recommender_and_each_scores_the_catalogue(split):
    task = split.tasks("test")[0]
    assert set(BASELINES) < set(list_recommenders())
    for name in list_recommenders():
        kwargs = (
            {"settings": EpisodeSettings(steps=2, meta_batch=2, validate_every=1)}
            if name not in BASELINES
            else {}
        )
        rec = create_recommender(name, **kwargs)
        rec.fit(split)
        scores = rec.scores(task)
        assert scores.shape == (split.ratings.n_items,) and torch.isfinite(scores).all(), name
    with pytest.raises(ValueError, match="unknown recommender 'knn'"):
        create_recommender("knn")
    with pytest.raises(TypeError, match="create_recommender\\('mf'\\)"):
        create_recommender("mf", depth=3)
