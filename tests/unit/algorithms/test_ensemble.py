"""ProbabilityEnsemble: the log of the members' mean class probabilities, in episodes and adapted."""

from __future__ import annotations

import pytest
import torch

from metadl.algorithms import create_learner
from metadl.algorithms.ensemble import ProbabilityEnsemble
from metadl.models import create_backbone
from metadl.tasks import TaskBatch


def protonet(seed: int, distance: str = "euclidean"):
    torch.manual_seed(seed)
    backbone = create_backbone("mlp", in_features=6, hidden=[8])
    return create_learner("protonet", backbone=backbone, n_way=4, distance=distance).eval()


def batch() -> TaskBatch:
    g = torch.Generator().manual_seed(0)
    support_y = torch.arange(4).repeat(2).expand(2, 8)
    query_y = torch.arange(4).repeat(3).expand(2, 12)
    return TaskBatch(
        torch.randn(2, 8, 6, generator=g), support_y, torch.randn(2, 12, 6, generator=g), query_y
    )


def test_the_ensemble_is_the_log_of_the_mean_probability_and_its_nll() -> None:
    a, b, c = protonet(0), protonet(1), protonet(2, "cosine")
    episodes = batch()
    with torch.no_grad():
        expected = sum(m(episodes).logits.softmax(-1) for m in (a, b, c)) / 3
        out = ProbabilityEnsemble([a, b, c])(episodes)
    torch.testing.assert_close(out.logits.exp(), expected)
    nll = -expected.log().gather(-1, episodes.query_y.unsqueeze(-1)).mean()
    torch.testing.assert_close(out.loss, nll)
    assert torch.equal(out.query_y, episodes.query_y)


def test_adapted_ensemble_predicts_the_mean_probability_with_the_original_labels() -> None:
    a, b = protonet(0), protonet(1)
    x, y = torch.randn(6, 6), torch.tensor([7, 3, 9, 7, 3, 9])
    queries = torch.randn(5, 6)
    predictor = ProbabilityEnsemble([a, b]).adapt(x, y)
    pa, pb = a.adapt(x, y), b.adapt(x, y)
    expected = (pa.predict_proba(queries) + pb.predict_proba(queries)) / 2
    torch.testing.assert_close(predictor.predict_proba(queries), expected)
    assert torch.equal(predictor.predict(queries), torch.tensor([3, 7, 9])[expected.argmax(1)])


def test_one_member_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 2 members, got 1"):
        ProbabilityEnsemble([protonet(0)])
