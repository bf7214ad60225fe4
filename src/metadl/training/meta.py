"""The core meta-training step and a minimal loop around it.

``meta_step`` is the one place that knows how a learner is updated, and it is the same for every
learner: ``out = learner(batch)``, a check that the loss is finite, ``out.loss.backward()``, the
gradients averaged across processes (distributed training), clipped, then ``optimizer.step()``.
Learners whose update is not a plain gradient (Reptile) deliver it through the loss
(:func:`metadl.algorithms.base.precomputed_gradient`), so nothing here depends on the learner. The
full engine (configs, checkpoints, validation, logging) builds on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import nn
from tqdm.auto import tqdm

from metadl.algorithms.base import Learner, LearnerOutput
from metadl.tasks.task import TaskBatch


class GradientReducer(Protocol):
    """What ``meta_step`` needs from a distributed context (see ``metadl.training.distributed``)."""

    def reduce_gradients(self, module: nn.Module) -> None: ...


class NonFiniteLossError(RuntimeError):
    """Raised when the meta-loss becomes NaN or infinite; the parameters are left as before the step."""


def meta_step(
    learner: Learner,
    batch: TaskBatch,
    optimizer: torch.optim.Optimizer,
    *,
    grad_clip: float | None = None,
    distributed: GradientReducer | None = None,
) -> LearnerOutput:
    """One meta-update on ``batch``; returns the learner's output for logging.

    Under distributed training each process passes its shard of the meta-batch and a
    ``distributed`` object whose ``reduce_gradients(module)`` averages the gradients across
    processes (weighted by tasks), so every process applies the same update as one process would.
    """
    check_trainable(learner)
    learner.train()
    out = learner(batch)
    if not math.isfinite(out.loss.item()):
        raise NonFiniteLossError(
            f"meta-loss is {out.loss.item()}; lower the learning rate or enable grad_clip"
        )
    optimizer.zero_grad(set_to_none=True)
    out.loss.backward()
    if distributed is not None:
        distributed.reduce_gradients(learner)
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(learner.parameters(), grad_clip)
    optimizer.step()
    return out


def check_trainable(learner: Learner) -> None:
    """Refuse a learner that declares it cannot be meta-trained, with what to do instead."""
    if not learner.capabilities.meta_trainable:
        raise ValueError(
            f"{type(learner).__name__} cannot be meta-trained (it declares meta_trainable=False: it is fitted "
            "without gradients); use it on a trained backbone, or meta-train a differentiable learner"
        )


def meta_train(
    learner: Learner,
    sampler: Any,
    optimizer: torch.optim.Optimizer,
    *,
    iterations: int,
    meta_batch: int,
    device: str | torch.device = "cpu",
    grad_clip: float | None = None,
    progress: bool = True,
    on_step: Callable[[int, LearnerOutput], None] | None = None,
) -> list[dict[str, float]]:
    """Meta-train for ``iterations`` meta-batches of ``meta_batch`` tasks from ``sampler``.

    Returns one row per iteration (``iteration``, ``loss``, and ``accuracy`` or ``mse``); the
    progress bar shows running averages.
    """
    history: list[dict[str, float]] = []
    bar = tqdm(range(1, iterations + 1), desc="meta-train", disable=not progress, dynamic_ncols=True)
    for it in bar:
        out = meta_step(learner, sampler.sample_batch(meta_batch).to(device), optimizer, grad_clip=grad_clip)
        metric = float(out.per_task_metric.mean())
        row = {
            "iteration": it,
            "loss": out.loss.item(),
            ("accuracy" if out.is_classification else "mse"): metric,
        }
        history.append(row)
        if on_step is not None:
            on_step(it, out)
        if progress and (it % 10 == 0 or it == iterations):
            recent = history[-50:]
            key = "accuracy" if "accuracy" in row else "mse"
            bar.set_postfix(
                ordered_dict={
                    "loss": f"{sum(r['loss'] for r in recent) / len(recent):.3f}",
                    key[:3]: f"{sum(r[key] for r in recent) / len(recent):.3f}",
                }
            )
    return history
