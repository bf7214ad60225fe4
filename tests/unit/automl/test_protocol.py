"""Leave-one-family-out: no family sees its own results; the metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from metadl.automl.groundtruth import GroundTruth
from metadl.automl.protocol import Choice, choose, family_splits, leave_one_family_out, summarize
from metadl.automl.selectors import SingleBest


def _table() -> GroundTruth:
    families = ("ecoli", "ecoli", "yeast", "iris", "yeast", "ecoli")
    n = len(families)
    meta = np.arange(n, dtype=float)[:, None]  # row i's meta-feature is i: the spy can tell rows apart
    selection = np.tile([0.5, 0.6, 0.7], (n, 1)) + 0.01 * np.arange(n)[:, None]
    return GroundTruth(
        tuple(f"d{i}" for i in range(n)),
        families,
        ("p0", "p1", "p2"),
        ("row",),
        meta,
        selection,
        selection - 0.01,
    )


class Spy(SingleBest):
    """Records the rows it was trained on and asked about."""

    seen: list[tuple[set[int], set[int]]] = []

    def fit(self, metafeatures, scores):
        self.train_rows = {int(v) for v in metafeatures[:, 0]}
        return super().fit(metafeatures, scores)

    def predict(self, metafeatures):
        Spy.seen.append((self.train_rows, {int(v) for v in metafeatures[:, 0]}))
        return super().predict(metafeatures)


def test_a_family_never_sees_its_own_results():
    gt = _table()
    Spy.seen = []
    choices = leave_one_family_out(gt, Spy)
    assert len(Spy.seen) == 3 and len(choices) == 6
    for train_rows, test_rows in Spy.seen:
        test_families = {gt.families[i] for i in test_rows}
        assert len(test_families) == 1
        assert not {gt.families[i] for i in train_rows} & test_families
        assert train_rows | test_rows == set(range(6))


def test_family_splits_partition_the_rows():
    splits = list(family_splits(["b", "a", "b", "c"]))
    assert [f for f, _, _ in splits] == ["a", "b", "c"]
    assert sorted(np.concatenate([te for _, _, te in splits]).tolist()) == [0, 1, 2, 3]


def test_choose_trusts_the_prediction_or_evaluates_the_top_k():
    predicted, cv = np.array([0.2, 0.9, 0.5, 0.8]), np.array([0.9, 0.1, 0.6, 0.3])
    assert choose(predicted, cv, 1) == 1
    assert choose(predicted, cv, 3) == 2  # of 1, 3, 2 the cross-validation prefers 2


def test_metrics_against_a_hand_computed_example():
    # family A: two datasets; family B: one. Per family, then averaged over families:
    # selector  A (0.70 + 0.80)/2 = 0.75, B 0.90 -> 0.825
    # single    A (0.60 + 0.80)/2 = 0.70, B 0.60 -> 0.65
    # oracle    A (0.80 + 0.90)/2 = 0.85, B 0.90 -> 0.875
    # gap closed = (0.825 - 0.65) / (0.875 - 0.65) = 0.175 / 0.225 = 0.7777...
    choices = [
        Choice("a1", "A", 0, 0.70, 0.60, 0.80, 2.0, False),
        Choice("a2", "A", 1, 0.80, 0.80, 0.90, 3.0, False),
        Choice("b1", "B", 2, 0.90, 0.60, 0.90, 1.0, True),
    ]
    s = summarize("sel", choices, n_boot=500)
    assert s.gap_closed == pytest.approx(0.175 / 0.225)
    assert s.top1 == pytest.approx((0.0 + 1.0) / 2)
    assert s.average_rank == pytest.approx((2.5 + 1.0) / 2)
    assert (s.mean_score, s.single_best_score, s.oracle_score) == pytest.approx((0.825, 0.65, 0.875))
    assert s.gap_ci[0] <= s.gap_closed <= s.gap_ci[1]
    assert (s.n_families, s.n_datasets) == (2, 3)


def test_the_single_best_selector_scores_exactly_the_single_best():
    gt = _table()
    s = summarize("single_best", leave_one_family_out(gt, SingleBest), n_boot=0)
    assert s.mean_score == pytest.approx(s.single_best_score)
