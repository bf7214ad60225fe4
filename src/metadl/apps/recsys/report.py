"""A fitted recommender beside every baseline on the same test users: what ``metadl eval RUN --json`` prints.

:func:`evaluate_against_baselines` fits each baseline on the split's meta-train users, scores the model
and the baselines on the same test users (``metadl.apps.recsys.evaluate``) and returns a
:class:`ColdStartReport`: per metric the mean and 95% CI of the model and of each baseline, and the
paired difference between the model and the best baseline on that metric (same users). ``as_json()``
has stable keys::

    {"model": {"mae": {"mean": ..., "ci95": ..., "n": ...}, "rmse": ..., "ndcg@5": ..., "ndcg@10_full": ...,
               "recall@10_full": ...},
     "baselines": {"item_mean": {...}, "user_item_bias": {...}, ...},
     "vs_best_baseline": {"mae": {"baseline": "user_item_bias", "mean": ..., "ci95": ..., "n": ...}, ...},
     "users": 58}

A metric a recommender does not define (MAE of popularity) is ``null``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from metadl.apps.recsys.baselines import Recommender
from metadl.apps.recsys.evaluate import LOWER_IS_BETTER, METRICS, Estimate, evaluate_users, paired, summarise
from metadl.apps.recsys.protocol import ColdStartSplit, Split
from metadl.apps.recsys.registry import BASELINES, create_recommender

JsonEstimate = dict[str, float | int | None]


def _json(e: Estimate) -> JsonEstimate:
    if math.isnan(e.mean):
        return {"mean": None, "ci95": None, "n": 0}
    return {"mean": e.mean, "ci95": e.ci95, "n": e.n}


@dataclass(frozen=True)
class Comparison:
    """The model minus the best baseline on one metric, paired over the same users."""

    baseline: str
    difference: Estimate
    lower_is_better: bool

    @property
    def better(self) -> bool:
        """The model is ahead by a margin whose 95% CI excludes zero."""
        d = self.difference
        if math.isnan(d.mean) or abs(d.mean) <= d.ci95:
            return False
        return d.mean < 0 if self.lower_is_better else d.mean > 0


@dataclass(frozen=True)
class ColdStartReport:
    """Per metric: the model's and each baseline's estimate, and the model against the best baseline."""

    model: dict[str, Estimate]
    baselines: dict[str, dict[str, Estimate]]
    vs_best_baseline: dict[str, Comparison]
    users: int

    def as_json(self) -> dict[str, object]:
        return {
            "model": {m: _json(e) for m, e in self.model.items()},
            "baselines": {b: {m: _json(e) for m, e in ms.items()} for b, ms in self.baselines.items()},
            "vs_best_baseline": {
                m: {"baseline": c.baseline, **_json(c.difference), "better": c.better}
                for m, c in self.vs_best_baseline.items()
            },
            "users": self.users,
        }

    def summary(self) -> str:
        """A text table (mean ± 95% CI per recommender and metric) and the model against the best baseline."""
        rows = [("model", self.model), *self.baselines.items()]
        width = max(len(name) for name, _ in rows)
        lines = [
            f"{self.users} test users; mean ± 95% CI",
            f"{'':{width}}  " + "  ".join(f"{m:>17}" for m in METRICS),
        ]
        lines += [
            f"{name:{width}}  " + "  ".join(f"{values[m].text():>17}" for m in METRICS)
            for name, values in rows
        ]
        for metric, c in self.vs_best_baseline.items():
            verdict = (
                "ahead" if c.better else "not ahead (the 95% CI of the difference holds 0, or it is behind)"
            )
            lines.append(f"model - {c.baseline} on {metric}: {c.difference.text()} paired: {verdict}")
        return "\n".join(lines)


def best_baseline(values: dict[str, dict[str, np.ndarray]], metric: str) -> str | None:
    """The baseline with the best mean on ``metric`` among those that define it (``None``: none does)."""
    defined = [b for b, v in values.items() if not np.isnan(v[metric]).all()]
    if not defined:
        return None
    sign = 1.0 if metric in LOWER_IS_BETTER else -1.0
    return min(defined, key=lambda b: sign * float(np.nanmean(values[b][metric])))


def evaluate_against_baselines(
    model: Recommender, split: ColdStartSplit, *, baselines: Sequence[str] = BASELINES, users: Split = "test"
) -> ColdStartReport:
    """Score a fitted ``model`` and the named baselines (fitted here on ``split``) on the same ``users``.

    Example:
        >>> from metadl.apps.recsys.protocol import ColdStartProtocol, split_users
        >>> from metadl.data.synthetic_ratings import planted_ratings
        >>> split = split_users(planted_ratings(n_users=60, n_items=40, seed=0), ColdStartProtocol(), seed=0)
        >>> model = create_recommender("user_item_bias")
        >>> model.fit(split)
        >>> report = evaluate_against_baselines(model, split, baselines=["global_mean", "item_mean"])
        >>> sorted(report.as_json()["baselines"]), report.vs_best_baseline["mae"].baseline
        (['global_mean', 'item_mean'], 'item_mean')
    """
    if not baselines:
        raise ValueError("baselines is empty; name at least one of " + ", ".join(BASELINES))
    tasks = split.tasks(users)
    ours = evaluate_users(model, tasks)
    theirs: dict[str, dict[str, np.ndarray]] = {}
    for name in baselines:
        baseline = create_recommender(name)
        baseline.fit(split)
        theirs[name] = evaluate_users(baseline, tasks)
    comparisons = {}
    for metric in METRICS:
        best = best_baseline(theirs, metric)
        if best is not None and not np.isnan(ours[metric]).all():
            comparisons[metric] = Comparison(
                best, paired(ours, theirs[best], metric), metric in LOWER_IS_BETTER
            )
    return ColdStartReport(
        model={m: summarise(ours[m]) for m in METRICS},
        baselines={b: {m: summarise(v[m]) for m in METRICS} for b, v in theirs.items()},
        vs_best_baseline=comparisons,
        users=len(tasks),
    )
