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
    >>> support = new_user_task(split.ratings, [("i3", 5.0), ("i7", 1.0)])
    >>> top = top_n(model, support, split.ratings, n=3)
    >>> len(top), all(item not in ("i3", "i7") for item, _ in top)
    (3, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from metadl.apps.recsys.baselines import Recommender
from metadl.data.ratings import Ratings, RatingsFormatError, number, read_csv_rows
from metadl.tasks.task import Task


def read_user_ratings(path: str | Path) -> list[tuple[str, float]]:
    """``[(item id, rating), ...]`` from a CSV with ``item`` and ``rating`` columns."""
    header, rows = read_csv_rows(Path(path), "item")
    if "rating" not in header:
        raise RatingsFormatError(f"{path}: the header {header} has no 'rating' column")
    return [(row["item"], number(row["rating"], "rating", where)) for where, row in rows]


def new_user_task(ratings: Ratings, pairs: Sequence[tuple[str, float]]) -> Task:
    """A task whose support is a new user's ratings (query: the first support row, unused)."""
    if not pairs:
        raise RatingsFormatError("the new user's ratings are empty; give at least one item,rating row")
    index = {item: i for i, item in enumerate(ratings.item_ids)}
    unknown = [item for item, _ in pairs if item not in index]
    if unknown:
        raise RatingsFormatError(
            f"item {unknown[0]!r} is not in the catalogue ({ratings.n_items} items, e.g. {ratings.item_ids[0]!r})"
        )
    user = ratings.n_users
    x = torch.tensor([[user, index[item]] for item, _ in pairs])
    y = torch.tensor([[float(r)] for _, r in pairs])
    return Task(x, y, x[:1], y[:1])


def top_n(recommender: Recommender, task: Task, ratings: Ratings, n: int = 10) -> list[tuple[str, float]]:
    """The ``n`` best-scored items the user has not rated, with their scores, best first."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    scores = recommender.scores(task).clone()
    scores[task.support_x[:, 1]] = -torch.inf
    best = torch.argsort(scores, descending=True, stable=True)[
        : min(n, ratings.n_items - len(task.support_x))
    ]
    return [(ratings.item_ids[i], float(scores[i])) for i in best.tolist()]
