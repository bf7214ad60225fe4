"""Evaluation of trained learners: the same seed gives the same episodes for every learner, and learners
that adapt by gradient steps are scored correctly although ``evaluate`` runs under ``torch.no_grad``."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from metadl.algorithms import LEARNERS, create_learner
from metadl.config import config_from_dict
from metadl.data.base import FewShotDataset
from metadl.evaluation import evaluate
from metadl.evaluation.run import eval_report, eval_summary, evaluate_config
from metadl.models import create_backbone
from metadl.tasks import EpisodeSampler, TaskBatch


class Spy(nn.Module):
    """Records the episodes it is given and delegates to a learner."""

    def __init__(self, learner: nn.Module) -> None:
        super().__init__()
        self.learner, self.seen = learner, []

    def forward(self, batch):
        self.seen.append(batch)
        return self.learner(batch)


def vectors(num_classes: int = 10, per_class: int = 8, dim: int = 4, seed: int = 0) -> FewShotDataset:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    x = 3 * torch.randn(num_classes, dim, generator=g)[labels] + torch.randn(len(labels), dim, generator=g)
    return FewShotDataset(x, labels, [f"c{i}" for i in range(num_classes)])


def config(dataset: str, learner: str, **eval_section) -> object:
    return config_from_dict(
        {
            "device": "cpu",
            "dataset": {"name": dataset, **({"root": "unused"} if dataset != "sinusoid" else {})},
            "sampler": {"ways": 3, "shots": 2, "queries": 4},
            "backbone": {"name": "mlp", "hidden": [8]},
            "learner": {"name": learner},
            "eval": {"episodes": 12, **eval_section},
        }
    )


def build(name: str, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    return create_learner(
        name, backbone=create_backbone("mlp", in_features=kwargs.pop("in_features", 4), hidden=[8]), **kwargs
    )


@pytest.mark.parametrize("learners", [("maml", "metasgd"), ("reptile", "anil")])
def test_same_seed_gives_the_same_regression_episodes_to_every_learner(learners):
    seen = []
    for name in learners:
        if name not in LEARNERS:
            pytest.skip(f"{name} not registered")
        spy = Spy(build(name, in_features=1, out_features=1))
        result = evaluate_config(config("sinusoid", name, seed=5), spy)
        assert result.metric == "mse" and result.episodes == 12
        seen.append(torch.cat([b.support_x.flatten() for b in spy.seen]))
    assert torch.equal(seen[0], seen[1])
    other_seed = Spy(build(learners[0], in_features=1, out_features=1))
    evaluate_config(config("sinusoid", learners[0], seed=6), other_seed)
    assert not torch.equal(seen[0], torch.cat([b.support_x.flatten() for b in other_seed.seen]))


def test_same_seed_gives_the_same_classification_episodes_to_every_learner():
    data = vectors()
    seen = []
    for name in ("protonet", "maml"):
        spy = Spy(build(name, n_way=3))
        cfg = config("image_folder", name, seed=1)  # the dataset itself is passed in
        result = evaluate_config(cfg, spy, dataset=data)
        assert result.metric == "accuracy"
        seen.append([(b.support_x, b.query_y) for b in spy.seen])
        assert eval_report(cfg, result, {})["episodes"] == 12 and "3-way 2-shot" in eval_summary(cfg, result)
    for (xa, ya), (xb, yb) in zip(*seen, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def registered_learners() -> list[str]:
    return sorted(LEARNERS)


@pytest.mark.parametrize("name", registered_learners())
def test_evaluate_under_no_grad_matches_calling_the_learner_with_gradients(name):
    """``evaluate`` wraps learners in no_grad; inner loops must still adapt (enable_grad inside)."""
    try:
        learner = build(name, n_way=3)
    except (TypeError, ValueError) as err:
        pytest.skip(f"{name} does not build on an MLP with n_way only: {err}")
    sampler = EpisodeSampler(vectors(), n_way=3, k_shot=2, n_query=4, seed=3)
    result = evaluate(learner, sampler, episodes=6, batch_size=4)
    replay = EpisodeSampler(vectors(), n_way=3, k_shot=2, n_query=4, seed=3)
    learner.eval()
    batch = TaskBatch.stack([replay.sample_batch(1)[0] for _ in range(6)])
    with torch.enable_grad():
        expected = learner(batch).per_task_metric
    assert result.per_episode == pytest.approx(expected.tolist(), abs=1e-6)
