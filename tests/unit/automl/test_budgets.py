"""Budgets: nested rule orders, the greedy portfolio's first member is the single best, and the inner
loop that picks a rule never sees the held-out family."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from metadl.automl import budgets
from metadl.automl.budgets import RULES, budget_sweep, inner_choice, inner_rule, rule_orderings
from metadl.automl.groundtruth import GroundTruth
from metadl.automl.protocol import credit, out_of_family_predictions
from metadl.automl.selectors import MetaRandomForest
from metadl.automl.tabular import AutoMLError

TREES = 20


def _table(n_families: int = 6, per_family: int = 3, seed: int = 0) -> GroundTruth:
    """Planted: pipeline 0 wins when mf0 > 0, pipeline 2 otherwise; pipeline 1 is 0's near-copy."""
    rng = np.random.default_rng(seed)
    n = n_families * per_family
    meta = rng.normal(size=(n, 3))
    wins0 = meta[:, 0] > 0
    selection = np.where(wins0[:, None], [0.9, 0.88, 0.6], [0.6, 0.6, 0.85]) + 0.01 * rng.normal(size=(n, 3))
    report = selection + 0.01 * rng.normal(size=(n, 3))
    families = tuple(f"fam{i // per_family}" for i in range(n))
    return GroundTruth(
        tuple(f"d{i}" for i in range(n)),
        families,
        ("p0", "p1", "p2"),
        ("a", "b", "c"),
        meta,
        selection,
        report,
    )


def test_orderings_are_out_of_family_and_nested():
    gt = _table()
    orders = rule_orderings(gt, size=3, n_estimators=TREES)
    assert set(orders) == set(RULES) and all(np.isfinite(o).all() for o in orders.values())
    # the meta_rf rule is the meta RF left one family out
    alone = out_of_family_predictions(gt, lambda: MetaRandomForest(n_estimators=TREES))
    assert np.allclose(orders["meta_rf"], alone)
    # budget 0 and 1 choose alike; the portfolio's first member is the training single best
    for rule in RULES:
        assert [c.pipeline for c in credit(gt, orders[rule], 0)] == [
            c.pipeline for c in credit(gt, orders[rule], 1)
        ]
    portfolio = credit(gt, orders["greedy_portfolio"], 0)
    assert all(c.score == c.single_best for c in portfolio)
    # with every pipeline evaluated, every rule reaches the oracle
    assert all(c.score == c.oracle for rule in RULES for c in credit(gt, orders[rule], 3))


def test_the_inner_loop_never_sees_the_held_out_family(monkeypatch):
    gt = _table()
    seen: list[set[str]] = []
    real = budgets.inner_rule

    def spy(train, budget_list, **kwargs):
        seen.append(set(train.families))
        return real(train, budget_list, **kwargs)

    monkeypatch.setattr(budgets, "inner_rule", spy)
    outer = rule_orderings(gt, size=3, n_estimators=TREES)
    _, taken = inner_choice(gt, outer, (0, 2), groups=3, size=3, n_estimators=TREES)
    families = set(gt.families)
    held_out = [families - saw for saw in seen]
    assert len(seen) == 3 and all(len(h) == 2 for h in held_out)  # 6 families in 3 groups
    assert set().union(*held_out) == families  # each family held out once, its rule decided without it
    assert set(taken[0]) == families and set(taken[0].values()) <= set(RULES)
    with pytest.raises(AutoMLError, match="at least 3 groups"):
        inner_choice(gt, outer, (0,), groups=2)


def test_the_held_out_familys_scores_cannot_change_its_rule():
    gt = _table()
    outer = rule_orderings(gt, size=3, n_estimators=TREES)
    _, taken = inner_choice(gt, outer, (0, 2), groups=3, size=3, n_estimators=TREES)
    rows = np.flatnonzero(np.asarray(gt.families) == "fam0")
    scrambled_sel, scrambled_rep = gt.selection.copy(), gt.report.copy()
    scrambled_sel[rows], scrambled_rep[rows] = 1 - gt.selection[rows], 1 - gt.report[rows]
    other = replace(gt, selection=scrambled_sel, report=scrambled_rep)
    _, taken_other = inner_choice(
        other, rule_orderings(other, size=3, n_estimators=TREES), (0, 2), groups=3, size=3, n_estimators=TREES
    )
    assert taken_other[0]["fam0"] == taken[0]["fam0"] and taken_other[2]["fam0"] == taken[2]["fam0"]


def test_inner_rule_prefers_the_rule_that_wins_on_the_training_families():
    gt = _table(n_families=8)  # mf0 decides the winner: the meta RF beats the static portfolio at b = 0
    assert inner_rule(gt, (0,), folds=4, size=3, n_estimators=TREES)[0] in {"meta_rf", "meta_rf_portfolio"}


@pytest.mark.parametrize("budget_list", [(0, 2)])
def test_budget_sweep_pairs_every_rule_with_the_portfolio(budget_list):
    rows = budget_sweep(_table(), budget_list, groups=3, n_estimators=TREES, n_boot=100)
    assert [r.budget for r in rows] == list(budget_list)
    for row in rows:
        assert set(row.summaries) == {*RULES, "inner_choice"}
        assert set(row.versus_portfolio) == {"meta_rf", "meta_rf_portfolio", "inner_choice"}
        assert sum(row.inner_rules.values()) == 6
        rf = row.versus_portfolio["meta_rf"]
        assert rf.gap_difference == pytest.approx(
            row.summaries["meta_rf"].gap_closed - row.summaries["greedy_portfolio"].gap_closed
        )
    assert rows[0].summaries["meta_rf"].gap_closed > rows[0].summaries["greedy_portfolio"].gap_closed
