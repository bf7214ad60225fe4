"""What every learner shares: the protocol, its output, the per-task loss, and the adapted predictor.

A learner is a :class:`Learner` (an ``nn.Module``) with two calls and one declaration:
  * ``forward(batch: TaskBatch) -> LearnerOutput``: adapt to each task's support set and score its
    query set, so that ``out.loss.backward()`` followed by the optimizer's step meta-trains the learner.
    This is the only training path: a learner whose update is not the gradient of its query loss
    (Reptile) hands its update to ``backward`` through :func:`precomputed_gradient`, so gradient
    clipping, distributed averaging and the non-finite checks see every learner's update alike;
  * ``adapt(support_x, support_y) -> Predictor``: adapt to one support set for use, returning an
    object with ``predict(x)`` and ``predict_proba(x)``;
  * ``capabilities``: a class attribute (:class:`Capabilities`) stating what the learner can do beyond
    that, read by the trainer and the tests instead of probing for attributes.

Uncertainty is additive: a regression learner that predicts a Gaussian (the neural processes) declares
``Capabilities(uncertainty=True)``, fills ``LearnerOutput.variance`` (its loss is then the Gaussian
negative log-likelihood, :func:`gaussian_nll`) and hands ``variance=`` to its :class:`Predictor`, whose
``predict_variance(x)`` every other learner refuses with a one-line error.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metadl.tasks.task import TaskBatch, is_classification


@dataclass
class LearnerOutput:
    """Result of ``learner(batch)``.

    Attributes:
        loss: scalar, the mean query loss over the tasks of the batch.
        logits: ``(T, Q, N)`` class scores, or ``(T, Q, out)`` regression predictions.
        query_y: ``(T, Q)`` labels or ``(T, Q, out)`` targets the loss was computed against.
        variance: ``(T, Q, out)`` predictive variance of a learner with ``Capabilities(uncertainty=True)``
            (``logits`` is then the predictive mean), else None.
    """

    loss: Tensor
    logits: Tensor
    query_y: Tensor
    variance: Tensor | None = None

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


def gaussian_nll(mean: Tensor, variance: Tensor, y: Tensor) -> Tensor:
    """Mean negative log-likelihood of ``y`` under independent ``N(mean, variance)``, per element.

    ``0.5 * (log(2 pi variance) + (y - mean)^2 / variance)`` averaged over every element (any shape).

    Example:
        >>> round(gaussian_nll(torch.tensor([0.0]), torch.tensor([1.0]), torch.tensor([1.0])).item(), 4)
        1.4189
    """
    return 0.5 * (torch.log(2 * math.pi * variance) + (y - mean).pow(2) / variance).mean()


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
        variance: maps ``(B, *x_shape)`` to ``(B, out)`` predictive variances (regression learners with
            ``Capabilities(uncertainty=True)``), else None.

    ``predict`` returns original labels (``classes[argmax]``) or regression values; ``predict_proba``
    returns ``(B, N)`` softmax probabilities ordered as ``classes``; ``predict_variance`` the variance
    of the prediction, for learners that have one.
    """

    def __init__(
        self,
        score: Callable[[Tensor], Tensor],
        classes: Tensor | None,
        variance: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        self._score = score
        self._variance = variance
        self.classes_ = classes

    @property
    def has_variance(self) -> bool:
        return self._variance is not None

    @torch.no_grad()
    def predict_variance(self, x: Tensor) -> Tensor:
        """``(B, out)`` predictive variance of ``predict(x)``."""
        if self._variance is None:
            raise ValueError(
                "predict_variance needs a learner that predicts a variance (Capabilities(uncertainty=True), "
                "e.g. 'cnp' or 'anp')"
            )
        return self._variance(x)

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


@dataclass(frozen=True)
class Capabilities:
    """What a learner declares about itself (a class attribute, ``capabilities = Capabilities(...)``).

    Attributes:
        meta_trainable: ``out.loss.backward()`` trains it. ``False`` for a head fitted by another library
            with no gradient (the random forest): use it on a trained backbone.
        regression: it takes ``out_features=`` instead of ``n_way=`` and float targets.
        uncertainty: on regression tasks it predicts a variance (``LearnerOutput.variance``,
            ``Predictor.predict_variance``) and its loss is the Gaussian negative log-likelihood.
        clustering: it partitions unlabelled examples (``learner.cluster(x, k)``, the
            :class:`~metadl.algorithms.clustering_steps.Clusterer` protocol); its ``forward`` clusters each
            episode's support and query examples together and reports the clustering accuracy.
    """

    meta_trainable: bool = True
    regression: bool = False
    uncertainty: bool = False
    clustering: bool = False


class Learner(nn.Module):
    """The base of every learner in the registry (see the module docstring).

    Subclasses implement ``forward(batch) -> LearnerOutput`` and ``adapt(support_x, support_y) ->
    Predictor`` and declare ``capabilities``. The base adds nothing else, so a learner is an
    ``nn.Module`` that the type checker knows these three things about.
    """

    capabilities: ClassVar[Capabilities] = Capabilities()

    if TYPE_CHECKING:  # nn.Module types __call__ as returning Any; a learner's call returns its output

        def __call__(self, batch: TaskBatch) -> LearnerOutput: ...

    def forward(self, batch: TaskBatch) -> LearnerOutput:
        raise NotImplementedError

    def adapt(self, support_x: Tensor, support_y: Tensor) -> Predictor:
        raise NotImplementedError


class _PrecomputedGradient(torch.autograd.Function):
    """A loss value whose backward hands out gradients that were already computed (times ``grad_output``)."""

    @staticmethod
    def forward(ctx: Any, value: Tensor, grads: tuple[Tensor, ...], *params: Tensor) -> Tensor:
        ctx.grads = grads
        return value.detach().clone()

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        return (None, None, *(grad_output * g for g in ctx.grads))


def precomputed_gradient(value: Tensor, grads: Sequence[Tensor], params: Sequence[Tensor]) -> Tensor:
    """A scalar equal to ``value`` whose ``backward()`` adds ``grads[i]`` to ``params[i].grad``.

    How a learner whose update is computed outside autograd (Reptile's ``theta - mean_t phi_t``, or
    gradients accumulated chunk by chunk) still trains through ``loss.backward()``.

    Example:
        >>> w = torch.zeros(2, requires_grad=True)
        >>> loss = precomputed_gradient(torch.tensor(3.0), [torch.tensor([1.0, -2.0])], [w])
        >>> loss.backward(); loss.item(), w.grad.tolist()
        (3.0, [1.0, -2.0])
    """
    if len(grads) != len(params):
        raise ValueError(f"{len(grads)} gradients for {len(params)} parameters")
    return _PrecomputedGradient.apply(value, tuple(grads), *params)
