"""Meta-learned recommenders: MeLU (MAML over users) and the per-user ridge, trained episodically.

Training episodes are meta-train users. A meta-batch stacks users with the same support size, so each
step draws a support size ``k`` from ``shots`` (seeded) and samples ``meta_batch`` users with at least
``k + 10`` ratings: ``k`` support and 10 query ratings (the protocol's query size), through the core's
``GroupedTableSource``; the update is the core's ``meta_step``. Every ``validate_every`` steps the
validation users (support = all but their 10 query ratings, as at test time) are scored by MAE and the
best weights are kept. ``time_limit`` ends meta-training early (after one last validation). A new user
is then scored by adapting to their whole support.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor

from metadl.algorithms.base import Learner
from metadl.algorithms.melu import MeLU
from metadl.apps.recsys.evaluate import user_metrics
from metadl.apps.recsys.protocol import ColdStartSplit
from metadl.apps.recsys.ridge import UserRidge
from metadl.apps.recsys.twohead import TwoHeadRecommender
from metadl.evaluation.ranking import mae
from metadl.models.melu import MeLUNet
from metadl.tasks.task import Task, TaskBatch
from metadl.training.meta import meta_step


@dataclass(frozen=True)
class EpisodeSettings:
    """How a meta-learned recommender is trained (see the module docstring)."""

    steps: int = 600
    meta_batch: int = 32
    shots: tuple[int, ...] = (5, 10, 20, 40)
    lr: float = 1e-3
    validate_every: int = 100
    grad_clip: float | None = 10.0
    seed: int = 0
    time_limit: float | None = None  # seconds; meta-training stops (validated, best weights kept) past it

    def __post_init__(self) -> None:
        if self.steps < 1 or self.meta_batch < 1 or self.validate_every < 1:
            raise ValueError(f"steps, meta_batch and validate_every must be >= 1, got {self}")
        if self.time_limit is not None and not self.time_limit > 0:
            raise ValueError(f"time_limit must be a positive number of seconds, got {self.time_limit}")
        if not self.shots or min(self.shots) < 1:
            raise ValueError(f"shots must be support sizes >= 1, got {self.shots}")


DEFAULT_EPISODES = EpisodeSettings()


def catalogue(task: Task, n_items: int) -> Tensor:
    """``(n_items, 2)`` rows ``(user, item)`` for every item, the user taken from the task's support."""
    user = task.support_x[0, 0]
    return torch.stack([user.expand(n_items), torch.arange(n_items)], dim=1)


Select = Literal["mae", "loss", "heads"]


class MetaRecommender:
    """A :class:`~metadl.algorithms.base.Learner` built per split, meta-trained on its users.

    Args:
        build: ``build(split) -> learner`` (a fresh learner for the split's features and catalogue).
        settings: the episodic training settings.
        select: what picks the best weights on validation users: their query ``"mae"``, the learner's
            own meta-loss (``"loss"``, for a learner trained on more than ratings), or, for a
            :class:`TwoHeadRecommender`, each head's weights at that head's best step (``"heads"``: the
            rating head's by MAE, the implicit head's by the cross-entropy of the query items; the two
            heads share no parameter, so each is early-stopped on its own criterion).
    """

    predicts_ratings: ClassVar[bool] = True

    def __init__(
        self,
        build: Callable[[ColdStartSplit], Learner],
        settings: EpisodeSettings = DEFAULT_EPISODES,
        *,
        select: Select = "mae",
    ) -> None:
        if select not in ("mae", "loss", "heads"):
            raise ValueError(f"select={select!r}; use 'mae', 'loss' or 'heads'")
        self.build, self.settings, self.select = build, settings, select
        self.history: list[tuple[int, dict[str, float]]] = []  # (step, validation value per criterion)
        self.steps_done = 0

    def fit(self, split: ColdStartSplit) -> None:
        s = self.settings
        with torch.random.fork_rng(devices=[]):  # a seeded initialisation; the global RNG is left as it was
            torch.manual_seed(s.seed)
            learner = self.build(split)
        if self.select == "heads" and not isinstance(learner, TwoHeadRecommender):
            raise ValueError(f"select='heads' needs a TwoHeadRecommender, not {type(learner).__name__}")
        self.n_items = split.ratings.n_items
        longest = int(torch.bincount(split.train.groups).max())
        shots = [k for k in s.shots if k + split.protocol.n_query <= longest]
        if not shots:
            raise ValueError(
                f"no support size in shots={s.shots} fits a meta-train user (largest has {longest})"
            )
        sources = {k: split.source("train", k_shot=k, seed=s.seed + k) for k in shots}
        g = torch.Generator().manual_seed(s.seed)
        optimizer = torch.optim.Adam(learner.parameters(), lr=s.lr)
        val_tasks = split.tasks("val")
        self.learner = learner
        parts = self._parts()
        best = dict.fromkeys(parts, float("inf"))
        best_state = copy.deepcopy(learner.state_dict())
        deadline = None if s.time_limit is None else time.monotonic() + s.time_limit
        for step in range(1, s.steps + 1):
            k = shots[int(torch.randint(len(shots), (), generator=g))]
            meta_step(learner, sources[k].sample_batch(s.meta_batch), optimizer, grad_clip=s.grad_clip)
            self.steps_done = step
            out_of_time = deadline is not None and time.monotonic() > deadline
            if step % s.validate_every == 0 or step == s.steps or out_of_time:
                values = self.validation_errors(val_tasks)
                self.history.append((step, values))
                state = learner.state_dict()
                for name, keys in parts.items():
                    if values[name] < best[name]:
                        best[name] = values[name]
                        best_state |= {key: state[key].detach().clone() for key in keys}
            if out_of_time:
                break
        learner.load_state_dict(best_state)
        learner.eval()

    def _parts(self) -> dict[str, tuple[str, ...]]:
        """Which state entries each validation criterion chooses."""
        if self.select == "heads":
            return dict(TwoHeadRecommender.HEADS)
        return {self.select: tuple(self.learner.state_dict())}

    def validation_errors(self, tasks: Sequence[Task]) -> dict[str, float]:
        """The validation users' mean query MAE (``"mae"``), meta-loss (``"loss"``) or, with ``select="heads"``,
        both ``"mae"`` and the implicit head's cross-entropy (``"implicit"``); lower is better."""
        self.learner.eval()
        values: dict[str, float] = {}
        with torch.no_grad():
            if self.select in ("mae", "heads"):
                values["mae"] = float(np.mean(
                    [mae(self.predict(t, t.query_x).numpy(), t.query_y[:, 0].numpy()) for t in tasks]
                ))  # fmt: skip
            if self.select == "loss":
                values["loss"] = float(
                    np.mean([float(self.learner(TaskBatch.stack([t])).loss) for t in tasks])
                )
            if isinstance(self.learner, TwoHeadRecommender) and self.select == "heads":
                values["implicit"] = float(np.mean(
                    [float(self.learner.implicit_loss(t.support_x[None], t.query_x[None])) for t in tasks]
                ))  # fmt: skip
        self.learner.train()
        return values

    def predict(self, task: Task, x: Tensor) -> Tensor:
        """Ratings ``(B,)`` for rows ``x`` after adapting to the task's support."""
        return self.learner.adapt(task.support_x, task.support_y).predict(x)[:, 0]

    def scores(self, task: Task) -> Tensor:
        return self.predict(task, catalogue(task, self.n_items))

    def ranking(self, task: Task) -> Tensor:
        return self.scores(task)


def melu_builder(
    *, embed_dim: int = 16, hidden: Sequence[int] = (64, 32), adapt: Literal["decision", "full"] = "decision",
    inner_lr: float = 0.05, inner_steps: int = 1, eval_inner_steps: int | None = 3,
) -> Callable[[ColdStartSplit], Learner]:  # fmt: skip
    """``build(split)`` for a MeLU learner over the split's feature tables, head bias at the global mean."""

    def build(split: ColdStartSplit) -> Learner:
        net = MeLUNet(
            user_features=split.ratings.user_features, item_features=split.ratings.item_features,
            embed_dim=embed_dim, hidden=hidden,
        )  # fmt: skip
        learner = MeLU(
            backbone=net,
            adapt=adapt,
            inner_lr=inner_lr,
            inner_steps=inner_steps,
            eval_inner_steps=eval_inner_steps,
        )
        with torch.no_grad():
            learner.head.bias.fill_(split.stats.global_mean)
        return learner

    return build


def ridge_builder(*, dim: int = 32, lam: float = 1.0) -> Callable[[ColdStartSplit], Learner]:
    """``build(split)`` for a :class:`UserRidge` over the split's catalogue, ``mu`` at the global mean."""

    def build(split: ColdStartSplit) -> Learner:
        return UserRidge(n_items=split.ratings.n_items, dim=dim, lam=lam, global_mean=split.stats.global_mean)

    return build


BETAS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)


class TwoHeadMetaRecommender:
    """:class:`~metadl.apps.recsys.twohead.TwoHeadRecommender` meta-trained on a split, ranking by both heads.

    Ratings (``scores``) come from the rating head; the catalogue is ranked (``ranking``) by
    ``log p(rated) + beta * rating``, with ``beta`` from ``betas`` chosen by the mean ``ndcg@10_full``
    of the split's validation users (never its test users). The best weights are chosen on validation
    users too: each head's at its own best step (``select="heads"``: the rating head by MAE, the implicit
    head by cross-entropy), or all at the step of the lowest meta-loss (``"loss"``, the first version's).

    Args:
        settings: the episodic training settings. betas: the candidates for ``beta``.
        select: how validation users choose the weights (above).
        **kwargs: :class:`TwoHeadRecommender`'s (``dim``, ``implicit_dim``, ``inner_lr``, ...).
    """

    predicts_ratings: ClassVar[bool] = True

    def __init__(
        self, settings: EpisodeSettings = DEFAULT_EPISODES, *, betas: Sequence[float] = BETAS,
        select: Select = "heads", **kwargs: Any,
    ) -> None:  # fmt: skip
        if not betas:
            raise ValueError("betas is empty; give at least one weight of the rating head in the ranking")
        self.meta = MetaRecommender(twohead_builder(**kwargs), settings, select=select)
        self.betas = tuple(float(b) for b in betas)
        self.beta = self.betas[0]
        self.validation_ndcg: dict[float, float] = {}
        self.learner: TwoHeadRecommender | None = None

    @classmethod
    def fitted(cls, learner: TwoHeadRecommender, beta: float) -> TwoHeadMetaRecommender:
        """A recommender around an already meta-trained learner (a saved one, say)."""
        rec = cls(betas=(beta,))
        rec.learner = learner.eval()
        return rec

    def fit(self, split: ColdStartSplit) -> None:
        self.meta.fit(split)
        learner = self.meta.learner
        assert isinstance(learner, TwoHeadRecommender)  # built by twohead_builder
        self.learner = learner
        heads = [(t, learner.user_scores(t.support_x, t.support_y)) for t in split.tasks("val")]
        for beta in self.betas:
            values = [user_metrics(r, t, predicts_ratings=True, ranking=lp + beta * r)["ndcg@10_full"]
                      for t, (r, lp) in heads]  # fmt: skip
            self.validation_ndcg[beta] = 0.0 if np.isnan(values).all() else float(np.nanmean(values))
        self.beta = max(self.betas, key=lambda b: (self.validation_ndcg[b], -self.betas.index(b)))

    def _heads(self, task: Task) -> tuple[Tensor, Tensor]:
        if self.learner is None:
            raise ValueError("the two-head recommender is not fitted; call fit(split) first")
        return self.learner.user_scores(task.support_x, task.support_y)

    def scores(self, task: Task) -> Tensor:
        return self._heads(task)[0]

    def ranking(self, task: Task) -> Tensor:
        ratings, log_p = self._heads(task)
        return log_p + self.beta * ratings


def twohead_builder(
    *, dim: int = 4, implicit_dim: int = 32, user_damping: float = 3.0, inner_lr: float = 0.1,
    inner_steps: int = 1, eval_inner_steps: int | None = 3, implicit_weight: float = 0.1,
    rating_loss: Literal["mse", "l1"] = "l1",
) -> Callable[[ColdStartSplit], Learner]:  # fmt: skip
    """``build(split)`` for a :class:`TwoHeadRecommender` on the split's meta-train item statistics."""

    def build(split: ColdStartSplit) -> Learner:
        return TwoHeadRecommender(
            item_mean=split.stats.item_mean(), item_count=split.stats.count, dim=dim, implicit_dim=implicit_dim,
            user_damping=user_damping, inner_lr=inner_lr, inner_steps=inner_steps,
            eval_inner_steps=eval_inner_steps, implicit_weight=implicit_weight, rating_loss=rating_loss, seed=0,
        )  # fmt: skip

    return build
