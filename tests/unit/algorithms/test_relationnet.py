"""Relation Networks: scores against a loop over (query, class) pairs, both losses, learning."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from fewshot_blobs import backbone, one_thread, separation  # noqa: F401 (fixture)

from metadl.algorithms import create_learner
from metadl.algorithms.relationnet import RelationNet
from metadl.tasks.task import TaskBatch

pytestmark = pytest.mark.usefixtures("one_thread")


def _batch() -> TaskBatch:
    g = torch.Generator().manual_seed(0)
    return TaskBatch(
        torch.randn(2, 6, 20, generator=g),
        torch.arange(3).repeat_interleave(2).expand(2, 6),
        torch.randn(2, 9, 20, generator=g),
        torch.arange(3).repeat(3).expand(2, 9),
    )


@pytest.mark.parametrize("pool", ["sum", "mean"])
def test_scores_match_a_loop_over_pairs(pool: str) -> None:
    # Eval mode: batch norm uses running statistics, so each pair can be scored on its own.
    net = RelationNet(backbone=backbone(), n_way=3, pool=pool).eval()
    batch = _batch()
    with torch.no_grad():
        scores = net(batch).logits
        for t in range(2):
            zs, zq = net.backbone(batch.support_x[t]), net.backbone(batch.query_x[t])
            for c in range(3):
                members = zs[batch.support_y[t] == c]
                cls = members.sum(0) if pool == "sum" else members.mean(0)
                for i in range(9):
                    expected = net.relation(torch.cat([zq[i], cls])[None]).sigmoid()
                    torch.testing.assert_close(scores[t, i, c], expected[0, 0])


def test_losses_mse_on_one_hot_and_cross_entropy() -> None:
    batch = _batch()
    net = RelationNet(backbone=backbone(), n_way=3)
    out = net(batch)
    torch.testing.assert_close(out.loss, F.mse_loss(out.logits, F.one_hot(batch.query_y, 3).float()))
    net_ce = RelationNet(backbone=backbone(), n_way=3, loss="ce")
    out = net_ce(batch)
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits.flatten(0, 1), batch.query_y.flatten()))
    out.loss.backward()
    assert all(p.grad is not None for p in net_ce.relation.parameters())


def test_bad_options_name_the_choices() -> None:
    with pytest.raises(ValueError, match="mse"):
        RelationNet(backbone=backbone(), n_way=3, loss="hinge")
    with pytest.raises(ValueError, match="sum"):
        RelationNet(backbone=backbone(), n_way=3, pool="max")


def test_meta_training_separates_blobs() -> None:
    before, after = separation(create_learner("relationnet", backbone=backbone(), n_way=5), steps=100)
    assert after > 0.4 and after > before + 0.15, (before, after)
