"""Matching Networks: attention read-out against a loop, full-context embeddings, adapt, learning."""

from __future__ import annotations

import math

import pytest
import torch
from fewshot_blobs import backbone, one_thread, separation  # noqa: F401 (fixture)

from metadl.algorithms import create_learner
from metadl.algorithms.matchingnet import MatchingNet, matching_log_probs
from metadl.tasks.task import TaskBatch

pytestmark = pytest.mark.usefixtures("one_thread")


def _batch(seed: int = 0) -> TaskBatch:
    g = torch.Generator().manual_seed(seed)
    return TaskBatch(
        torch.randn(2, 6, 20, generator=g),
        torch.tensor([[0, 0, 1, 1, 2, 2], [2, 1, 0, 2, 1, 0]]),
        torch.randn(2, 4, 20, generator=g),
        torch.tensor([[0, 1, 2, 0], [1, 1, 2, 0]]),
    )


def test_probabilities_match_a_loop_over_the_support_set() -> None:
    g = torch.Generator().manual_seed(1)
    zq, zs = (
        torch.randn(2, 3, 5, generator=g, dtype=torch.float64),
        torch.randn(2, 4, 5, generator=g, dtype=torch.float64),
    )
    y = torch.tensor([[0, 1, 1, 2], [2, 0, 1, 1]])
    scale = 2.5
    got = matching_log_probs(zq, zs, torch.nn.functional.one_hot(y, 3).double(), scale).exp()
    for t in range(2):
        for i in range(3):
            cos = [float(zq[t, i] @ zs[t, j] / (zq[t, i].norm() * zs[t, j].norm())) for j in range(4)]
            weights = [math.exp(scale * c) for c in cos]
            for c in range(3):
                expected = sum(
                    w for w, label in zip(weights, y[t].tolist(), strict=True) if label == c
                ) / sum(weights)
                assert float(got[t, i, c]) == pytest.approx(expected, rel=1e-12)


def test_loss_is_negative_log_probability_of_the_true_class() -> None:
    net = MatchingNet(backbone=backbone(), n_way=3)
    batch = _batch()
    out = net(batch)
    true = out.logits.exp().gather(-1, batch.query_y.unsqueeze(-1))
    torch.testing.assert_close(out.loss, -true.log().mean())


def test_full_context_embeddings_train_and_keep_query_independence() -> None:
    net = create_learner("matchingnet", backbone=backbone(), n_way=3, fce=True, fce_steps=2)
    batch = _batch()
    out = net(batch)
    out.loss.backward()
    assert all(p.grad is not None for p in net.fce.parameters())
    # Each query attends to the support set on its own: permuting queries permutes the logits.
    perm = torch.tensor([2, 0, 3, 1])
    permuted = TaskBatch(batch.support_x, batch.support_y, batch.query_x[:, perm], batch.query_y[:, perm])
    torch.testing.assert_close(net(permuted).logits, out.logits[:, perm])


def test_adapt_predicts_arbitrary_labels() -> None:
    net = MatchingNet(backbone=backbone(), n_way=3, scale=50.0)  # sharp attention: nearest neighbour
    x = _batch().support_x[0][::2]
    predictor = net.adapt(x, torch.tensor([-1, 10, 3]))
    assert predictor.predict(x).tolist() == [-1, 10, 3]


@pytest.mark.parametrize("fce", [False, True])
def test_meta_training_separates_blobs(fce: bool) -> None:
    before, after = separation(create_learner("matchingnet", backbone=backbone(), n_way=5, fce=fce), steps=60)
    assert after > 0.45 and after > before + 0.2, (before, after)
