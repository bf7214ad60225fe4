"""Leave-one-family-out evaluation of selectors, scored the ASlib way.

For each dataset family F: every selector (and the single best pipeline) is fitted on the datasets of
all *other* families, on their ``selection`` scores, then chooses a pipeline for each dataset of F; the
choice is credited with its ``report`` score (an independent set of CV repeats). The per-dataset oracle
is the pipeline best on the *selection* scores, also credited with its report score, so picking the max
of noisy estimates does not inflate it.

Metrics, each a mean over held-out families (a family's value is the mean over its datasets, so the 19
ecoli variants weigh as much as one sonar):

- **gap closed** = (selector - single best) / (oracle - single best), on the family means (ASlib's
  ratio of means; 1 = as good as the oracle, 0 = no better than the single best, < 0 worse), with a 95%
  percentile bootstrap interval over families;
- **top-1**: share of datasets where the choice is the best pipeline on the report scores (ties count);
- **average rank** of the choice among the pipelines on the report scores (1 = best, ties averaged).

Example (two families, one dataset each, hand-computable):
    >>> choices = [Choice("a", "A", 0, 0.7, 0.6, 0.8, 2.0, False), Choice("b", "B", 1, 0.9, 0.9, 0.9, 1.0, True)]
    >>> s = summarize("x", choices, n_boot=0)
    >>> round(s.gap_closed, 3), s.top1, s.average_rank
    (0.5, 0.5, 1.5)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

from metadl.automl.groundtruth import GroundTruth
from metadl.automl.selectors import Selector
from metadl.automl.tabular import AutoMLError


@dataclass(frozen=True)
class Choice:
    """What a selector chose for one held-out dataset and what that was worth (report scores)."""

    dataset: str
    family: str
    pipeline: int
    score: float
    single_best: float
    oracle: float
    rank: float
    top1: bool


@dataclass(frozen=True)
class SelectionSummary:
    """A selector's leave-one-family-out result."""

    selector: str
    gap_closed: float
    gap_ci: tuple[float, float]
    top1: float
    average_rank: float
    mean_score: float
    single_best_score: float
    oracle_score: float
    n_families: int
    n_datasets: int


def family_splits(families: Sequence[str]) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """``(family, train_rows, test_rows)`` per family, sorted by name; no family is on both sides.

    Example:
        >>> [(f, tr.tolist(), te.tolist()) for f, tr, te in family_splits(["x", "y", "x"])]
        [('x', [1], [0, 2]), ('y', [0, 2], [1])]
    """
    labels = np.asarray(families)
    for family in sorted(set(families)):
        test = labels == family
        yield family, np.flatnonzero(~test), np.flatnonzero(test)


def choose(predicted: np.ndarray, selection: np.ndarray, evaluations: int) -> int:
    """The top ``evaluations`` by prediction, then the best of them by their cross-validated scores.

    Example:
        >>> choose(np.array([0.9, 0.8, 0.1]), np.array([0.5, 0.7, 0.99]), 2)
        1
    """
    top = np.argsort(-predicted, kind="stable")[: max(1, evaluations)]
    return int(top[np.argmax(selection[top])]) if evaluations > 1 else int(top[0])


def family_group_splits(families: Sequence[str], folds: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(train_rows, test_rows)`` with the sorted families dealt in turn into ``folds`` groups.

    Example:
        >>> [te.tolist() for _, te in family_group_splits(["c", "a", "b", "a"], 2)]
        [[0, 1, 3], [2]]
    """
    names = sorted(set(families))
    if not 2 <= folds <= len(names):
        raise AutoMLError(f"folds={folds}; need 2 <= folds <= {len(names)} (the number of families)")
    labels = np.asarray(families)
    for g in range(folds):
        test = np.isin(labels, names[g::folds])
        yield np.flatnonzero(~test), np.flatnonzero(test)


def out_of_family_splits(
    families: Sequence[str], folds: int | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One family out at a time (``folds=None``) or :func:`family_group_splits` into ``folds`` groups."""
    if folds is None:
        return ((train, test) for _, train, test in family_splits(families))
    return family_group_splits(families, folds)


def out_of_family_predictions(
    gt: GroundTruth, make: Callable[[], Selector], folds: int | None = None
) -> np.ndarray:
    """``(n, P)`` predictions, each row by a selector fitted only on other families' selection scores.

    Args:
        folds: None leaves one family out at a time; else :func:`family_group_splits` into ``folds``.
    """
    predicted = np.full(gt.selection.shape, np.nan)
    for train, test in out_of_family_splits(gt.families, folds):
        selector = make().fit(gt.metafeatures[train], gt.selection[train])
        predicted[test] = selector.predict(gt.metafeatures[test])
    return predicted


def credit(gt: GroundTruth, predicted: np.ndarray, evaluations: int) -> list[Choice]:
    """The choice per dataset from out-of-family ``predicted`` scores, credited with its report score.

    The single best pipeline of each row is the best mean over the *other* families' selection scores.
    """
    choices: list[Choice] = []
    for family, train, test in family_splits(gt.families):
        single_best = int(np.argmax(gt.selection[train].mean(axis=0)))
        for i in test:
            pick = choose(predicted[i], gt.selection[i], evaluations)
            report = gt.report[i]
            choices.append(
                Choice(
                    gt.names[i],
                    family,
                    pick,
                    float(report[pick]),
                    float(report[single_best]),
                    float(report[int(np.argmax(gt.selection[i]))]),
                    float(rankdata(-report)[pick]),
                    bool(report[pick] >= report.max() - 1e-12),
                )
            )
    return choices


def leave_one_family_out(gt: GroundTruth, make: Callable[[], Selector]) -> list[Choice]:
    """One :class:`Choice` per dataset of ``gt``, each made by a selector that never saw its family."""
    return credit(gt, out_of_family_predictions(gt, make), make().evaluations)


def winners_curse(gt: GroundTruth) -> float:
    """Mean over datasets of how much the selection score of the per-dataset oracle overstates its report score.

    The pipeline best on noisy selection scores looks better than it is; an independent report repeat
    shows by how much. More repeats shrink it.

    Example:
        >>> gt = GroundTruth(("a",), ("f",), ("p", "q"), ("m",), np.zeros((1, 1)),
        ...                  np.array([[0.9, 0.8]]), np.array([[0.7, 0.8]]))
        >>> round(winners_curse(gt), 3)
        0.2
    """
    best = gt.selection.argmax(axis=1)
    rows = np.arange(len(best))
    return float((gt.selection[rows, best] - gt.report[rows, best]).mean())


def _gap(sel: np.ndarray, sb: np.ndarray, oracle: np.ndarray) -> float:
    denominator = oracle.mean() - sb.mean()
    return float((sel.mean() - sb.mean()) / denominator) if denominator > 1e-12 else float("nan")


def summarize(name: str, choices: Sequence[Choice], *, n_boot: int = 2000, seed: int = 0) -> SelectionSummary:
    """Family-averaged metrics of ``choices`` with a bootstrap 95% interval on the gap closed."""
    families = sorted({c.family for c in choices})

    def per_family(value: Callable[[Choice], float]) -> np.ndarray:
        return np.array([np.mean([value(c) for c in choices if c.family == f]) for f in families])

    sel, sb, oracle = (
        per_family(lambda c: c.score),
        per_family(lambda c: c.single_best),
        per_family(lambda c: c.oracle),
    )
    rng = np.random.default_rng(seed)
    boots = [
        _gap(sel[b], sb[b], oracle[b]) for b in rng.integers(0, len(families), size=(n_boot, len(families)))
    ]
    boots = [g for g in boots if np.isfinite(g)]
    ci = (float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))) if boots else (np.nan, np.nan)
    return SelectionSummary(
        name,
        _gap(sel, sb, oracle),
        ci,
        float(per_family(lambda c: float(c.top1)).mean()),
        float(per_family(lambda c: c.rank).mean()),
        float(sel.mean()),
        float(sb.mean()),
        float(oracle.mean()),
        len(families),
        len(choices),
    )
