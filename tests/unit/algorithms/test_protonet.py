"""ProtoNet: logits against a by-hand loop, the cosine variant, adapt/predict, and learning."""

from __future__ import annotations

import pytest
import torch
from fewshot_blobs import IN_FEATURES, backbone, one_thread, separation  # noqa: F401 (fixture)

from metadl.algorithms import create_learner
from metadl.algorithms.protonet import ProtoNet
from metadl.models import create_backbone
from metadl.tasks.task import TaskBatch

pytestmark = pytest.mark.usefixtures("one_thread")


def _batch(t: int = 3, n: int = 4, k: int = 2, q: int = 3, d: int = IN_FEATURES) -> TaskBatch:
    g = torch.Generator().manual_seed(0)
    ys = torch.arange(n).repeat_interleave(k).expand(t, n * k)
    yq = torch.arange(n).repeat_interleave(q).expand(t, n * q)
    return TaskBatch(torch.randn(t, n * k, d, generator=g), ys, torch.randn(t, n * q, d, generator=g), yq)


def _by_hand(net: ProtoNet, batch: TaskBatch, distance: str) -> torch.Tensor:
    """A slow loop: class means, then -||q - p||^2 (or scale * cosine) for every query and class."""
    t_count, q_count, n = len(batch), batch.query_x.shape[1], batch.n_way
    logits = torch.empty(t_count, q_count, n, dtype=torch.float64)
    scale = float(net.log_scale.detach().exp())
    with torch.no_grad():
        for t in range(t_count):
            zs = net.backbone(batch.support_x[t]).double()
            zq = net.backbone(batch.query_x[t]).double()
            for c in range(n):
                proto = zs[batch.support_y[t] == c].mean(0)
                for i in range(q_count):
                    if distance == "euclidean":
                        logits[t, i, c] = -scale * sum((zq[i, j] - proto[j]) ** 2 for j in range(len(proto)))
                    else:
                        cos = (zq[i] @ proto) / (zq[i].norm() * proto.norm())
                        logits[t, i, c] = scale * cos
    return logits


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_logits_match_a_loop_over_queries_and_classes(distance: str) -> None:
    net = ProtoNet(backbone=backbone(), n_way=4, distance=distance, learn_temperature=True)
    with torch.no_grad():
        net.log_scale.fill_(0.3)  # a non-trivial scale, so it is checked too
    batch = _batch()
    with torch.no_grad():
        logits = net(batch).logits.double()
    torch.testing.assert_close(logits, _by_hand(net, batch, distance), rtol=1e-5, atol=1e-4)


def test_adapt_predicts_arbitrary_labels() -> None:
    net = ProtoNet(backbone=backbone(), n_way=3)
    batch = _batch(t=1, n=3, k=1)
    labels = torch.tensor([42, 7, 13])  # not 0..N-1, and not sorted
    predictor = net.adapt(batch.support_x[0], labels)
    assert predictor.classes_.tolist() == [7, 13, 42]
    # One shot: each support example is its own prototype, so it is predicted as its own label.
    assert predictor.predict(batch.support_x[0]).tolist() == labels.tolist()
    proba = predictor.predict_proba(batch.query_x[0])
    torch.testing.assert_close(proba.sum(-1), torch.ones(len(proba)))
    # adapt scores like forward, with columns ordered by the sorted labels.
    relabelled = TaskBatch(batch.support_x, torch.tensor([[2, 0, 1]]), batch.query_x, batch.query_y)
    torch.testing.assert_close(predictor.decision_function(batch.query_x[0]), net(relabelled).logits[0])


def test_learned_temperature_gets_a_gradient() -> None:
    net = create_learner("protonet", backbone=backbone(), n_way=4, learn_temperature=True)
    net(_batch()).loss.backward()
    assert net.log_scale.grad is not None and net.log_scale.grad.abs() > 0


def test_bad_distance_names_the_choices() -> None:
    with pytest.raises(ValueError, match="euclidean"):
        ProtoNet(backbone=create_backbone("mlp", in_features=2, hidden=[4]), n_way=2, distance="manhattan")


def test_meta_training_separates_blobs() -> None:
    before, after = separation(create_learner("protonet", backbone=backbone(), n_way=5), steps=60)
    assert after > 0.5 and after > before + 0.25, (before, after)
