"""Meta-SGD: learned per-parameter inner learning rates, their gradients against a per-task loop."""

from __future__ import annotations

import pytest
import torch
from maml_reference import (
    backbone_head_fn,
    grads_of,
    one_thread,  # noqa: F401 (autouse fixture)
    reference_meta_loss,
    rel_err,
    small_mlp,
    vector_batch,
)

from metadl.algorithms import create_learner


def metasgd(**kw):
    torch.manual_seed(0)
    learner = create_learner("metasgd", backbone=small_mlp(), n_way=3, inner_lr=0.1, **kw).double()
    with torch.no_grad():  # distinct rates per entry, so a mix-up between parameters would show
        for rates in learner.inner_lrs:
            for a in rates:
                a.uniform_(0.05, 0.3)
    return learner


@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("per_step_lr", [False, True])
def test_meta_gradient_including_learning_rates_matches_loop(per_step_lr, first_order):
    learner = metasgd(inner_steps=2, per_step_lr=per_step_lr, first_order=first_order)
    batch = vector_batch()
    net = {k: v for k, v in learner.named_parameters() if not k.startswith("inner_lrs")}
    names = list(net)

    def lr(step: int, name: str) -> torch.Tensor:
        return learner.inner_lrs[min(step, len(learner.inner_lrs) - 1)][names.index(name)]

    ref = reference_meta_loss(backbone_head_fn(learner), net, batch, lr=lr, steps=2, first_order=first_order)
    got = grads_of(learner(batch).loss, learner.parameters())
    expected = grads_of(ref, learner.parameters())
    assert rel_err(got, expected) < 1e-10
    lr_grads = got[len(names) :]
    assert len(lr_grads) == len(names) * (2 if per_step_lr else 1)
    assert all(g.abs().sum() > 0 for g in lr_grads)  # every rate is learned


def test_learning_rates_start_at_inner_lr_and_have_parameter_shapes():
    learner = create_learner(
        "metasgd", backbone=small_mlp(), n_way=3, inner_lr=0.02, per_step_lr=True, inner_steps=3
    )
    assert len(learner.inner_lrs) == 3
    shapes = [p.shape for p in learner.inner_params().values()]
    for rates in learner.inner_lrs:
        assert [a.shape for a in rates] == shapes and all(torch.all(a == 0.02) for a in rates)


def test_adapt_uses_the_learned_rates_and_eval_steps_beyond_training_reuse_the_last():
    learner = metasgd(inner_steps=2, per_step_lr=True, eval_inner_steps=4)
    task = vector_batch(n_tasks=1)[0]
    names = list(learner.inner_params())
    rates = [[learner.inner_lrs[min(s, 1)][i] for i in range(len(names))] for s in range(4)]
    from maml_reference import adapt_one  # noqa: PLC0415

    fn = backbone_head_fn(learner)
    phi = adapt_one(
        fn,
        learner.inner_params(),
        task.support_x,
        task.support_y,
        lr=lambda s, k: rates[s][names.index(k)],
        steps=4,
        create_graph=False,
    )
    expected = fn(phi, task.query_x)
    got = learner.adapt(task.support_x, task.support_y).decision_function(task.query_x)
    assert torch.allclose(got, expected, rtol=1e-10)
