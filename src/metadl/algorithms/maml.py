"""MAML (Finn et al. 2017) and its first-order variant, on the functional inner loop of ``inner_loop.py``."""

from __future__ import annotations

from typing import ClassVar, Self

from torch import Tensor

from metadl.algorithms.base import Capabilities, Learner, LearnerOutput, Predictor
from metadl.algorithms.inner_loop import (
    InnerLoopSettings,
    Params,
    StepLR,
    TaskFn,
    adapted_predictor,
    check_batch_norm,
    check_lr,
    compose,
    has_batch_norm,
    inner_adapt,
    linear_head,
    meta_output,
    module_fn,
    predict_tasks,
    trainable,
    use_batch_statistics,
)
from metadl.models.base import Backbone
from metadl.tasks.task import TaskBatch


class MAML(Learner):
    """Model-Agnostic Meta-Learning: learn an initialisation that adapts to a task in a few gradient steps.

    ``forward(batch)`` adapts backbone + head to each task's support set with ``inner_steps`` steps of
    gradient descent (all tasks at once under ``torch.func.vmap``) and returns the mean query loss at
    the adapted parameters; its gradient is the second-order meta-gradient (or first-order with
    ``first_order=True``).

    Batch norm always normalises with batch statistics, per task, in training and eval mode alike
    (``eval()`` leaves batch-norm layers in training mode); ``transductive`` chooses whether the query
    set is one batch or each query example is normalised with the support set (``inner_loop``).
    Memory: vmap keeps every task's graph alive until the backward; ``task_chunk_size=c`` processes c
    tasks at a time and back-propagates each chunk inside ``forward`` (same gradient; on Omniglot
    Conv-4, about 30 MB per task in flight for second order).

    The variants override one piece each: :class:`FOMAML` (``first_order``), ``MetaSGD``
    (``step_lrs``: learned rates), ``ANIL`` (``inner_params``: the head only), ``Reptile``
    (``forward``: its update delivered through the loss).

    Args:
        backbone: feature extractor (batch norm must be ``metadl.models.BatchNorm``).
        n_way: classes per task (classification head), or
        out_features: regression outputs (regression head); give exactly one.
        inner_lr: inner-loop learning rate.
        inner_steps: inner steps in training mode; eval_inner_steps: in eval mode and ``adapt``.
        first_order: first-order MAML (no second derivatives).
        transductive: batch-norm statistics over the whole query set (``True``) or per query with the support set.
        vectorize: ``vmap`` over tasks (``True``) or a per-task loop (``False``, same result, slower).
        task_chunk_size: tasks processed together (bounds memory; see ``inner_loop.meta_output``).

    Example:
        >>> from metadl.models import create_backbone
        >>> maml = MAML(backbone=create_backbone("mlp", in_features=1, hidden=[8]), out_features=1, inner_lr=0.01)
        >>> x, y = torch.randn(4, 10, 1), torch.randn(4, 10, 1)
        >>> out = maml(TaskBatch(x[:, :5], y[:, :5], x[:, 5:], y[:, 5:]))
        >>> out.loss.backward(); out.logits.shape
        torch.Size([4, 5, 1])
    """

    capabilities: ClassVar[Capabilities] = Capabilities(regression=True)

    def __init__(
        self,
        *,
        backbone: Backbone,
        n_way: int | None = None,
        out_features: int | None = None,
        inner_lr: float = 0.4,
        inner_steps: int = 1,
        eval_inner_steps: int | None = None,
        first_order: bool = False,
        transductive: bool = True,
        vectorize: bool = True,
        task_chunk_size: int | None = None,
    ) -> None:
        super().__init__()
        check_batch_norm(backbone)
        self.inner_lr = check_lr("inner_lr", inner_lr)
        self.settings = InnerLoopSettings(
            inner_steps=inner_steps,
            eval_inner_steps=eval_inner_steps,
            first_order=first_order,
            transductive=transductive or not has_batch_norm(backbone),
            vectorize=vectorize,
            task_chunk_size=task_chunk_size,
        )
        self.backbone = backbone
        self.head = linear_head(backbone, n_way, out_features)

    def network(self) -> TaskFn:
        """``fn(params, x)``: the network as a function of parameters named ``backbone.*`` / ``head.*``."""
        return compose(module_fn(self.backbone, "backbone."), module_fn(self.head, "head."))

    def inner_params(self) -> Params:
        """The parameters the inner loop adapts (every trainable one), named ``backbone.*`` / ``head.*``."""
        return trainable(self.backbone, "backbone") | trainable(self.head, "head")

    def step_lrs(self) -> list[StepLR]:
        """Learning rate of each inner step (the last one repeats): one float here."""
        return [self.inner_lr]

    def adapt_params(self, support_x: Tensor, support_y: Tensor, steps: int) -> Params:
        """Per-task adapted parameters ``(T, *shape)`` for support sets ``(T, S, ...)``."""
        s = self.settings
        return inner_adapt(
            self.network(), self.inner_params(), support_x, support_y,
            lrs=self.step_lrs(), steps=steps, first_order=s.first_order, vectorize=s.vectorize,
        )  # fmt: skip

    def predict_logits(self, params: Params, support_x: Tensor, query_x: Tensor) -> Tensor:
        """Query scores ``(T, Q, N)`` at per-task parameters."""
        s = self.settings
        return predict_tasks(
            self.network(), params, support_x, query_x, transductive=s.transductive, vectorize=s.vectorize
        )

    def check_targets(self, batch: TaskBatch) -> None:
        """Refuse regression targets whose width differs from the head's outputs."""
        if not batch.is_classification and batch.query_y.shape[-1] != self.head.out_features:
            raise ValueError(
                f"regression targets have {batch.query_y.shape[-1]} outputs but the head has "
                f"{self.head.out_features}; create the learner with out_features={batch.query_y.shape[-1]}"
            )

    def forward(self, batch: TaskBatch) -> LearnerOutput:
        self.check_targets(batch)
        steps = self.settings.steps(self.training)

        def query_logits(chunk: TaskBatch) -> Tensor:
            params = self.adapt_params(chunk.support_x, chunk.support_y, steps)
            return self.predict_logits(params, chunk.support_x, chunk.query_x)

        return meta_output(query_logits, batch, list(self.parameters()), self.settings.task_chunk_size)

    def adapt(self, support_x: Tensor, support_y: Tensor) -> Predictor:
        """Adapt to one support set ``(S, *x_shape)`` with ``eval_inner_steps`` steps; parameters are unchanged."""
        return adapted_predictor(
            self.adapt_params, self.predict_logits, support_x, support_y,
            steps=self.settings.steps(False), n_outputs=self.head.out_features,
        )  # fmt: skip

    def train(self, mode: bool = True) -> Self:
        """As ``nn.Module.train``, except batch norm keeps using batch statistics (the MAML convention)."""
        super().train(mode)
        use_batch_statistics(self)
        return self


class FOMAML(MAML):
    """First-order MAML: ``MAML`` with ``first_order=True`` (the meta-gradient is the query gradient at the
    adapted parameters). Takes the same arguments as :class:`MAML` except ``first_order``.

    Example:
        >>> from metadl.models import create_backbone
        >>> FOMAML(backbone=create_backbone("mlp", in_features=2, hidden=[4]), n_way=3).settings.first_order
        True
    """

    def __init__(
        self,
        *,
        backbone: Backbone,
        n_way: int | None = None,
        out_features: int | None = None,
        inner_lr: float = 0.4,
        inner_steps: int = 1,
        eval_inner_steps: int | None = None,
        transductive: bool = True,
        vectorize: bool = True,
        task_chunk_size: int | None = None,
    ) -> None:
        super().__init__(
            backbone=backbone, n_way=n_way, out_features=out_features, inner_lr=inner_lr,
            inner_steps=inner_steps, eval_inner_steps=eval_inner_steps, first_order=True,
            transductive=transductive, vectorize=vectorize, task_chunk_size=task_chunk_size,
        )  # fmt: skip
