"""A two-head cold-start learner: a MAML-adapted rating residual and a "will the user rate it" head.

The rating baselines are hard to beat on MAE (user mean + item bias) and every rating predictor loses
to popularity on full-catalogue ranking, because which items a user rates matters more there than how
they rate them. This learner models both, from the same support ratings of a new user ``u``:

**Rating head: residual learning on the user + item bias baseline, adapted by MAML.** With ``m_i`` the
meta-train item mean shrunk to the global mean (given) and ``b_u`` the user's mean support residual
shrunk by ``user_damping`` pseudo-ratings (together exactly the ``user_item_bias`` baseline)::

    r_hat(u, i) = m_i + b_u + <a_u + w_u, F_i> + c_u
    a_u = mean_{s in S_u} Y_s + sum_{s in S_u} (r_s - m_s - b_u) Z_s / (|S_u| + user_damping)

``a_u`` is an amortised taste read from the support (SVD++'s "items rated" vectors ``Y`` plus
residual-weighted "items liked" vectors ``Z``; both start at 0, so an untrained model is the baseline).
``(w_u, c_u)`` start from a meta-learned ``(w_0, c_0)`` and take ``inner_steps`` gradient steps on the
squared support residual that ``b_u`` and ``a_u`` leave, with the core functional inner loop
(``metadl.algorithms.inner_loop.inner_adapt``, vectorised over the users of a meta-batch, second
order; the model is linear in ``w``, so this is the same as starting ``w`` at ``w_0 + a_u``).

**Implicit head: which items the user rates.** The user's support items ``S_u`` are encoded as the
mean of their key embeddings (a prototype, no inner loop), and every item not in the support gets::

    log p(i | S_u) = log_softmax_i( p_i + <mean_{s in S_u} K_s, V_i> )      over items not in S_u

``p_i`` starts at the log of the item's meta-train rating count (popularity learned from meta-train
users only) and is trained with ``K`` and ``V``. Meta-training minimises, over a meta-batch of users,
the query ratings' error (``rating_loss``: absolute, the default, as MAE is the metric, or squared)
plus ``implicit_weight`` times the cross-entropy of the query items under ``p(. | S_u)`` (normalised
over the whole catalogue: no negative sampling).

**Ranking score** (full-catalogue recommendation): ``log p(i | S_u) + beta * r_hat(u, i)``; ``beta``
is chosen on validation users by the recommender (``metadl.apps.recsys.meta``). ``x`` rows are
``(user, item)`` index pairs as everywhere in ``apps/recsys``; only the item is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

from metadl.algorithms.base import Capabilities, Learner, LearnerOutput, Predictor, make_output
from metadl.algorithms.inner_loop import Params, check_lr, inner_adapt
from metadl.tasks.task import TaskBatch


@dataclass(frozen=True)
class UserState:
    """Users' rating-head parameters: ``r_hat(u, i) = m_i + <w_u, F_i> + c_u``; ``w (T, dim)``, ``c (T,)``."""

    w: Tensor
    c: Tensor


class TwoHeadRecommender(Learner):
    """Residual rating head adapted per user by MAML + a prototype "will rate" head (module docstring).

    Args:
        item_mean: ``(n_items,)`` meta-train item means shrunk to the global mean (``m_i``).
        item_count: ``(n_items,)`` meta-train rating counts (initialises the popularity logits).
        dim: item factor width of the rating head. implicit_dim: embedding width of the implicit head.
        user_damping: pseudo-ratings shrinking the user's bias ``b_u`` to 0.
        inner_lr, inner_steps, eval_inner_steps: the rating head's inner loop (eval: ``adapt`` and eval mode).
        implicit_weight: weight of the implicit cross-entropy in the meta-loss.
        rating_loss: ``"l1"`` (absolute error of the query ratings) or ``"mse"``.
        seed: initialisation.

    Example:
        >>> model = TwoHeadRecommender(item_mean=torch.full((6,), 3.5), item_count=torch.ones(6), dim=2)
        >>> x = torch.tensor([[[0, 1], [0, 2], [0, 3], [0, 4]]])
        >>> batch = TaskBatch(x[:, :2], torch.tensor([[[4.0], [2.0]]]), x[:, 2:], torch.tensor([[[3.0], [5.0]]]))
        >>> out = model(batch)
        >>> out.logits.shape, out.loss.requires_grad
        (torch.Size([1, 2, 1]), True)
        >>> ratings, log_p = model.user_scores(x[0, :2], torch.tensor([[4.0], [2.0]]))
        >>> ratings.shape, bool(log_p[1] == -torch.inf), round(float(log_p.exp().sum()), 4)
        (torch.Size([6]), True, 1.0)
    """

    capabilities: ClassVar[Capabilities] = Capabilities(regression=True)
    # The state entries of each head (they share none): what validation early-stops head by head.
    HEADS: ClassVar[dict[str, tuple[str, ...]]] = {
        "mae": ("item_mean", "item_factor", "rated", "liked", "w0", "c0"),
        "implicit": ("key", "value", "popularity"),
    }
    item_mean: Tensor

    def __init__(
        self,
        *,
        item_mean: Tensor,
        item_count: Tensor,
        dim: int = 4,
        implicit_dim: int = 32,
        user_damping: float = 3.0,
        inner_lr: float = 0.1,
        inner_steps: int = 1,
        eval_inner_steps: int | None = 3,
        implicit_weight: float = 0.1,
        rating_loss: Literal["mse", "l1"] = "l1",
        seed: int = 0,
    ) -> None:
        super().__init__()
        n = len(item_mean)
        if item_mean.shape != (n,) or item_count.shape != (n,) or n < 1:
            raise ValueError(f"item_mean and item_count must both be (n_items,), got {item_mean.shape}, "
                             f"{item_count.shape}")  # fmt: skip
        bad_eval = eval_inner_steps is not None and eval_inner_steps < 0
        if (
            dim < 1
            or implicit_dim < 1
            or inner_steps < 1
            or bad_eval
            or user_damping < 0
            or implicit_weight < 0
        ):
            raise ValueError(
                f"TwoHeadRecommender needs dim, implicit_dim, inner_steps >= 1 and eval_inner_steps, user_damping, "
                f"implicit_weight >= 0; got {dim}, {implicit_dim}, {inner_steps}, {eval_inner_steps}, "
                f"{user_damping}, {implicit_weight}"
            )
        if rating_loss not in ("mse", "l1"):
            raise ValueError(f"rating_loss={rating_loss!r}; use 'mse' or 'l1'")
        self.rating_loss = rating_loss
        self.inner_lr = check_lr("inner_lr", inner_lr)
        self.inner_steps, self.eval_inner_steps = inner_steps, eval_inner_steps
        self.user_damping, self.implicit_weight = float(user_damping), float(implicit_weight)
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("item_mean", item_mean.detach().float().clone())
        self.item_factor = nn.Parameter(0.1 * torch.randn(n, dim, generator=g))
        self.rated = nn.Parameter(torch.zeros(n, dim))  # Y: what rating an item says about a user's taste
        self.liked = nn.Parameter(torch.zeros(n, dim))  # Z: what liking it more than expected says
        self.w0 = nn.Parameter(torch.zeros(dim))
        self.c0 = nn.Parameter(torch.zeros(()))
        self.key = nn.Parameter(0.1 * torch.randn(n, implicit_dim, generator=g))
        self.value = nn.Parameter(0.1 * torch.randn(n, implicit_dim, generator=g))
        self.popularity = nn.Parameter(item_count.detach().float().add(1.0).log())

    def hyperparameters(self) -> dict[str, int | float | str | None]:
        """The constructor's keywords besides the item statistics (what rebuilds this learner)."""
        return {
            "dim": self.item_factor.shape[1], "implicit_dim": self.key.shape[1], "user_damping": self.user_damping,
            "inner_lr": self.inner_lr, "inner_steps": self.inner_steps, "eval_inner_steps": self.eval_inner_steps,
            "implicit_weight": self.implicit_weight, "rating_loss": self.rating_loss,
        }  # fmt: skip

    @property
    def n_items(self) -> int:
        return len(self.item_mean)

    # ---- rating head -------------------------------------------------------------------------------
    def _residual(self, params: Params, x: Tensor) -> Tensor:
        """One user's interaction term ``(B, 1)`` for rows ``x (B, 2)`` at that user's ``(w, c)``."""
        return (self.item_factor[x[:, 1]] @ params["w"] + params["c"]).unsqueeze(-1)

    def user_state(self, support_x: Tensor, support_y: Tensor, steps: int) -> UserState:
        """Each task's :class:`UserState` for supports ``(T, S, 2)`` / ``(T, S, 1)`` after ``steps`` inner steps."""
        items = support_x[..., 1]  # (T, S)
        residual = support_y[..., 0] - self.item_mean[items]  # (T, S)
        shrunk = residual.shape[-1] + self.user_damping
        bias = residual.sum(-1, keepdim=True) / shrunk  # (T, 1)
        taste = (
            self.rated[items].mean(1)
            + torch.einsum("ts,tsd->td", residual - bias, self.liked[items]) / shrunk
        )
        # the inner loop fits what the bias and the amortised taste leave of the support ratings
        target = residual - bias - torch.einsum("tsd,td->ts", self.item_factor[items], taste)
        params: Params = {"w": self.w0, "c": self.c0}
        phi = inner_adapt(self._residual, params, support_x, target.unsqueeze(-1), lrs=[self.inner_lr],
                          steps=steps, first_order=False, vectorize=True)  # fmt: skip
        return UserState(phi["w"] + taste, phi["c"] + bias[:, 0])

    def predict_ratings(self, state: UserState, query_x: Tensor) -> Tensor:
        """Ratings ``(T, Q, 1)`` for queries ``(T, Q, 2)`` of users in ``state``."""
        items = query_x[..., 1]
        interaction = torch.einsum("tqd,td->tq", self.item_factor[items], state.w) + state.c[:, None]
        return (self.item_mean[items] + interaction).unsqueeze(-1)

    # ---- implicit head -----------------------------------------------------------------------------
    def log_p_rated(self, support_x: Tensor) -> Tensor:
        """``log p(i | S_u)`` ``(T, n_items)`` for supports ``(T, S, 2)``; support items get ``-inf``."""
        items = support_x[..., 1]  # (T, S)
        user = self.key[items].mean(1)  # (T, implicit_dim)
        logits = self.popularity + user @ self.value.T  # (T, n_items)
        seen = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, items, True)
        return logits.masked_fill(seen, -torch.inf).log_softmax(-1)

    # ---- the learner contract ----------------------------------------------------------------------
    def forward(self, batch: TaskBatch) -> LearnerOutput:
        steps = self.inner_steps if self.training or self.eval_inner_steps is None else self.eval_inner_steps
        state = self.user_state(batch.support_x, batch.support_y, steps)
        out = make_output(self.predict_ratings(state, batch.query_x), batch)
        if self.rating_loss == "l1":
            out.loss = (out.logits - batch.query_y).abs().mean()
        if self.implicit_weight > 0:
            out.loss = out.loss + self.implicit_weight * self.implicit_loss(batch.support_x, batch.query_x)
        return out

    def implicit_loss(self, support_x: Tensor, query_x: Tensor) -> Tensor:
        """Mean cross-entropy of the query items ``(T, Q, 2)`` under ``p(. | support)`` (the implicit head)."""
        return -self.log_p_rated(support_x).gather(1, query_x[..., 1]).mean()

    def adapt(self, support_x: Tensor, support_y: Tensor) -> Predictor:
        """Adapt to one user's support ``(S, 2)`` / ``(S, 1)``; ``predict(x)`` gives ratings ``(B, 1)``."""
        steps = self.eval_inner_steps if self.eval_inner_steps is not None else self.inner_steps
        with torch.no_grad():
            state = self.user_state(support_x.unsqueeze(0), support_y.unsqueeze(0), steps)
        return Predictor(lambda x: self.predict_ratings(state, x.unsqueeze(0))[0], None)

    @torch.no_grad()
    def user_scores(self, support_x: Tensor, support_y: Tensor) -> tuple[Tensor, Tensor]:
        """One user's predicted ratings and ``log p(rated)`` for every item, each ``(n_items,)``."""
        catalogue = torch.stack([support_x[0, 0].expand(self.n_items), torch.arange(self.n_items)], dim=1)
        ratings = self.adapt(support_x, support_y).predict(catalogue)[:, 0]
        return ratings, self.log_p_rated(support_x.unsqueeze(0))[0]
