"""Rating and ranking metrics against hand-computed values (ties, gain definitions, paired CIs)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from metadl.evaluation.confidence import mean_ci95, paired_difference_ci95
from metadl.evaluation.ranking import dcg_at_k, mae, ndcg_at_k, recall_at_k, rmse

L2, L3, L4, L5 = 1.0, 1 / math.log2(3), 0.5, 1 / math.log2(5)  # discounts of ranks 0-3


def test_mae_rmse_by_hand():
    assert mae([1, 2, 3], [2, 2, 5]) == pytest.approx(1.0)
    assert rmse([1, 2, 3], [2, 2, 5]) == pytest.approx(math.sqrt(5 / 3))


def test_ndcg_exp_gain_by_hand():
    # ratings 4, 1, 5, 2 scored so that the order is 1st item, 3rd, 2nd, 4th; gains 15, 1, 31, 3
    got = ndcg_at_k([0.9, 0.3, 0.8, 0.1], [4, 1, 5, 2], k=3)
    dcg = 15 * L2 + 31 * L3 + 1 * L4
    ideal = 31 * L2 + 15 * L3 + 3 * L4
    assert got == pytest.approx(dcg / ideal)
    assert ndcg_at_k([4, 3, 2, 1], [5, 4, 2, 1], k=4) == pytest.approx(1.0)


def test_ndcg_linear_gain_by_hand():
    got = ndcg_at_k([0.1, 0.9, 0.5], [1, 0, 1], k=2, gain="linear")
    assert got == pytest.approx((0 * L2 + 1 * L3) / (L2 + L3))


def test_ties_score_the_expectation_over_random_orders():
    # all tied: every rank gets the mean gain; equals the average over all 3! orders
    gains = [7.0, 1.0, 0.0]
    tied = dcg_at_k([1.0, 1.0, 1.0], gains, k=2)
    assert tied == pytest.approx((8 / 3) * (L2 + L3))
    orders = [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)]
    brute = np.mean([gains[o[0]] * L2 + gains[o[1]] * L3 for o in orders])
    assert tied == pytest.approx(brute)
    # the result does not depend on the items' positions in the input (no sort-order tie breaking)
    assert dcg_at_k([1.0, 1.0, 1.0], gains[::-1], k=2) == pytest.approx(tied)


def test_recall_by_hand_with_ties_and_undefined_users():
    assert recall_at_k([0.9, 0.8, 0.1, 0.0], [True, False, True, False], k=2) == pytest.approx(0.5)
    assert recall_at_k([0.9, 0.5, 0.5, 0.5], [True, True, False, False], k=2) == pytest.approx(
        (1 + 1 / 3) / 2
    )
    assert math.isnan(recall_at_k([0.1, 0.2], [False, False], k=1))
    assert math.isnan(ndcg_at_k([0.1, 0.2], [0, 0], k=1, gain="linear"))


def test_metric_input_errors():
    with pytest.raises(ValueError, match="same length"):
        dcg_at_k([1.0, 2.0], [1.0], k=1)
    with pytest.raises(ValueError, match="k must be >= 1"):
        dcg_at_k([1.0], [1.0], k=0)


def test_paired_difference_ci_drops_nan_pairs_and_matches_mean_ci():
    a, b = [0.5, 0.7, math.nan, 0.9], [0.4, 0.5, 0.3, 0.8]
    assert paired_difference_ci95(a, b) == pytest.approx(mean_ci95([0.1, 0.2, 0.1]))
    with pytest.raises(ValueError, match="same shape"):
        paired_difference_ci95([1.0], [1.0, 2.0])
