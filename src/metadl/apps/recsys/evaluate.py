"""Score recommenders on the test users of cold-start splits, and summarise with 95% CIs.

Per test user (a task: support ratings, 10 query ratings), from the recommender's scores of every item:

- ``mae``, ``rmse``: on the 10 query ratings (per user; the mean over users is reported), only for
  recommenders whose scores are ratings;
- ``ndcg@5``: the 10 query items ranked by score, gain ``2^rating - 1``;
- ``ndcg@10_full``, ``recall@10_full``: every item not in the user's support ranked by score; the
  relevant items are the user's held-out (query) items rated >= 4, binary gain. Users without such an
  item have no value (left out of these two means).

Ties are scored by their expectation over random orders (``metadl.evaluation.ranking``). Summaries pool
the users of every split: mean and Student-t 95% half-width over all (user, split) pairs, and paired
differences between two recommenders over the same pairs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from metadl.apps.recsys.baselines import Recommender
from metadl.evaluation.confidence import mean_ci95, paired_difference_ci95
from metadl.evaluation.ranking import mae, ndcg_at_k, recall_at_k, rmse
from metadl.tasks.task import Task

METRICS = ("mae", "rmse", "ndcg@5", "ndcg@10_full", "recall@10_full")
LOWER_IS_BETTER = frozenset({"mae", "rmse"})
RELEVANT_RATING = 4.0


def user_metrics(
    scores: torch.Tensor, task: Task, *, predicts_ratings: bool, ranking: torch.Tensor | None = None
) -> dict[str, float]:
    """The metrics of one user (``nan`` where undefined), keys as in ``METRICS``.

    ``scores`` are the predicted ratings of every item (``mae``, ``rmse``, ``ndcg@5``); ``ranking``
    (default: ``scores``) orders the catalogue for ``ndcg@10_full`` and ``recall@10_full``.
    """
    ranking = scores if ranking is None else ranking
    q_items, q_ratings = task.query_x[:, 1], task.query_y[:, 0]
    predicted = scores[q_items].numpy()
    actual = q_ratings.numpy()
    keep = torch.ones(len(scores), dtype=torch.bool)
    keep[task.support_x[:, 1]] = False
    relevant = torch.zeros(len(scores), dtype=torch.bool)
    relevant[q_items[q_ratings >= RELEVANT_RATING]] = True
    full_scores, full_rel = ranking[keep].numpy(), relevant[keep].numpy()
    return {
        "mae": mae(predicted, actual) if predicts_ratings else math.nan,
        "rmse": rmse(predicted, actual) if predicts_ratings else math.nan,
        "ndcg@5": ndcg_at_k(predicted, actual, 5),
        "ndcg@10_full": ndcg_at_k(full_scores, full_rel.astype(float), 10, gain="linear"),
        "recall@10_full": recall_at_k(full_scores, full_rel, 10),
    }


def evaluate_users(recommender: Recommender, tasks: Sequence[Task]) -> dict[str, np.ndarray]:
    """Per-user metric values ``{metric: (n_users,)}`` of a fitted recommender."""
    rows = [
        user_metrics(recommender.scores(t), t, predicts_ratings=recommender.predicts_ratings,
                     ranking=recommender.ranking(t))
        for t in tasks
    ]  # fmt: skip
    return {m: np.array([r[m] for r in rows]) for m in METRICS}


@dataclass(frozen=True)
class Estimate:
    """A mean with its 95% half-width and the number of (user, split) values behind it."""

    mean: float
    ci95: float
    n: int

    def text(self) -> str:
        return "—" if math.isnan(self.mean) else f"{self.mean:.4f} ± {self.ci95:.4f}"


def summarise(values: np.ndarray) -> Estimate:
    """Mean and 95% CI of the defined values (``nan``: undefined for that user)."""
    kept = values[~np.isnan(values)]
    if kept.size == 0:
        return Estimate(math.nan, math.nan, 0)
    mean, half = mean_ci95(kept)
    return Estimate(mean, half, int(kept.size))


def paired(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], metric: str) -> Estimate:
    """``a - b`` on ``metric`` over the (user, split) pairs where both are defined."""
    x, y = a[metric], b[metric]
    d = x - y
    if np.isnan(d).all():
        return Estimate(math.nan, math.nan, 0)
    mean, half = paired_difference_ci95(x, y)
    return Estimate(mean, half, int((~np.isnan(d)).sum()))
