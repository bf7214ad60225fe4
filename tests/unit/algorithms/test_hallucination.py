"""Feature hallucination: generated features have the feature shape, are differentiable, and train end to end."""

from __future__ import annotations

import pytest
import torch

from metadl.algorithms import create_learner
from metadl.algorithms.hallucination import HallucinationNet
from metadl.algorithms.protonet import ProtoNet
from metadl.models import create_backbone
from metadl.tasks.task import TaskBatch

pytestmark = pytest.mark.usefixtures("one_thread")


def net(n_generated: int = 3, trained: bool = True) -> HallucinationNet:
    """A hallucination net; ``trained``: its generator's last layer moved off zero (as training does)."""
    torch.manual_seed(0)
    backbone = create_backbone("mlp", in_features=5, hidden=[16])
    model = HallucinationNet(backbone=backbone, n_way=3, n_generated=n_generated)
    if trained:
        torch.nn.init.normal_(model.generator.net[-1].weight, std=0.3)
    return model


def batch(seed: int = 0, tasks: int = 4) -> TaskBatch:
    g = torch.Generator().manual_seed(seed)
    centres = 2 * torch.randn(tasks, 3, 1, 5, generator=g)
    sx = (centres + 0.5 * torch.randn(tasks, 3, 1, 5, generator=g)).flatten(1, 2)
    qx = (centres + 0.5 * torch.randn(tasks, 3, 4, 5, generator=g)).flatten(1, 2)
    return TaskBatch(
        sx, torch.arange(3).expand(tasks, 3), qx, torch.arange(3).repeat_interleave(4).expand(tasks, 12)
    )


def test_generated_features_have_the_feature_shape_and_are_differentiable():
    model = net(n_generated=4)
    z = torch.randn(2, 6, model.backbone.out_features, requires_grad=True)
    y = torch.arange(3).repeat(2).expand(2, 6)
    fake, labels = model.hallucinate(z, y, 3, seeded=False)
    assert fake.shape == (2, 12, model.backbone.out_features)
    assert labels.tolist() == [[0] * 4 + [1] * 4 + [2] * 4] * 2
    fake.pow(2).sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.generator.parameters())
    # gradients of the generated features against finite differences of one generator weight
    w = model.generator.net[0].weight
    with torch.no_grad():
        base = model.hallucinate(z, y, 3, seeded=True)[0].sum()
        w[0, 0] += 1e-3
        moved = model.hallucinate(z, y, 3, seeded=True)[0].sum()
        w[0, 0] -= 1e-3
    w.grad = None
    model.hallucinate(z, y, 3, seeded=True)[0].sum().backward()
    assert float(w.grad[0, 0]) == pytest.approx(float(moved - base) / 1e-3, rel=0.05, abs=1e-3)


def test_meta_gradient_reaches_the_generator_through_the_query_loss():
    model = net()
    model(batch()).loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.generator.parameters())


@pytest.mark.parametrize(
    "model", [net(0), net(3, trained=False)], ids=["no generated examples", "untrained generator"]
)
def test_without_generated_examples_or_training_it_is_protonet(model):
    plain = ProtoNet(backbone=create_backbone("mlp", in_features=5, hidden=[16]), n_way=3)
    model.backbone.load_state_dict(plain.backbone.state_dict())
    assert torch.allclose(model(batch()).logits, plain(batch()).logits, atol=1e-5)


def test_eval_and_adapt_are_deterministic_and_leave_the_global_rng_alone():
    model = net().eval()
    b = batch()
    state = torch.random.get_rng_state()
    first = model(b).logits
    assert torch.equal(model(b).logits, first)
    predictor = model.adapt(b.support_x[0], b.support_y[0] + 7)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert set(predictor.predict(b.query_x[0]).tolist()) <= {7, 8, 9}


def test_training_mode_draws_fresh_noise():
    model = net().train()
    assert not torch.equal(model(batch()).logits, model(batch()).logits)


def test_it_learns_a_tiny_problem():
    model = create_learner(
        "hallucination", backbone=create_backbone("mlp", in_features=5, hidden=[16]), n_way=3
    )
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    first = model(batch(0)).loss.item()
    for step in range(60):
        opt.zero_grad()
        model(batch(step)).loss.backward()
        opt.step()
    assert model.eval()(batch(1000)).loss.item() < 0.5 * first


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"n_generated": -1}, "n_generated = -1"), ({"hidden": 0}, "hidden = 0")]
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        HallucinationNet(backbone=create_backbone("mlp", in_features=5, hidden=[4]), n_way=3, **kwargs)
