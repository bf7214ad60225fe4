"""Top-N recommendations for a new user from a CSV of their few ratings.

The CSV has a header with ``item`` and ``rating`` columns; items are the catalogue's ids (as in the
ratings the recommender was fitted on). The user is new: index ``n_users`` (features unknown).

Example:
    >>> from metadl.apps.recsys.baselines import UserItemBias
    >>> from metadl.apps.recsys.protocol import ColdStartProtocol, split_users
    >>> from metadl.data.synthetic_ratings import planted_ratings
    >>> split = split_users(planted_ratings(n_users=60, n_items=40, seed=0), ColdStartProtocol(), seed=0)
    >>> model = UserItemBias()
    >>> model.fit(split)
    >>> support = new_user_task(split.ratings.item_ids, [("i3", 5.0), ("i7", 1.0)], user=split.ratings.n_users)
    >>> top = top_n(model, support, split.ratings.item_ids, n=3)
    >>> len(top), all(r.item not in ("i3", "i7") for r in top)
    (3, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from metadl.apps.recsys.baselines import Recommender
from metadl.data.ratings import RatingsFormatError, number, read_csv_rows
from metadl.tasks.task import Task


def read_user_ratings(path: str | Path) -> list[tuple[str, float]]:
    """``[(item id, rating), ...]`` from a CSV with ``item`` and ``rating`` columns."""
    header, rows = read_csv_rows(Path(path), "item")
    if "rating" not in header:
        raise RatingsFormatError(f"{path}: the header {header} has no 'rating' column")
    return [(row["item"], number(row["rating"], "rating", where)) for where, row in rows]


def new_user_task(item_ids: Sequence[str], pairs: Sequence[tuple[str, float]], *, user: int) -> Task:
    """A task whose support is a new user's ratings (query: the first support row, unused).

    ``item_ids`` is the catalogue (``Ratings.item_ids``); ``user`` the index the model gives a new user
    (``Ratings.n_users``: one past the known users, whose features are unknown).
    """
    if not pairs:
        raise RatingsFormatError("the new user's ratings are empty; give at least one item,rating row")
    index = {item: i for i, item in enumerate(item_ids)}
    unknown = [item for item, _ in pairs if item not in index]
    if unknown:
        raise RatingsFormatError(
            f"item {unknown[0]!r} is not in the catalogue ({len(item_ids)} items, e.g. {item_ids[0]!r})"
        )
    x = torch.tensor([[user, index[item]] for item, _ in pairs])
    y = torch.tensor([[float(r)] for _, r in pairs])
    return Task(x, y, x[:1], y[:1])


@dataclass(frozen=True)
class Recommendation:
    """One recommended item: its id, its ranking score and, for a rating predictor, the predicted rating."""

    item: str
    score: float
    rating: float | None

    def as_json(self) -> dict[str, str | float | None]:
        return {"item": self.item, "score": self.score, "rating": self.rating}


def top_n(recommender: Recommender, task: Task, item_ids: Sequence[str], n: int = 10) -> list[Recommendation]:
    """The ``n`` items ranked first (``recommender.ranking``) that the user has not rated, best first."""
    if n < 1:
        raise ValueError(f"--top must be >= 1, got {n}")
    ranking = recommender.ranking(task).clone()
    ratings = recommender.scores(task) if recommender.predicts_ratings else None
    ranking[task.support_x[:, 1]] = -torch.inf
    best = torch.argsort(ranking, descending=True, stable=True)[: min(n, len(item_ids) - len(task.support_x))]
    return [
        Recommendation(item_ids[i], float(ranking[i]), None if ratings is None else float(ratings[i]))
        for i in best.tolist()
    ]
