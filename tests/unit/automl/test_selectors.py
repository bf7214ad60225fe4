"""Selector conformance (every registered selector), and recovery of a planted meta-dataset."""

from __future__ import annotations

import numpy as np
import pytest

from metadl.automl.selectors import (
    GreedyPortfolio,
    KNearestDatasets,
    create_selector,
    greedy_portfolio,
    list_selectors,
)
from metadl.automl.tabular import AutoMLError


def planted(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Meta-features (n, 6); the best of 4 pipelines is the quadrant of (mf0, mf3); mf1, mf2, mf4, mf5 are noise.

    Scores also carry a dataset difficulty (shared by all pipelines) and small noise, as real ones do.
    """
    rng = np.random.default_rng(seed)
    meta = rng.normal(size=(n, 6))
    best = 2 * (meta[:, 0] > 0) + (meta[:, 3] > 0)
    difficulty = rng.uniform(0.5, 0.9, size=(n, 1))
    scores = difficulty + 0.02 * rng.normal(size=(n, 4))
    scores[np.arange(n), best] += 0.1
    return meta, scores


@pytest.mark.parametrize("name", list_selectors())
def test_selector_contract(name):
    meta, scores = planted(30, 0)
    selector = create_selector(name).fit(meta, scores)
    predicted = selector.predict(meta[:5])
    assert predicted.shape == (5, 4) and np.isfinite(predicted).all()
    assert selector.evaluations >= 1
    with pytest.raises(AutoMLError, match="need metafeatures"):
        create_selector(name).fit(meta[:1], scores[:1])


@pytest.mark.parametrize(("name", "least"), [("meta_rf", 0.95), ("meta_svm", 0.7), ("knn_datasets", 0.7)])
def test_meta_learners_recover_the_planted_rule(name, least):
    meta, scores = planted(300, 1)
    test_meta, test_scores = planted(200, 2)
    chosen = create_selector(name).fit(meta, scores).predict(test_meta).argmax(axis=1)
    accuracy = (chosen == test_scores.argmax(axis=1)).mean()
    single_best = (test_scores.argmax(axis=1) == scores.mean(axis=0).argmax()).mean()
    assert accuracy >= least > single_best + 0.4


def test_meta_rf_finds_the_two_meta_features_that_matter():
    meta, scores = planted(300, 1)
    importances = create_selector("meta_rf").fit(meta, scores).importances_
    assert set(np.argsort(importances)[-2:]) == {0, 3}


def test_greedy_portfolio_covers_complementary_pipelines():
    scores = np.array([[0.9, 0.1, 0.5], [0.1, 0.9, 0.5], [0.9, 0.1, 0.5]])
    assert greedy_portfolio(scores, 2) == [0, 1]  # 2 alone has regret 0.4; 0 then 1 brings it to 0
    selector = GreedyPortfolio(size=2).fit(np.zeros((3, 1)), scores)
    assert selector.evaluations == 2 and selector.predict(np.zeros((1, 1)))[0].argsort()[::-1][
        :2
    ].tolist() == [0, 1]


def test_nearest_datasets_are_nearest_in_standardised_space():
    meta = np.array([[0.0, 0.0], [1.0, 100.0], [5.0, 0.0]])
    knn = KNearestDatasets(k=2).fit(meta, np.eye(3))
    assert knn.neighbours(np.array([[0.9, 90.0]])).tolist() == [[1, 0]]


def test_unknown_selector_and_bad_arguments_fail_in_one_line():
    with pytest.raises(AutoMLError, match="unknown selector 'svm'.*meta_svm"):
        create_selector("svm")
    with pytest.raises(AutoMLError, match="meta_rf"):
        create_selector("meta_rf", trees=5)
    with pytest.raises(AutoMLError, match="k=0"):
        create_selector("knn_datasets", k=0)


def _two_scenarios(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Uninformative meta-features; 3 in 5 datasets favour pipeline 0 (and its near-copy 1), the others pipeline 2."""
    rng = np.random.default_rng(seed)
    meta = rng.normal(size=(n, 3))
    first = np.arange(n) % 5 < 3
    scores = np.where(first[:, None], [1.0, 0.99, 0.0], [0.0, 0.0, 0.9])
    return meta, scores


def test_meta_rf_portfolio_covers_the_other_scenario_not_the_near_copy():
    meta, scores = _two_scenarios()
    hybrid = create_selector("meta_rf_portfolio", size=2).fit(meta, scores)
    forest = create_selector("meta_rf").fit(meta, scores)
    new = np.zeros((1, 3))
    # the forest ranks the near-copy second; the hybrid adds the pipeline that wins where 0 loses
    assert np.argsort(-forest.predict(new)[0])[:2].tolist() == [0, 1]
    assert hybrid.members(new)[0].tolist() == [0, 2]
    assert np.argsort(-hybrid.predict(new)[0])[:2].tolist() == [0, 2]


def test_meta_rf_portfolio_starts_with_the_meta_rf_top1_and_its_orders_are_nested():
    meta, scores = planted(60, 1)
    new = planted(10, 2)[0]
    forest = create_selector("meta_rf").fit(meta, scores)
    hybrid = create_selector("meta_rf_portfolio", size=4).fit(meta, scores)
    assert (hybrid.members(new)[:, 0] == forest.predict(new).argmax(axis=1)).all()
    short = create_selector("meta_rf_portfolio", size=2).fit(meta, scores)
    assert (short.members(new) == hybrid.members(new)[:, :2]).all()
    ranked = np.argsort(-hybrid.predict(new), axis=1, kind="stable")[:, :4]
    assert (ranked == hybrid.members(new)).all()
