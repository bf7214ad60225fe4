"""MeLU (Lee et al., KDD 2019): MAML over users, adapting only the decision layers.

MeLU is :class:`~metadl.algorithms.maml.MAML` with a :class:`~metadl.models.melu.MeLUNet` backbone and
one piece overridden, :meth:`MeLU.inner_params`: with ``adapt="decision"`` (MeLU's choice) the inner
loop adapts the backbone's decision layers and the head to each user's support ratings, while the
feature embeddings are only meta-learned (their meta-gradient flows through the adapted layers);
``adapt="full"`` adapts every parameter, as plain MAML does. Everything else, the functional inner
loop vectorised over the users of a meta-batch with ``torch.func.vmap``, is MAML's.
"""

from __future__ import annotations

from typing import Literal

from metadl.algorithms.inner_loop import Params
from metadl.algorithms.maml import MAML
from metadl.models.melu import MeLUNet


class MeLU(MAML):
    """MAML on a :class:`MeLUNet` whose inner loop adapts the decision layers (or everything).

    Args:
        backbone: the MeLU network.
        adapt: ``"decision"`` (decision layers + head) or ``"full"`` (all parameters).
        inner_lr, inner_steps, eval_inner_steps, first_order, vectorize, task_chunk_size: as for MAML.
        The head is a linear layer to one output (the rating).

    Example:
        >>> from metadl.data.ratings import Features
        >>> net = MeLUNet(user_features=Features.build(["a"], {}, []),
        ...               item_features=Features.build(["x"], {}, []), embed_dim=2, hidden=[3])
        >>> sorted(MeLU(backbone=net).inner_params())
        ['backbone.decision.0.bias', 'backbone.decision.0.weight', 'head.bias', 'head.weight']
    """

    def __init__(
        self,
        *,
        backbone: MeLUNet,
        adapt: Literal["decision", "full"] = "decision",
        inner_lr: float = 0.1,
        inner_steps: int = 1,
        eval_inner_steps: int | None = None,
        first_order: bool = False,
        vectorize: bool = True,
        task_chunk_size: int | None = None,
    ) -> None:
        if adapt not in ("decision", "full"):
            raise ValueError(f"adapt={adapt!r}; use 'decision' (MeLU) or 'full' (every parameter)")
        super().__init__(
            backbone=backbone, out_features=1, inner_lr=inner_lr, inner_steps=inner_steps,
            eval_inner_steps=eval_inner_steps, first_order=first_order, vectorize=vectorize,
            task_chunk_size=task_chunk_size,
        )  # fmt: skip
        self.adapt_scope = adapt

    def inner_params(self) -> Params:
        every = super().inner_params()
        if self.adapt_scope == "full":
            return every
        return {k: v for k, v in every.items() if k.startswith(("backbone.decision.", "head."))}
