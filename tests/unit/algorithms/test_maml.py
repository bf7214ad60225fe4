"""MAML and first-order MAML: meta-gradients against a per-task autograd loop and finite differences."""

from __future__ import annotations

import pytest
import torch
from maml_reference import (
    adapt_one,
    backbone_head_fn,
    grads_of,
    image_batch,
    one_thread,  # noqa: F401 (autouse fixture)
    reference_meta_loss,
    regression_batch,
    rel_err,
    small_conv4,
    small_mlp,
    vector_batch,
)

from metadl.algorithms import create_learner
from metadl.algorithms.base import query_loss
from metadl.models import create_backbone

LR = 0.4


def make(name: str, backbone, dtype=torch.float64, **kw):
    torch.manual_seed(0)
    return create_learner(name, backbone=backbone, n_way=3, inner_lr=LR, **kw).to(dtype)


CASES = {
    "conv4-bn": (lambda: small_conv4(), image_batch),
    "mlp-bn": (lambda: small_mlp(batch_norm=True), vector_batch),
    "mlp": (lambda: small_mlp(batch_norm=False), vector_batch),
}


@pytest.mark.parametrize("vectorize", [True, False])
@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("case", list(CASES))
def test_second_order_meta_gradient_matches_per_task_loop(case, steps, vectorize):
    make_backbone, make_batch = CASES[case]
    maml = make("maml", make_backbone(), inner_steps=steps, vectorize=vectorize)
    batch = make_batch()
    params = dict(maml.named_parameters())
    got = grads_of(maml(batch).loss, params.values())
    ref = reference_meta_loss(backbone_head_fn(maml), params, batch, lr=lambda s, k: LR, steps=steps)
    assert rel_err(got, grads_of(ref, params.values())) < 1e-10
    assert torch.allclose(maml(batch).loss, ref, rtol=1e-12)


def test_float32_meta_gradient_matches_loop_to_1e5():
    maml = make("maml", small_conv4(), dtype=torch.float32, inner_steps=3)
    batch = image_batch(dtype=torch.float32)
    params = dict(maml.named_parameters())
    ref = reference_meta_loss(backbone_head_fn(maml), params, batch, lr=lambda s, k: LR, steps=3)
    assert rel_err(grads_of(maml(batch).loss, params.values()), grads_of(ref, params.values())) < 1e-5


@pytest.mark.parametrize("batch_norm", [True, False])
def test_second_order_meta_gradient_matches_finite_differences(batch_norm):
    torch.manual_seed(0)
    maml = create_learner(
        "maml",
        backbone=small_mlp(features=2, hidden=(3,), batch_norm=batch_norm),
        n_way=2,
        inner_lr=0.5,
        inner_steps=2,
    ).double()
    batch = vector_batch(n_tasks=2, n_way=2, features=2)
    analytic = torch.cat([g.reshape(-1) for g in grads_of(maml(batch).loss, maml.parameters())])
    numeric, eps = [], 1e-6
    with torch.no_grad():
        for p in maml.parameters():
            flat = p.view(-1)
            for i in range(flat.numel()):
                old = flat[i].item()
                flat[i] = old + eps
                up = maml(batch).loss.item()
                flat[i] = old - eps
                down = maml(batch).loss.item()
                flat[i] = old
                numeric.append((up - down) / (2 * eps))
    numeric = torch.tensor(numeric, dtype=torch.float64)
    assert (analytic - numeric).abs().max() < 1e-7 * max(1.0, numeric.abs().max().item())
    # The second-order terms matter here: first-order MAML gives a different gradient.
    fo = create_learner(
        "fomaml",
        backbone=small_mlp(features=2, hidden=(3,), batch_norm=batch_norm),
        n_way=2,
        inner_lr=0.5,
        inner_steps=2,
    ).double()
    fo.load_state_dict(maml.state_dict())
    first = torch.cat([g.reshape(-1) for g in grads_of(fo(batch).loss, fo.parameters())])
    assert (first - numeric).abs().max() > 1e-4


@pytest.mark.parametrize("vectorize", [True, False])
def test_first_order_gradient_is_query_gradient_at_adapted_parameters(vectorize):
    fo = make("fomaml", small_conv4(), inner_steps=2, vectorize=vectorize)
    batch = image_batch()
    params = dict(fo.named_parameters())
    fn = backbone_head_fn(fo)
    expected = [torch.zeros_like(p) for p in params.values()]
    for task in batch:
        phi = adapt_one(
            fn, params, task.support_x, task.support_y, lr=lambda s, k: LR, steps=2, create_graph=False
        )
        phi = {k: v.detach().requires_grad_() for k, v in phi.items()}
        g = torch.autograd.grad(query_loss(fn(phi, task.query_x), task.query_y), list(phi.values()))
        for acc, gi in zip(expected, g, strict=True):
            acc += gi / len(batch)
    assert rel_err(grads_of(fo(batch).loss, params.values()), expected) < 1e-10


def test_regression_meta_gradient_matches_loop():
    torch.manual_seed(0)
    maml = create_learner(
        "maml",
        backbone=create_backbone("mlp", in_features=1, hidden=[8, 8]),
        out_features=1,
        inner_lr=0.01,
        inner_steps=2,
    ).double()
    batch = regression_batch()
    out = maml(batch)
    assert out.logits.shape == (3, 4, 1) and out.accuracy is None
    params = dict(maml.named_parameters())
    ref = reference_meta_loss(backbone_head_fn(maml), params, batch, lr=lambda s, k: 0.01, steps=2)
    assert rel_err(grads_of(out.loss, params.values()), grads_of(ref, params.values())) < 1e-10


def test_regression_targets_must_match_the_head():
    maml = create_learner(
        "maml", backbone=create_backbone("mlp", in_features=1, hidden=[4]), n_way=3
    ).double()
    with pytest.raises(ValueError, match="out_features=1"):
        maml(regression_batch())


def test_eval_inner_steps_are_used_in_eval_mode_and_adapt():
    maml = make("maml", small_mlp(), inner_steps=1, eval_inner_steps=3)
    batch = vector_batch()
    params = dict(maml.named_parameters())
    fn = backbone_head_fn(maml)
    maml.eval()
    with torch.no_grad():
        out = maml(batch)
    ref = reference_meta_loss(fn, params, batch, lr=lambda s, k: LR, steps=3)
    assert torch.allclose(out.loss, ref, rtol=1e-10)
    task = batch[0]
    phi = adapt_one(
        fn, params, task.support_x, task.support_y, lr=lambda s, k: LR, steps=3, create_graph=False
    )
    expected = fn(phi, task.query_x)
    predictor = maml.adapt(task.support_x, task.support_y)
    assert torch.allclose(predictor.decision_function(task.query_x), expected, rtol=1e-10)


def test_adapt_needs_no_grad_leaves_parameters_alone_and_maps_labels_back():
    maml = make("maml", small_conv4(), inner_steps=2)
    before = {k: v.clone() for k, v in maml.state_dict().items()}
    task = image_batch(n_tasks=1)[0]
    labels = torch.tensor([7, 3, 11])
    with torch.no_grad():
        predictor = maml.adapt(task.support_x, labels[task.support_y])
        pred = predictor.predict(task.query_x)
        proba = predictor.predict_proba(task.query_x)
    assert set(pred.tolist()) <= {3, 7, 11}
    assert proba.shape == (6, 3) and torch.allclose(proba.sum(-1), torch.ones(6, dtype=proba.dtype))
    assert torch.equal(predictor.classes_, torch.tensor([3, 7, 11]))
    assert all(torch.equal(before[k], v) for k, v in maml.state_dict().items())
    assert all(p.grad is None for p in maml.parameters())


def test_adapt_with_fewer_classes_than_the_head_uses_the_first_outputs():
    maml = make("maml", small_mlp())
    task = vector_batch(n_tasks=1, n_way=2)[0]
    assert maml.adapt(task.support_x, task.support_y + 5).predict_proba(task.query_x).shape == (4, 2)
    with pytest.raises(ValueError, match="n_way >= 4"):
        maml.adapt(torch.randn(4, 4, dtype=torch.float64), torch.arange(4))


def test_eval_mode_keeps_batch_statistics():
    maml = make("maml", small_conv4())
    maml.eval()
    assert not maml.training
    assert all(m.training for m in maml.modules() if type(m).__name__ == "BatchNorm")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"inner_lr": 0.0}, "inner_lr"),
        ({"inner_lr": "fast"}, "inner_lr"),
        ({"inner_steps": 0}, "inner_steps"),
        ({"eval_inner_steps": -1}, "eval_inner_steps"),
        ({"task_chunk_size": 0}, "task_chunk_size"),
        ({"out_features": 1}, "exactly one of n_way"),
    ],
)
def test_bad_hyperparameters_fail_with_their_name(kwargs, match):
    with pytest.raises(ValueError, match=match):
        create_learner("maml", backbone=small_mlp(), n_way=3, **kwargs)


def test_fomaml_is_maml_first_order():
    assert create_learner("fomaml", backbone=small_mlp(), n_way=3).settings.first_order
    with pytest.raises(TypeError, match="first_order"):
        create_learner("fomaml", backbone=small_mlp(), n_way=3, first_order=False)
