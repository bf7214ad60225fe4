"""Every registered learner honours the contract; a newly registered one is tested here the moment it is added.

The contract (``metadl.algorithms.base``): ``create_learner(name, backbone=..., n_way=N)``;
``forward(batch)`` returns a scalar loss and ``(T, Q, N)`` logits; ``loss.backward()`` reaches the
backbone (skipped for learners that declare ``Capabilities(meta_trainable=False)``, e.g. a random-forest
head) and one optimizer step changes the learner; eval-mode forward works
under ``torch.no_grad()``; ``adapt(x, y)`` works under ``torch.no_grad()``, leaves the learner's state
alone, and its ``predict`` returns the original (arbitrary integer) labels. Learners that take
``out_features`` also handle regression tasks.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import torch

from metadl.algorithms import LEARNERS, Capabilities, Learner, LearnerOutput, create_learner, list_learners
from metadl.models import create_backbone
from metadl.tasks.task import TaskBatch
from metadl.training.meta import meta_step

N_WAY, K_SHOT, N_QUERY, N_TASKS, FEATURES = 3, 2, 2, 2, 4
# Constructor arguments beyond backbone and n_way / out_features, for learners that need them.
EXTRA_KWARGS: dict[str, dict[str, Any]] = {}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def classification_batch(seed: int = 0) -> TaskBatch:
    g = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(N_TASKS, N_WAY, 1, FEATURES, generator=g)
    sx = (centres + 0.3 * torch.randn(N_TASKS, N_WAY, K_SHOT, FEATURES, generator=g)).flatten(1, 2)
    qx = (centres + 0.3 * torch.randn(N_TASKS, N_WAY, N_QUERY, FEATURES, generator=g)).flatten(1, 2)
    sy = torch.arange(N_WAY).repeat_interleave(K_SHOT).expand(N_TASKS, -1)
    qy = torch.arange(N_WAY).repeat_interleave(N_QUERY).expand(N_TASKS, -1)
    return TaskBatch(sx, sy, qx, qy)


def learner(name: str, **head: int) -> torch.nn.Module:
    torch.manual_seed(0)
    backbone = create_backbone("mlp", in_features=FEATURES, hidden=[8], batch_norm=True)
    return create_learner(name, backbone=backbone, **head, **EXTRA_KWARGS.get(name, {}))


def takes(name: str, argument: str) -> bool:
    return argument in inspect.signature(LEARNERS[name]).parameters


@pytest.mark.parametrize("name", list_learners())
def test_forward_returns_scalar_loss_and_logits_per_task_query_class(name):
    out = learner(name, n_way=N_WAY)(classification_batch())
    assert isinstance(out, LearnerOutput)
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    assert out.logits.shape == (N_TASKS, N_WAY * N_QUERY, N_WAY)
    assert out.accuracy is not None and 0 <= out.accuracy <= 1


@pytest.mark.parametrize("name", list_learners())
def test_loss_backward_reaches_the_backbone(name):
    net = learner(name, n_way=N_WAY)
    if not net.capabilities.meta_trainable:
        pytest.skip(f"{name} declares meta_trainable=False")
    net(classification_batch()).loss.backward()
    grads = {k: p.grad for k, p in net.backbone.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values()), [
        k for k, g in grads.items() if g is None
    ]
    assert any(g.abs().sum() > 0 for g in grads.values())


@pytest.mark.parametrize("name", list_learners())
def test_is_a_learner_with_declared_capabilities(name):
    net = learner(name, n_way=N_WAY)
    assert isinstance(net, Learner) and isinstance(type(net).capabilities, Capabilities)
    assert type(net).capabilities.regression == takes(name, "out_features")


@pytest.mark.parametrize("name", list_learners())
def test_one_meta_step_updates_the_learner(name):
    net = learner(name, n_way=N_WAY)
    if not net.capabilities.meta_trainable:
        with pytest.raises(ValueError, match="cannot be meta-trained"):
            meta_step(net, classification_batch(), torch.optim.SGD(net.parameters(), lr=0.5))
        return
    before = [p.detach().clone() for p in net.parameters()]
    out = meta_step(net, classification_batch(), torch.optim.SGD(net.parameters(), lr=0.5))
    assert isinstance(out, LearnerOutput) and out.logits.shape == (N_TASKS, N_WAY * N_QUERY, N_WAY)
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))


@pytest.mark.parametrize("name", list_learners())
def test_eval_forward_without_gradients(name):
    net = learner(name, n_way=N_WAY).eval()
    with torch.no_grad():
        out = net(classification_batch())
    assert out.logits.shape == (N_TASKS, N_WAY * N_QUERY, N_WAY) and torch.isfinite(out.loss)


@pytest.mark.parametrize("name", list_learners())
def test_adapt_predicts_original_labels_and_leaves_the_learner_alone(name):
    net = learner(name, n_way=N_WAY).eval()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    task = classification_batch(seed=1)[0]
    labels = torch.tensor([40, 7, 12])
    with torch.no_grad():
        predictor = net.adapt(task.support_x, labels[task.support_y])
        pred = predictor.predict(task.query_x)
        proba = predictor.predict_proba(task.query_x)
    assert pred.shape == (N_WAY * N_QUERY,) and set(pred.tolist()) <= {7, 12, 40}
    assert proba.shape == (N_WAY * N_QUERY, N_WAY)
    assert torch.allclose(proba.sum(-1), torch.ones(len(proba)), atol=1e-5)
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())


@pytest.mark.parametrize("name", [n for n in list_learners() if takes(n, "out_features")])
def test_regression_tasks(name):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N_TASKS, 9, FEATURES, generator=g)
    y = x[..., :1].sin() * torch.rand(N_TASKS, 1, 1, generator=g)
    batch = TaskBatch(x[:, :5], y[:, :5], x[:, 5:], y[:, 5:])
    net = learner(name, out_features=1)
    out = net(batch)
    assert out.logits.shape == (N_TASKS, 4, 1) and out.accuracy is None
    if net.capabilities.meta_trainable:
        out.loss.backward()
    with torch.no_grad():
        assert net.adapt(batch.support_x[0], batch.support_y[0]).predict(batch.query_x[0]).shape == (4, 1)
