"""Evaluation never asks for more memory than there is: big episodes run fewer at a time, or are refused
up front with the memory they would need (issue 12, item 7)."""

from __future__ import annotations

import pytest
import torch

from metadl.algorithms import create_learner
from metadl.data.base import FewShotDataset
from metadl.evaluation import episodes as episodes_module
from metadl.evaluation import evaluate
from metadl.evaluation.memory import EvalMemoryError, bytes_per_example
from metadl.models import create_backbone
from metadl.tasks import EpisodeSampler

CLASSES = 60


@pytest.fixture(scope="module")
def data() -> FewShotDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(CLASSES * 6, 64, generator=g) + torch.randn(CLASSES, 64, generator=g).repeat_interleave(
        6, 0
    )
    return FewShotDataset(x, torch.arange(CLASSES).repeat_interleave(6), [f"c{i}" for i in range(CLASSES)])


@pytest.fixture(scope="module")
def learner() -> torch.nn.Module:
    torch.manual_seed(0)
    backbone = create_backbone("mlp", in_features=64, hidden=[32, 32])
    return create_learner("protonet", backbone=backbone, n_way=5)


def test_the_estimate_counts_every_layer_of_the_backbone(learner):
    # the input (64) and each Linear and ReLU output (32), in float32
    assert bytes_per_example(learner, torch.zeros(1, 64)) == 4 * (64 + 4 * 32)


def test_a_tight_budget_runs_fewer_episodes_at_a_time_with_the_same_scores(data, learner, monkeypatch):
    sampler = lambda: EpisodeSampler(data, n_way=50, k_shot=1, n_query=5, seed=3)  # noqa: E731
    free = evaluate(learner, sampler(), episodes=6, batch_size=16, memory_budget=1 << 40)
    batches = []
    forward = type(learner).forward
    monkeypatch.setattr(type(learner), "forward", lambda self, b: batches.append(len(b)) or forward(self, b))
    episode = bytes_per_example(learner, torch.zeros(1, 64)) * 50 * 6
    tight = evaluate(learner, sampler(), episodes=6, batch_size=16, memory_budget=2 * episode + 1)
    assert batches == [2, 2, 2]
    assert tight.per_episode == free.per_episode


def test_an_episode_that_cannot_fit_is_refused_before_it_runs(data, learner, monkeypatch):
    monkeypatch.setattr(episodes_module, "available_memory", lambda: 1 << 17)  # 128 KiB free
    ran = []
    monkeypatch.setattr(type(learner), "forward", lambda self, b: ran.append(b))
    with pytest.raises(
        EvalMemoryError,
        match=r"one 50-way 1-shot 5-query episode needs about 0\.2 MiB, more than the 0\.1 MiB available",
    ):
        evaluate(learner, EpisodeSampler(data, n_way=50, k_shot=1, n_query=5, seed=3), episodes=2)
    assert ran == []
