"""Reptile: the outer update is the mean of (phi - theta) over tasks, scaled by the outer learning rate,
delivered through ``out.loss.backward()`` like every other learner's update."""

from __future__ import annotations

import pytest
import torch
from maml_reference import (
    adapt_one,
    backbone_head_fn,
    image_batch,
    one_thread,  # noqa: F401 (autouse fixture)
    small_conv4,
    small_mlp,
    vector_batch,
)

from metadl.algorithms import create_learner
from metadl.training.meta import meta_step


def reptile(backbone, **kw):
    torch.manual_seed(0)
    return create_learner("reptile", backbone=backbone, n_way=3, inner_lr=0.1, inner_steps=3, **kw).double()


@pytest.mark.parametrize("task_chunk_size", [None, 2])
@pytest.mark.parametrize("vectorize", [True, False])
def test_meta_step_moves_theta_by_mean_of_phi_minus_theta(vectorize, task_chunk_size):
    learner = reptile(small_conv4(), vectorize=vectorize, task_chunk_size=task_chunk_size)
    batch = image_batch()
    theta = {k: v.detach().clone() for k, v in learner.named_parameters()}
    fn = backbone_head_fn(learner)
    phis = [
        adapt_one(
            fn,
            dict(learner.named_parameters()),
            t.support_x,
            t.support_y,
            lr=lambda s, k: 0.1,
            steps=3,
            create_graph=False,
        )
        for t in batch
    ]
    eps = 0.7
    out = meta_step(learner, batch, torch.optim.SGD(learner.parameters(), lr=eps))
    for k, p in learner.named_parameters():
        mean_delta = torch.stack([phi[k].detach() - theta[k] for phi in phis]).mean(0)
        assert torch.allclose(p, theta[k] + eps * mean_delta, rtol=1e-10, atol=1e-12), k
    # The reported loss is the query loss after adaptation.
    expected = torch.stack(
        [
            torch.nn.functional.cross_entropy(fn(phi, t.query_x), t.query_y)
            for phi, t in zip(phis, batch, strict=True)
        ]
    )
    assert torch.allclose(out.loss, expected.mean(), rtol=1e-10)


def test_meta_step_updates_every_parameter():
    learner = reptile(small_mlp(batch_norm=False))  # (a bias before batch norm would get no update)
    batch = vector_batch()
    before = [p.detach().clone() for p in learner.parameters()]
    meta_step(learner, batch, torch.optim.SGD(learner.parameters(), lr=1.0))
    assert all(not torch.equal(a, b) for a, b in zip(before, learner.parameters(), strict=True))


def test_backward_of_the_loss_is_the_reptile_direction():
    learner = reptile(small_mlp())
    batch = vector_batch()
    direction, _ = learner.reptile_direction(batch)
    learner(batch).loss.backward()
    for k, p in learner.named_parameters():
        assert torch.equal(p.grad, direction[k]), k


@pytest.mark.parametrize("name", ["reptile", "fomaml"])
def test_gradient_clipping_bounds_the_update(name):
    """The update goes through the one training path, so clipping applies to Reptile as to FOMAML
    (before, Reptile's side path skipped it: an update norm of 0.25 with grad_clip=1e-3)."""
    torch.manual_seed(0)
    learner = create_learner(name, backbone=small_mlp(), n_way=3, inner_lr=0.5, inner_steps=3).double()
    before = torch.cat([p.detach().flatten().clone() for p in learner.parameters()])
    meta_step(learner, vector_batch(), torch.optim.SGD(learner.parameters(), lr=1.0), grad_clip=1e-3)
    after = torch.cat([p.detach().flatten() for p in learner.parameters()])
    assert (after - before).norm() == pytest.approx(1e-3, rel=1e-4)  # clip_grad_norm_ divides by norm + 1e-6


def test_training_loss_is_the_fomaml_query_loss_and_eval_forward_is_fomaml():
    learner = reptile(small_mlp())
    fo = create_learner("fomaml", backbone=small_mlp(), n_way=3, inner_lr=0.1, inner_steps=3).double()
    fo.load_state_dict(learner.state_dict())
    batch = vector_batch()
    assert torch.equal(learner(batch).loss, fo(batch).loss.detach())
    learner.eval(), fo.eval()
    with torch.no_grad():
        a, b = learner(batch), fo(batch)
    assert torch.equal(a.loss, b.loss) and torch.equal(a.logits, b.logits)
