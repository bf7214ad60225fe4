"""ANIL, Almost No Inner Loop (Raghu et al. 2020): MAML where only the head adapts to each task."""

from __future__ import annotations

from torch import Tensor

from metadl.algorithms.inner_loop import Params, inner_adapt, map_tasks, module_fn, predict_tasks, trainable
from metadl.algorithms.maml import MAML


class ANIL(MAML):
    """MAML with the inner loop restricted to the linear head; the backbone is only meta-learned.

    Each task's features are computed once with the shared backbone (per task, so batch-norm
    statistics stay within the task), then the head takes ``inner_steps`` gradient steps on the
    support features. The meta-gradient reaches the backbone through the features (second order
    through the head's inner loop unless ``first_order``). Much cheaper than MAML: the inner loop never
    runs the backbone. Arguments: as for :class:`~metadl.algorithms.maml.MAML`.

    Example:
        >>> from metadl.models import create_backbone
        >>> anil = ANIL(backbone=create_backbone("mlp", in_features=2, hidden=[4]), n_way=3)
        >>> list(anil.inner_params())
        ['head.weight', 'head.bias']
    """

    def inner_params(self) -> Params:
        return trainable(self.head, "head")

    def features(self, x: Tensor) -> Tensor:
        """Backbone features per task: ``(T, B, *x_shape)`` -> ``(T, B, D)``."""
        body = module_fn(self.backbone, "backbone.")
        return map_tasks(
            body, trainable(self.backbone, "backbone"), x, vectorize=self.settings.vectorize, shared=True
        )

    def adapt_params(self, support_x: Tensor, support_y: Tensor, steps: int) -> Params:
        s = self.settings
        return inner_adapt(
            module_fn(self.head, "head."), self.inner_params(), self.features(support_x), support_y,
            lrs=self.step_lrs(), steps=steps, first_order=s.first_order, vectorize=s.vectorize,
        )  # fmt: skip

    def predict_logits(self, params: Params, support_x: Tensor, query_x: Tensor) -> Tensor:
        s = self.settings
        body = module_fn(self.backbone, "backbone.")
        features = predict_tasks(
            body, trainable(self.backbone, "backbone"), support_x, query_x,
            transductive=s.transductive, vectorize=s.vectorize, shared=True,
        )  # fmt: skip
        return map_tasks(module_fn(self.head, "head."), params, features, vectorize=s.vectorize)
