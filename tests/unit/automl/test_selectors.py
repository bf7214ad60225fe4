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
