"""The user cold-start protocol: users are tasks, split into meta-train / validation / test users.

Pinned protocol (``ColdStartProtocol`` defaults, the settings of MeLU and its successors):

1. keep the users with 13 to 100 ratings (counted on the whole table);
2. shuffle them with the split's seed and cut 8:1:1 into meta-train, validation and test users (no
   user in two splits); the benchmark repeats this for seeds 0-4 (5 splits);
3. each validation / test user is one task: a query of 10 ratings, drawn at random with the seed
   (``query_order="random"``) or the user's **last 10 by timestamp** (``"last"``); the support is
   every other rating of the user (3 to 90 ratings);
4. everything a model or baseline learns (item means, popularity, embeddings) comes from the ratings
   of meta-train users only; test users are seen only through their own support.

Tasks come from the core's :class:`~metadl.tasks.GroupedTableSource` over the ratings table whose
``x`` is ``(user index, item index)`` (int64 ``(N, 2)``) and ``y`` the rating.

Example:
    >>> from metadl.data.synthetic_ratings import planted_ratings
    >>> split = split_users(planted_ratings(n_users=60, n_items=40, seed=0), ColdStartProtocol(), seed=0)
    >>> len(split.train_users), len(split.val_users), len(split.test_users)
    (48, 6, 6)
    >>> task = split.tasks("test")[0]
    >>> tuple(task.query_y.shape)
    (10, 1)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from metadl.data.ratings import Ratings
from metadl.tasks.grouped import GroupedTable, GroupedTableSource
from metadl.tasks.source import NamedTask

Split = Literal["train", "val", "test"]


class ProtocolError(ValueError):
    """Protocol settings that cannot be met by the data (the message says which and how to fix it)."""


@dataclass(frozen=True)
class ColdStartProtocol:
    """The settings of the user cold-start protocol (see the module docstring)."""

    min_ratings: int = 13
    max_ratings: int = 100
    n_query: int = 10
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    query_order: Literal["random", "last"] = "random"

    def __post_init__(self) -> None:
        if self.n_query < 1 or self.min_ratings <= self.n_query:
            raise ProtocolError(
                f"min_ratings = {self.min_ratings} must exceed n_query = {self.n_query} (>= 1) to leave a support"
            )
        if self.max_ratings < self.min_ratings:
            raise ProtocolError(f"max_ratings = {self.max_ratings} is below min_ratings = {self.min_ratings}")
        if len(self.fractions) != 3 or min(self.fractions) <= 0 or abs(sum(self.fractions) - 1.0) > 1e-6:
            raise ProtocolError(
                f"fractions must be three positive numbers summing to 1, got {self.fractions}"
            )
        if self.query_order not in ("random", "last"):
            raise ProtocolError(f"query_order={self.query_order!r}; use 'random' or 'last'")


@dataclass(frozen=True)
class ItemStatistics:
    """Item statistics of the meta-train users' ratings.

    Attributes:
        global_mean: mean rating.
        count: ``(n_items,)`` ratings per item (popularity).
        total: ``(n_items,)`` sum of each item's ratings.
    """

    global_mean: float
    count: Tensor
    total: Tensor

    @classmethod
    def of(cls, table: GroupedTable, n_items: int) -> ItemStatistics:
        items, y = table.x[:, 1], table.y[:, 0].double()
        count = torch.bincount(items, minlength=n_items).double()
        total = torch.zeros(n_items, dtype=torch.float64).index_add_(0, items, y)
        return cls(float(y.mean()), count, total)

    def item_mean(self, damping: float = 5.0) -> Tensor:
        """Each item's mean rating shrunk towards the global mean by ``damping`` pseudo-ratings."""
        return ((self.total + damping * self.global_mean) / (self.count + damping)).float()


def ratings_table(ratings: Ratings) -> GroupedTable:
    """The ratings as a grouped table: one group per user (named by user id), x = (user, item), y = rating."""
    keys = [ratings.user_ids[u] for u in ratings.user.tolist()]
    x = torch.stack([ratings.user, ratings.item], dim=1)
    return GroupedTable.from_columns(keys, x=x, y=ratings.rating, time=ratings.time)


@dataclass(frozen=True)
class ColdStartSplit:
    """One seeded split of the users (see :func:`split_users`).

    Attributes:
        ratings: the whole table (features and ids).
        protocol: the settings.
        seed: the split's seed (also seeds the query draws).
        train_users, val_users, test_users: user ids.
        train: the meta-train users' ratings.
        stats: item statistics of ``train``.
    """

    ratings: Ratings
    protocol: ColdStartProtocol
    seed: int
    table: GroupedTable
    train_users: tuple[str, ...]
    val_users: tuple[str, ...]
    test_users: tuple[str, ...]
    train: GroupedTable
    stats: ItemStatistics

    def users(self, split: Split) -> tuple[str, ...]:
        return {"train": self.train_users, "val": self.val_users, "test": self.test_users}[split]

    def source(
        self, split: Split, *, k_shot: int | None = None, seed: int | None = None
    ) -> GroupedTableSource:
        """A task source over the users of ``split`` (query as the protocol says; ``k_shot`` caps the support)."""
        p = self.protocol
        low = p.min_ratings if k_shot is None else max(p.min_ratings, k_shot + p.n_query)
        return GroupedTableSource(
            self.table.subset(self.users(split)), n_query=p.n_query, k_shot=k_shot, min_group_size=low,
            max_group_size=p.max_ratings, query_order=p.query_order, seed=self.seed if seed is None else seed,
        )  # fmt: skip

    def tasks(self, split: Split) -> list[NamedTask]:
        """One task per user of ``split``, in user order, the same for the same split seed."""
        source = self.source(split)
        return [source.sample(name) for name in source.names]


def split_users(ratings: Ratings, protocol: ColdStartProtocol, seed: int) -> ColdStartSplit:
    """Cut the eligible users 8:1:1 (seeded) into meta-train, validation and test users."""
    table = ratings_table(ratings)
    sizes = torch.bincount(table.groups, minlength=len(table.group_names))
    eligible = ((sizes >= protocol.min_ratings) & (sizes <= protocol.max_ratings)).nonzero().flatten()
    if len(eligible) < 3:
        raise ProtocolError(
            f"only {len(eligible)} users have {protocol.min_ratings}-{protocol.max_ratings} ratings; "
            "three splits need at least 3 (widen min_ratings / max_ratings)"
        )
    g = torch.Generator().manual_seed(seed)
    order = eligible[torch.randperm(len(eligible), generator=g)].tolist()
    n_val = max(1, round(protocol.fractions[1] * len(order)))
    n_test = max(1, round(protocol.fractions[2] * len(order)))
    names = [table.group_names[i] for i in order]
    train, val, test = names[: -n_val - n_test], names[-n_val - n_test : -n_test], names[-n_test:]
    train_table = table.subset(train)
    return ColdStartSplit(
        ratings, protocol, seed, table, tuple(train), tuple(val), tuple(test),
        train_table, ItemStatistics.of(train_table, ratings.n_items),
    )  # fmt: skip
