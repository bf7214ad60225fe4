"""A tiny few-shot problem for the metric and closed-form learners' tests.

Each class is a Gaussian blob in 4 informative dimensions, hidden among 16 dimensions of much
larger noise. A random MLP embedding mixes the noise into every feature, so an untrained learner is
near chance; meta-training has to learn to ignore the noise dimensions.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

from metadl.data.base import FewShotDataset
from metadl.models import create_backbone
from metadl.tasks.samplers import EpisodeSampler
from metadl.tasks.task import TaskBatch

IN_FEATURES = 20


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny tensors on a shared 2-core machine: a second intra-op thread only waits (a small batched
    matmul measured 15 us on one thread, 5-15 ms on two while other processes held the cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


N_WAY, K_SHOT, N_QUERY = 5, 3, 5


def blobs(n_classes: int, per_class: int, seed: int, *, noise: float = 3.0) -> FewShotDataset:
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n_classes, 4, generator=g)
    informative = means.repeat_interleave(per_class, 0) + 0.3 * torch.randn(
        n_classes * per_class, 4, generator=g
    )
    clutter = noise * torch.randn(n_classes * per_class, IN_FEATURES - 4, generator=g)
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    return FewShotDataset(
        torch.cat([informative, clutter], 1), labels, [f"c{i}" for i in range(n_classes)], "blobs"
    )


def backbone(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return create_backbone("mlp", in_features=IN_FEATURES, hidden=[32, 32])


def eval_episodes(n: int = 32) -> TaskBatch:
    return EpisodeSampler(
        blobs(32, 20, seed=1), n_way=N_WAY, k_shot=K_SHOT, n_query=N_QUERY, seed=123
    ).sample_batch(n)


@torch.no_grad()
def accuracy(learner: nn.Module, batch: TaskBatch) -> float:
    was_training = learner.training
    learner.eval()
    acc = float(learner(batch).accuracy)
    learner.train(was_training)
    return acc


def meta_train(learner: nn.Module, *, steps: int, lr: float = 1e-2, meta_batch: int = 4) -> list[float]:
    """Plain episodic meta-training on the training classes; returns the loss curve."""
    sampler = EpisodeSampler(blobs(64, 20, seed=0), n_way=N_WAY, k_shot=K_SHOT, n_query=N_QUERY, seed=0)
    optimizer = torch.optim.Adam(learner.parameters(), lr=lr)
    losses = []
    learner.train()
    for _ in range(steps):
        out = learner(sampler.sample_batch(meta_batch))
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(out.loss.item())
    return losses


def separation(learner: nn.Module, *, steps: int, lr: float = 1e-2) -> tuple[float, float]:
    """Test-episode accuracy before and after ``steps`` meta-training steps."""
    batch = eval_episodes()
    before = accuracy(learner, batch)
    meta_train(learner, steps=steps, lr=lr)
    return before, accuracy(learner, batch)
