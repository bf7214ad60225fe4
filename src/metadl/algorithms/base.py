"""What every learner shares: its output, the per-task loss, and the adapted-predictor object.

A learner is an ``nn.Module`` with two calls:
  * ``forward(batch: TaskBatch) -> LearnerOutput``: adapt to each task's support set and score its
    query set, differentiably, so ``out.loss.backward()`` meta-trains the learner;
  * ``adapt(support_x, support_y) -> Predictor``: adapt to one support set for use, returning an
    object with ``predict(x)`` and ``predict_proba(x)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor

from metadl.tasks.task import TaskBatch, is_classification


@dataclass
class LearnerOutput:
    """Result of ``learner(batch)``.

    Attributes:
        loss: scalar, the mean query loss over the tasks of the batch.
        logits: ``(T, Q, N)`` class scores, or ``(T, Q, out)`` regression predictions.
        query_y: ``(T, Q)`` labels or ``(T, Q, out)`` targets the loss was computed against.
    """

    loss: Tensor
    logits: Tensor
    query_y: Tensor

    @property
    def is_classification(self) -> bool:
        return is_classification(self.query_y)

    @property
    def predictions(self) -> Tensor:
        """``(T, Q)`` predicted labels, or the regression predictions themselves."""
        return self.logits.argmax(-1) if self.is_classification else self.logits

    @property
    def per_task_metric(self) -> Tensor:
        """``(T,)`` accuracy per task (classification) or mean squared error per task (regression)."""
        with torch.no_grad():
            if self.is_classification:
                return (self.predictions == self.query_y).float().mean(-1)
            return (self.logits - self.query_y).pow(2).flatten(1).mean(-1)

    @property
    def accuracy(self) -> Tensor | None:
        return self.per_task_metric.mean() if self.is_classification else None


def query_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Mean loss of one task (or any leading batch): cross-entropy for int labels, MSE for float targets.

    ``logits``: ``(..., Q, N)`` or ``(..., Q, out)``; ``y``: ``(..., Q)`` or ``(..., Q, out)``.
    """
    if is_classification(y):
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
    return F.mse_loss(logits, y)


def make_output(logits: Tensor, batch: TaskBatch) -> LearnerOutput:
    """The standard output: mean query loss over tasks (tasks have equal query size, so one mean)."""
    return LearnerOutput(loss=query_loss(logits, batch.query_y), logits=logits, query_y=batch.query_y)


def encode_labels(y: Tensor) -> tuple[Tensor, Tensor]:
    """Map arbitrary integer labels to ``0..N-1``: returns ``(classes, encoded)`` with ``classes[encoded] == y``."""
    if not is_classification(y):
        raise ValueError(f"class labels must be integers, got dtype {y.dtype}")
    classes, encoded = torch.unique(y, sorted=True, return_inverse=True)
    return classes, encoded


class Predictor:
    """A learner adapted to one support set.

    Args:
        score: maps ``(B, *x_shape)`` to ``(B, N)`` class scores (or ``(B, out)`` regression values).
        classes: the original labels of the support set, ``(N,)``; ``None`` for regression.

    ``predict`` returns original labels (``classes[argmax]``) or regression values; ``predict_proba``
    returns ``(B, N)`` softmax probabilities ordered as ``classes``.
    """

    def __init__(self, score: Callable[[Tensor], Tensor], classes: Tensor | None) -> None:
        self._score = score
        self.classes_ = classes

    @torch.no_grad()
    def decision_function(self, x: Tensor) -> Tensor:
        return self._score(x)

    def predict_proba(self, x: Tensor) -> Tensor:
        if self.classes_ is None:
            raise ValueError(
                "predict_proba is for classification; this predictor was adapted to regression targets"
            )
        return self.decision_function(x).softmax(-1)

    def predict(self, x: Tensor) -> Tensor:
        scores = self.decision_function(x)
        if self.classes_ is None:
            return scores
        return self.classes_.to(scores.device)[scores.argmax(-1)]


@runtime_checkable
class Learner(Protocol):
    """The contract every learner in the registry satisfies (see the module docstring)."""

    def __call__(self, batch: TaskBatch) -> LearnerOutput: ...

    def adapt(self, support_x: Tensor, support_y: Tensor) -> Predictor: ...
