"""The core meta-training step and a minimal loop around it.

``meta_step`` is the one place that knows how a learner is updated: learners with their own outer
update (Reptile) expose ``outer_step(batch, optimizer)``; every other learner is trained by
back-propagating its meta-loss. The full engine (configs, checkpoints, validation, logging) builds on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import torch
from torch import nn
from tqdm.auto import tqdm

from metadl.algorithms.base import LearnerOutput
from metadl.tasks.task import TaskBatch
from metadl.training.distributed import ReducingOptimizer


class GradientReducer(Protocol):
    """What ``meta_step`` needs from a distributed context (see ``metadl.training.distributed``)."""

    def reduce_gradients(self, module: nn.Module) -> None: ...


class NonFiniteLossError(RuntimeError):
    """Raised when the meta-loss becomes NaN or infinite; the parameters are left as before the step."""


def meta_step(
    learner: nn.Module,
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
    learner.train()
    outer_step = getattr(learner, "outer_step", None)
    if outer_step is not None:
        if distributed is not None:  # the learner steps the optimizer itself: average the grads just before
            optimizer = ReducingOptimizer(optimizer, learner, distributed)
        return outer_step(batch, optimizer)
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


def meta_train(
    learner: nn.Module,
    sampler,
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
                loss=f"{sum(r['loss'] for r in recent) / len(recent):.3f}",
                **{key[:3]: f"{sum(r[key] for r in recent) / len(recent):.3f}"},
            )
    return history
