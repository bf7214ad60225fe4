"""Slow, obviously-correct references for the gradient-based learners: one task at a time, plain autograd.

Shared by test_maml*.py, test_metasgd.py, test_anil.py, test_reptile.py and test_inner_loop.py.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn
from torch.func import functional_call

from metadl.algorithms.base import query_loss
from metadl.data.base import FewShotDataset
from metadl.models import create_backbone
from metadl.tasks.samplers import EpisodeSampler
from metadl.tasks.task import TaskBatch

Params = dict[str, Tensor]


@pytest.fixture(autouse=True)
def one_thread():
    """Run on one intra-op thread: these tensors are tiny, and on a busy machine every parallel op would wait
    for a descheduled second thread (measured: a 40-unit MLP meta-step took 3 ms on one thread, 12-240 ms on two)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


LR = Callable[[int, str], Tensor | float]  # (step, parameter name) -> learning rate


def sub(params: Params, prefix: str) -> Params:
    return {k.removeprefix(prefix): v for k, v in params.items() if k.startswith(prefix)}


def backbone_head_fn(learner: nn.Module) -> Callable[[Params, Tensor], Tensor]:
    """The learner's network as a function of parameters named ``backbone.*`` / ``head.*`` (module's own if absent)."""

    def fn(p: Params, x: Tensor) -> Tensor:
        z = functional_call(learner.backbone, sub(p, "backbone."), (x,))
        return functional_call(learner.head, sub(p, "head."), (z,))

    return fn


def adapt_one(
    fn, params: Params, x: Tensor, y: Tensor, *, lr: LR, steps: int, create_graph: bool, keys=None
) -> Params:
    """``steps`` of gradient descent on one task's support set, per-task Python, ``torch.autograd.grad``."""
    p = dict(params)
    keys = list(p) if keys is None else keys
    for step in range(steps):
        loss = query_loss(fn(p, x), y)
        grads = torch.autograd.grad(loss, [p[k] for k in keys], create_graph=create_graph)
        for k, g in zip(keys, grads, strict=True):
            p[k] = p[k] - lr(step, k) * g
    return p


def reference_meta_loss(
    fn, params: Params, batch: TaskBatch, *, lr: LR, steps: int, first_order: bool = False, keys=None
) -> Tensor:
    """Mean over tasks of the query loss after adaptation; differentiable w.r.t. ``params``."""
    losses = []
    for task in batch:
        phi = adapt_one(
            fn,
            params,
            task.support_x,
            task.support_y,
            lr=lr,
            steps=steps,
            create_graph=not first_order,
            keys=keys,
        )
        losses.append(query_loss(fn(phi, task.query_x), task.query_y))
    return torch.stack(losses).mean()


def flat(tensors) -> Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def rel_err(a, b) -> float:
    a, b = flat(a), flat(b)
    return float((a - b).norm() / b.norm())


def grads_of(loss: Tensor, params) -> list[Tensor]:
    return list(torch.autograd.grad(loss, list(params)))


def image_batch(
    n_tasks: int = 3,
    n_way: int = 3,
    k_shot: int = 2,
    n_query: int = 2,
    side: int = 16,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> TaskBatch:
    g = torch.Generator().manual_seed(seed)
    sx = torch.randn(n_tasks, n_way * k_shot, 1, side, side, generator=g, dtype=dtype)
    qx = torch.randn(n_tasks, n_way * n_query, 1, side, side, generator=g, dtype=dtype)
    sy = torch.arange(n_way).repeat_interleave(k_shot).expand(n_tasks, -1)
    qy = torch.arange(n_way).repeat_interleave(n_query).expand(n_tasks, -1)
    return TaskBatch(sx, sy, qx, qy)


def vector_batch(
    n_tasks: int = 3,
    n_way: int = 3,
    k_shot: int = 2,
    n_query: int = 2,
    features: int = 4,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> TaskBatch:
    g = torch.Generator().manual_seed(seed)
    sx = torch.randn(n_tasks, n_way * k_shot, features, generator=g, dtype=dtype)
    qx = torch.randn(n_tasks, n_way * n_query, features, generator=g, dtype=dtype)
    sy = torch.arange(n_way).repeat_interleave(k_shot).expand(n_tasks, -1)
    qy = torch.arange(n_way).repeat_interleave(n_query).expand(n_tasks, -1)
    return TaskBatch(sx, sy, qx, qy)


def regression_batch(
    n_tasks: int = 3, k_shot: int = 5, n_query: int = 4, seed: int = 0, dtype=torch.float64
) -> TaskBatch:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n_tasks, k_shot + n_query, 1, generator=g, dtype=dtype) * 10 - 5
    amp = torch.rand(n_tasks, 1, 1, generator=g, dtype=dtype) * 4.9 + 0.1
    y = amp * torch.sin(x)
    return TaskBatch(x[:, :k_shot], y[:, :k_shot], x[:, k_shot:], y[:, k_shot:])


def small_conv4(hidden: int = 4, side: int = 16):
    return create_backbone("conv4", in_channels=1, hidden=hidden, image_size=side)


def small_mlp(features: int = 4, hidden=(6, 5), batch_norm: bool = True):
    return create_backbone("mlp", in_features=features, hidden=list(hidden), batch_norm=batch_norm)


def clusters_sampler(
    seed: int = 0, n_way: int = 3, k_shot: int = 2, n_query: int = 4, n_classes: int = 12, features: int = 8
) -> EpisodeSampler:
    """A tiny few-shot problem: each class is a Gaussian blob around a random centre in 8-D."""
    g = torch.Generator().manual_seed(1234)
    centres = torch.randn(n_classes, features, generator=g) * 2.0
    per_class = 20
    data = centres.repeat_interleave(per_class, 0) + 0.5 * torch.randn(
        n_classes * per_class, features, generator=g
    )
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    ds = FewShotDataset(data, labels, [f"c{i}" for i in range(n_classes)], name="clusters")
    return EpisodeSampler(ds, n_way=n_way, k_shot=k_shot, n_query=n_query, seed=seed)
