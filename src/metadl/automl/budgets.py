"""Selection at equal evaluation budgets: the meta RF, the greedy portfolio and two hybrids, paired.

A *budget* b is how many pipelines are cross-validated on the new dataset (on its selection repeats)
before choosing; the best of them is credited with its report score. b = 0 chooses without evaluating
anything, so it takes each rule's first pipeline; b = 1 evaluates that same pipeline and so makes the
same choice (it only learns the score). Every rule's order is nested in b, so one fit serves every budget:

- ``meta_rf``: the top b of the meta random forest's predicted scores;
- ``greedy_portfolio``: the first b members of auto-sklearn 2.0's static portfolio (its first member is
  the single best pipeline);
- ``meta_rf_portfolio``: the hybrid :class:`~metadl.automl.selectors.MetaRFPortfolio` (the meta RF's
  top 1, then the members that add most expected gain over its trees);
- ``inner_choice``: the families are dealt into ``groups`` groups; for the families of each group,
  whichever of those three rules has the best family-averaged report score at this budget in an
  *inner* loop run on the other groups' families alone (``groups - 1`` inner folds, each predicted by
  rules fitted on the others), so the rule is decided without looking at the held-out family.

Each hybrid and the meta RF is compared with the greedy portfolio of the same budget by
:func:`~metadl.automl.comparison.paired_difference` (same held-out families, paired bootstrap).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from metadl.automl.comparison import PairedDifference, paired_difference
from metadl.automl.groundtruth import GroundTruth
from metadl.automl.protocol import (
    SelectionSummary,
    credit,
    family_group_splits,
    out_of_family_splits,
    summarize,
)
from metadl.automl.selectors import GreedyPortfolio, MetaRFPortfolio
from metadl.automl.tabular import AutoMLError

RULES = ("meta_rf", "greedy_portfolio", "meta_rf_portfolio")
BUDGETS = (0, 1, 2, 3, 5)


def rule_orderings(
    gt: GroundTruth, *, folds: int | None = None, size: int = 5, n_estimators: int = 300
) -> dict[str, np.ndarray]:
    """Out-of-family ranking scores ``(n, P)`` of each rule in :data:`RULES`.

    One meta RF per split serves both the ``meta_rf`` rule (its predictions) and the hybrid (its trees).

    Args:
        folds: None leaves one family out at a time; else families are dealt into ``folds`` groups.
        size: the longest portfolio needed (the largest budget).
    """
    out = {rule: np.full(gt.selection.shape, np.nan) for rule in RULES}
    for train, test in out_of_family_splits(gt.families, folds):
        X, S, new = gt.metafeatures[train], gt.selection[train], gt.metafeatures[test]
        hybrid = MetaRFPortfolio(size=size, n_estimators=n_estimators).fit(X, S)
        out["meta_rf"][test] = hybrid.forest_.predict(new)
        out["meta_rf_portfolio"][test] = hybrid.predict(new)
        out["greedy_portfolio"][test] = GreedyPortfolio(size=size).fit(X, S).predict(new)
    return out


def family_mean_score(gt: GroundTruth, predicted: np.ndarray, budget: int) -> float:
    """Mean over families of the mean report score of the choices at ``budget``.

    Example:
        >>> gt = GroundTruth(("a", "b"), ("f", "g"), ("p", "q"), ("m",), np.zeros((2, 1)),
        ...                  np.array([[0.5, 0.9], [0.5, 0.4]]), np.array([[0.6, 0.8], [0.7, 0.1]]))
        >>> round(family_mean_score(gt, np.array([[1.0, 0.0], [1.0, 0.0]]), 0), 3)  # p both times
        0.65
        >>> round(family_mean_score(gt, np.array([[1.0, 0.0], [1.0, 0.0]]), 2), 3)  # q on a, p on b
        0.75
    """
    choices = credit(gt, predicted, budget)
    families = sorted(set(gt.families))
    return float(np.mean([np.mean([c.score for c in choices if c.family == f]) for f in families]))


def inner_rule(
    train: GroundTruth, budgets: Sequence[int], *, folds: int = 3, size: int = 5, n_estimators: int = 300
) -> dict[int, str]:
    """Per budget, the rule with the best family-averaged report score in an inner loop on ``train``.

    ``train`` must hold the training families only: it is everything the inner loop sees. Ties go to
    the earlier rule of :data:`RULES`.
    """
    orderings = rule_orderings(train, folds=folds, size=size, n_estimators=n_estimators)
    return {b: max(RULES, key=lambda r: family_mean_score(train, orderings[r], b)) for b in budgets}


def inner_choice(
    gt: GroundTruth,
    outer: dict[str, np.ndarray],
    budgets: Sequence[int],
    *,
    groups: int = 5,
    size: int = 5,
    n_estimators: int = 300,
) -> tuple[dict[int, np.ndarray], dict[int, dict[str, str]]]:
    """The ``inner_choice`` rule: per budget its ``(n, P)`` ranking and the rule it took per family.

    The families are dealt into ``groups`` groups; for each group, :func:`inner_rule` runs on the other
    groups' families alone (``groups - 1`` inner folds) and its rule is applied to every family of the
    group, through that family's own leave-one-family-out ranking in ``outer``. So no held-out family
    (nor any family of its group) is seen while its rule is decided, and only ``groups * (groups - 1)``
    inner fits are needed instead of one inner loop per family.

    Args:
        outer: :func:`rule_orderings` of ``gt`` with one family left out at a time.
    """
    if groups < 3:
        raise AutoMLError(
            f"groups={groups}; the inner loop needs at least 3 groups of families (2 inner folds)"
        )
    ranking = {b: np.full(gt.selection.shape, np.nan) for b in budgets}
    taken: dict[int, dict[str, str]] = {b: {} for b in budgets}
    for train, test in family_group_splits(gt.families, groups):
        rules = inner_rule(gt.subset(train), budgets, folds=groups - 1, size=size, n_estimators=n_estimators)
        for b in budgets:
            ranking[b][test] = outer[rules[b]][test]
            taken[b].update({gt.families[i]: rules[b] for i in test})
    return ranking, taken


@dataclass(frozen=True)
class BudgetRow:
    """Every rule at one budget, and each one's paired difference with the greedy portfolio."""

    budget: int
    summaries: dict[str, SelectionSummary]
    versus_portfolio: dict[str, PairedDifference]
    inner_rules: dict[str, int]  # how many held-out families the inner loop gave to each rule


def budget_sweep(
    gt: GroundTruth,
    budgets: Sequence[int] = BUDGETS,
    *,
    groups: int = 5,
    n_estimators: int = 300,
    n_boot: int = 2000,
) -> list[BudgetRow]:
    """The rules of the module docstring at each budget, leave one family out."""
    size = max(1, *budgets)
    outer = rule_orderings(gt, size=size, n_estimators=n_estimators)
    inner, taken = inner_choice(gt, outer, budgets, groups=groups, size=size, n_estimators=n_estimators)
    rows = []
    for b in budgets:
        choices = {rule: credit(gt, outer[rule], b) for rule in RULES}
        choices["inner_choice"] = credit(gt, inner[b], b)
        base = choices["greedy_portfolio"]
        rows.append(
            BudgetRow(
                b,
                {rule: summarize(rule, c, n_boot=n_boot) for rule, c in choices.items()},
                {
                    rule: paired_difference(rule, c, "greedy_portfolio", base, n_boot=n_boot)
                    for rule, c in choices.items()
                    if rule != "greedy_portfolio"
                },
                {rule: sum(1 for r in taken[b].values() if r == rule) for rule in RULES},
            )
        )
    return rows
