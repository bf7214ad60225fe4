"""A random-forest head for evaluation: scikit-learn's ``RandomForestClassifier`` fitted per task.

The forest is fitted on the support embeddings of each task (a Python loop over tasks: scikit-learn
is not batched) and scores the queries with ``log predict_proba``. Trees are not differentiable, so the
learner declares ``Capabilities(meta_trainable=False)``: use it on a pre-trained or meta-trained backbone. Its
loss is reported, but calling ``backward()`` on it raises an error that says so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from metadl.algorithms.base import Capabilities, LearnerOutput, Predictor, encode_labels, make_output
from metadl.algorithms.heads import HeadLearner, embed_tasks
from metadl.models.base import Backbone
from metadl.tasks.task import TaskBatch

if TYPE_CHECKING:  # scikit-learn is imported on first use: it costs ~1 s and ~90 MB at import
    from sklearn.ensemble import RandomForestClassifier

_FLOOR = 1e-6  # probability floor before the log, so one confident miss does not dominate the reported loss


class _NoGradient(torch.autograd.Function):
    """Identity on the loss; its backward explains why there is no gradient."""

    @staticmethod
    def forward(ctx: Any, loss: Tensor, anchor: Tensor) -> Tensor:
        return loss.clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> None:
        raise RuntimeError(
            "the 'randomforest' learner is fitted by scikit-learn and has no gradient (meta_trainable = False); "
            "evaluate it on a trained backbone, or meta-train a differentiable head such as 'svm', 'ridge' or 'logreg'"
        )


class ForestPredictor(Predictor):
    """The predictor of :meth:`RandomForestHead.adapt`, which also keeps the backbone and the fitted
    forest so that :func:`metadl.export.export_onnx` can convert both (the forest with skl2onnx).

    ``forest`` was fitted on ``backbone(x).flatten(1)`` with labels in ``0..N-1`` (indices into
    ``classes``); the scores are ``log max(p, floor)`` of its class probabilities ``p``.

    Example:
        >>> from metadl.models import create_backbone
        >>> rf = RandomForestHead(backbone=create_backbone("mlp", in_features=2, hidden=[4]), n_way=2, n_estimators=5)
        >>> p = rf.eval().adapt(torch.tensor([[0.0, 0.0], [0.0, 1.0], [5.0, 5.0], [6.0, 5.0]]), torch.tensor([3, 3, 8, 8]))
        >>> type(p).__name__, p.forest.classes_.tolist(), p.classes_.tolist(), p.floor
        ('ForestPredictor', [0, 1], [3, 8], 1e-06)
    """

    def __init__(
        self,
        score: Callable[[Tensor], Tensor],
        classes: Tensor,
        *,
        backbone: Backbone,
        forest: RandomForestClassifier,
    ) -> None:
        super().__init__(score, classes)
        self.backbone, self.forest, self.floor = backbone, forest, _FLOOR


class RandomForestHead(HeadLearner):
    """Random forest on frozen embeddings, one forest per task.

    Args:
        backbone: feature extractor (not trained by this learner).
        n_way: classes per episode (kept for the common constructor; an episode may have any number).
        n_estimators, max_depth, max_features: as in ``RandomForestClassifier``.
        seed: ``random_state`` of every forest, so results are reproducible.

    Example:
        >>> from metadl.models import create_backbone
        >>> rf = RandomForestHead(backbone=create_backbone("mlp", in_features=4, hidden=[8]), n_way=3, n_estimators=10)
        >>> b = TaskBatch(torch.randn(2, 6, 4), torch.arange(3).repeat(2).expand(2, 6), torch.randn(2, 3, 4), torch.arange(3).expand(2, 3))
        >>> rf(b).logits.shape
        torch.Size([2, 3, 3])
    """

    capabilities: ClassVar[Capabilities] = Capabilities(meta_trainable=False)

    def __init__(
        self,
        *,
        backbone: Backbone,
        n_way: int,
        n_estimators: int = 100,
        max_depth: int | None = None,
        max_features: str | float | None = "sqrt",
        seed: int = 0,
    ) -> None:
        super().__init__()
        if n_way < 2:
            raise ValueError(f"n_way must be >= 2, got {n_way}")
        if n_estimators < 1:
            raise ValueError(f"n_estimators must be >= 1, got {n_estimators}")
        if max_depth is not None and max_depth < 1:
            raise ValueError(f"max_depth must be None or >= 1, got {max_depth}")
        self.backbone, self.n_way = backbone, n_way
        self.n_estimators, self.max_depth, self.max_features, self.seed = (
            n_estimators,
            max_depth,
            max_features,
            seed,
        )

    def _forest(self) -> RandomForestClassifier:
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(
            n_estimators=self.n_estimators,
            max_depth=self.max_depth,
            max_features=self.max_features,
            random_state=self.seed,
        )

    def fit_head(self, support_z: Tensor, support_y: Tensor, n_way: int) -> list[RandomForestClassifier]:
        """One fitted forest per task."""
        z, y = support_z.detach().cpu().double().numpy(), support_y.cpu().numpy()
        return [self._forest().fit(z[t], y[t]) for t in range(len(z))]

    def score_head(self, forests: list[RandomForestClassifier], query_z: Tensor) -> Tensor:
        """``log`` of the forests' class probabilities, ``(T, Q, N)``; classes absent from a support set get 0."""
        z = query_z.detach().cpu().double().numpy()
        n = max(int(f.classes_.max()) for f in forests) + 1
        probs = np.zeros((len(z), z.shape[1], n))
        for t, forest in enumerate(forests):
            probs[t][:, forest.classes_] = forest.predict_proba(z[t])
        return torch.from_numpy(np.log(np.maximum(probs, _FLOOR))).to(query_z.device, query_z.dtype)

    @torch.no_grad()
    def adapt(self, support_x: Tensor, support_y: Tensor) -> ForestPredictor:
        """Fit one forest on ``support_x``'s embeddings (any integer labels); see :class:`ForestPredictor`."""
        classes, y = encode_labels(support_y)
        forests = self.fit_head(
            embed_tasks(self.backbone, support_x.unsqueeze(0)), y.unsqueeze(0), len(classes)
        )

        def score(x: Tensor) -> Tensor:
            return self.score_head(forests, embed_tasks(self.backbone, x.unsqueeze(0)))[0]

        return ForestPredictor(score, classes, backbone=self.backbone, forest=forests[0])

    def forward(self, batch: TaskBatch) -> LearnerOutput:
        if not batch.is_classification:
            raise ValueError(
                f"randomforest classifies: support_y must hold integer labels, got dtype {batch.support_y.dtype}"
            )
        with torch.no_grad():
            forests = self.fit_head(embed_tasks(self.backbone, batch.support_x), batch.support_y, batch.n_way)
            logits = self.score_head(forests, embed_tasks(self.backbone, batch.query_x))
        out = make_output(logits, batch)
        anchor = next((p for p in self.parameters() if p.requires_grad), None)
        if anchor is not None and torch.is_grad_enabled():
            out.loss = _NoGradient.apply(out.loss, anchor)
        return out
