"""The baselines a recommender engineer demands, behind the :class:`Recommender` contract.

A recommender is fitted on one :class:`~metadl.apps.recsys.protocol.ColdStartSplit` (meta-train users
only) and then scores every item of the catalogue for a new user from that user's support ratings:
``scores(task) -> (n_items,)``. When ``predicts_ratings`` is True the scores are predicted ratings
(MAE/RMSE are defined); otherwise they only order items (random, popularity).

- ``random``: uniform random scores (seeded).
- ``global_mean``: the meta-train mean rating for every item (all tied: ranks like a random order).
- ``item_mean``: each item's meta-train mean, shrunk to the global mean by 5 pseudo-ratings.
- ``user_item_bias``: ``mu + b_i + b_u``; ``b_i`` the shrunk item mean minus ``mu``, ``b_u`` the user's
  mean residual on the support, shrunk by 3 pseudo-ratings.
- ``popularity``: the number of meta-train ratings of each item.
- ``mf``: biased matrix factorisation fitted on meta-train ratings (Adam, full batch); a new user's
  factors and bias are then fine-tuned on the support to the optimum of the same regularised loss with
  the items frozen (a ridge regression, in closed form).
"""

from __future__ import annotations

from typing import ClassVar, Protocol

import torch
from torch import Tensor, nn

from metadl.apps.recsys.protocol import ColdStartSplit
from metadl.tasks.task import Task


class Recommender(Protocol):
    """Fitted on meta-train users; scores the catalogue for a new user's support ratings.

    ``scores(task)``: ``(n_items,)`` predicted ratings (or an order when ``predicts_ratings`` is False);
    ``ranking(task)``: ``(n_items,)`` the order in which to recommend (every baseline: its scores).
    """

    predicts_ratings: ClassVar[bool]

    def fit(self, split: ColdStartSplit) -> None: ...

    def scores(self, task: Task) -> Tensor: ...

    def ranking(self, task: Task) -> Tensor: ...


class RankedByScores:
    """The baselines' ``ranking``: recommend in the order of ``scores``."""

    def scores(self, task: Task) -> Tensor:
        raise NotImplementedError

    def ranking(self, task: Task) -> Tensor:
        return self.scores(task)


def support_of(task: Task) -> tuple[Tensor, Tensor]:
    """The support's item indices ``(S,)`` and ratings ``(S,)``."""
    return task.support_x[:, 1], task.support_y[:, 0]


class RandomOrder(RankedByScores):
    """Uniform random scores from a seeded generator."""

    predicts_ratings: ClassVar[bool] = False

    def __init__(self, *, seed: int = 0) -> None:
        self.generator = torch.Generator().manual_seed(seed)
        self.n_items = 0

    def fit(self, split: ColdStartSplit) -> None:
        self.n_items = split.ratings.n_items

    def scores(self, task: Task) -> Tensor:
        return torch.rand(self.n_items, generator=self.generator)


class GlobalMean(RankedByScores):
    """The meta-train mean rating for every item."""

    predicts_ratings: ClassVar[bool] = True

    def fit(self, split: ColdStartSplit) -> None:
        self.value = torch.full((split.ratings.n_items,), split.stats.global_mean)

    def scores(self, task: Task) -> Tensor:
        return self.value


class ItemMean(RankedByScores):
    """Each item's meta-train mean rating, shrunk towards the global mean."""

    predicts_ratings: ClassVar[bool] = True

    def __init__(self, *, damping: float = 5.0) -> None:
        self.damping = damping

    def fit(self, split: ColdStartSplit) -> None:
        self.value = split.stats.item_mean(self.damping)

    def scores(self, task: Task) -> Tensor:
        return self.value


class UserItemBias(RankedByScores):
    """``mu + b_i + b_u`` with the user's bias read from the support (shrunk by ``user_damping``)."""

    predicts_ratings: ClassVar[bool] = True

    def __init__(self, *, damping: float = 5.0, user_damping: float = 3.0) -> None:
        self.damping, self.user_damping = damping, user_damping

    def fit(self, split: ColdStartSplit) -> None:
        self.item = split.stats.item_mean(self.damping)

    def scores(self, task: Task) -> Tensor:
        items, ratings = support_of(task)
        residual = ratings - self.item[items]
        return self.item + residual.sum() / (len(residual) + self.user_damping)


class Popularity(RankedByScores):
    """The number of meta-train ratings of each item."""

    predicts_ratings: ClassVar[bool] = False

    def fit(self, split: ColdStartSplit) -> None:
        self.value = split.stats.count.float()

    def scores(self, task: Task) -> Tensor:
        return self.value


class MatrixFactorisation(RankedByScores):
    """Biased MF on meta-train ratings; a new user's factors fitted on the support in closed form.

    Args:
        dim: factor width. reg: L2 weight of factors and biases (per rating, both phases); the defaults
            are what ``benchmarks/recsys_coldstart.py`` chose on every ML-100K split by validation-user MAE
            among 16/0.05, 16/0.1 and 8/0.2.
        epochs: full-batch Adam steps. lr: Adam's learning rate. seed: initialisation.
    """

    predicts_ratings: ClassVar[bool] = True

    def __init__(
        self, *, dim: int = 8, reg: float = 0.2, epochs: int = 300, lr: float = 0.02, seed: int = 0
    ) -> None:
        self.dim, self.reg, self.epochs, self.lr, self.seed = dim, reg, epochs, lr, seed

    def fit(self, split: ColdStartSplit) -> None:
        g = torch.Generator().manual_seed(self.seed)
        users, items, y = split.train.groups, split.train.x[:, 1], split.train.y[:, 0]
        n_users, n_items = len(split.train.group_names), split.ratings.n_items
        p = nn.Parameter(0.1 * torch.randn(n_users, self.dim, generator=g))
        q = nn.Parameter(0.1 * torch.randn(n_items, self.dim, generator=g))
        bu, bi = nn.Parameter(torch.zeros(n_users)), nn.Parameter(torch.zeros(n_items))
        mu = split.stats.global_mean
        opt = torch.optim.Adam([p, q, bu, bi], lr=self.lr)
        for _ in range(self.epochs):
            opt.zero_grad()
            pred = mu + bu[users] + bi[items] + (p[users] * q[items]).sum(-1)
            penalty = p[users].square().sum(-1) + q[items].square().sum(-1) + bu[users] ** 2 + bi[items] ** 2
            ((pred - y).square() + self.reg * penalty).mean().backward()
            opt.step()
        self.mu, self.q, self.bi = mu, q.detach(), bi.detach()

    def scores(self, task: Task) -> Tensor:
        items, ratings = support_of(task)
        a = torch.cat([self.q[items], torch.ones(len(items), 1)], dim=1)  # (S, dim + 1): factors and bias
        target = ratings - self.mu - self.bi[items]
        lam = self.reg * len(items) * torch.eye(self.dim + 1)  # the same per-rating penalty as in fit
        w = torch.linalg.solve(a.T @ a + lam, a.T @ target)
        return self.mu + self.bi + self.q @ w[:-1] + w[-1]
