"""The shared inner loop: batch norm per task (transductive or not), task chunking, torch batch norm, no side effects."""

from __future__ import annotations

import pytest
import torch
from maml_reference import (
    adapt_one,
    backbone_head_fn,
    grads_of,
    image_batch,
    one_thread,  # noqa: F401 (autouse fixture)
    rel_err,
    small_conv4,
    small_mlp,
    vector_batch,
)
from torch import nn

from metadl.algorithms import convert_batch_norm, create_learner
from metadl.algorithms.inner_loop import inner_adapt, map_tasks, module_fn
from metadl.models import create_backbone
from metadl.tasks.task import TaskBatch

LR = 0.4


def maml(backbone, **kw):
    torch.manual_seed(0)
    return create_learner("maml", backbone=backbone, n_way=3, inner_lr=LR, **kw).double()


@pytest.mark.parametrize("vectorize", [True, False])
def test_tasks_never_share_batch_statistics(vectorize):
    learner = maml(small_conv4(), inner_steps=2, vectorize=vectorize)
    batch = image_batch()
    other = TaskBatch(batch.support_x.clone(), batch.support_y, batch.query_x.clone(), batch.query_y)
    other.support_x[1:] *= 3.0  # change every task but the first
    other.query_x[1:] += 1.0
    with torch.no_grad():
        a, b = learner(batch).logits, learner(other).logits
    assert torch.allclose(a[0], b[0], rtol=1e-12, atol=1e-12)
    assert not torch.allclose(a[1], b[1])


@pytest.mark.parametrize("vectorize", [True, False])
def test_non_transductive_normalises_each_query_with_the_support_set(vectorize):
    trans = maml(small_conv4(), inner_steps=2, vectorize=vectorize)
    induct = maml(small_conv4(), inner_steps=2, vectorize=vectorize, transductive=False)
    induct.load_state_dict(trans.state_dict())
    batch = image_batch()
    fn, params = backbone_head_fn(induct), dict(induct.named_parameters())
    with torch.no_grad():
        logits = induct(batch).logits
    # Reference: adapt on the support set, then each query example in its own batch with the support set.
    for t, task in enumerate(batch):
        phi = adapt_one(
            fn, params, task.support_x, task.support_y, lr=lambda s, k: LR, steps=2, create_graph=False
        )
        for i, q in enumerate(task.query_x):
            expected = fn(phi, torch.cat([task.support_x, q[None]]))[-1]
            assert torch.allclose(logits[t, i], expected, rtol=1e-10, atol=1e-12)
    # One query's prediction does not depend on the other queries; transductive ones do.
    moved = TaskBatch(batch.support_x, batch.support_y, batch.query_x.clone(), batch.query_y)
    moved.query_x[:, 1:] *= -2.0
    with torch.no_grad():
        assert torch.allclose(induct(moved).logits[:, 0], logits[:, 0], rtol=1e-12)
        assert not torch.allclose(trans(moved).logits[:, 0], trans(batch).logits[:, 0])


def test_non_transductive_meta_gradient_matches_loop():
    vec = maml(small_mlp(), inner_steps=2, transductive=False)
    loop = maml(small_mlp(), inner_steps=2, transductive=False, vectorize=False)
    loop.load_state_dict(vec.state_dict())
    batch = vector_batch()
    assert (
        rel_err(grads_of(vec(batch).loss, vec.parameters()), grads_of(loop(batch).loss, loop.parameters()))
        < 1e-10
    )


def test_transductive_flag_is_moot_without_batch_norm():
    assert maml(small_mlp(batch_norm=False), transductive=False).settings.transductive


@pytest.mark.parametrize("name", ["maml", "metasgd", "anil"])
def test_task_chunks_give_the_same_loss_logits_and_gradient(name):
    torch.manual_seed(0)
    whole = create_learner(name, backbone=small_mlp(), n_way=3, inner_steps=2).double()
    torch.manual_seed(0)
    chunked = create_learner(name, backbone=small_mlp(), n_way=3, inner_steps=2, task_chunk_size=2).double()
    batch = vector_batch(n_tasks=5)
    a, b = whole(batch), chunked(batch)
    assert torch.allclose(a.loss, b.loss, rtol=1e-12) and torch.allclose(a.logits, b.logits, rtol=1e-12)
    (2.0 * b.loss).backward()  # the precomputed gradient scales with the upstream gradient
    expected = grads_of(2.0 * a.loss, whole.parameters())
    assert rel_err([p.grad for p in chunked.parameters()], expected) < 1e-12
    with torch.no_grad():
        assert torch.allclose(chunked(batch).loss, a.loss, rtol=1e-12)


def test_map_tasks_loop_and_vmap_agree_and_shared_parameters_broadcast():
    net = nn.Linear(3, 2).double()
    fn, theta = module_fn(net), dict(net.named_parameters())
    x = torch.randn(4, 5, 3, dtype=torch.float64)
    per_task = {
        k: v.expand(4, *v.shape) * torch.arange(1.0, 5.0, dtype=v.dtype).view(4, *[1] * v.dim())
        for k, v in theta.items()
    }
    for shared, params in ((True, theta), (False, per_task)):
        a = map_tasks(fn, params, x, vectorize=True, shared=shared)
        b = map_tasks(fn, params, x, vectorize=False, shared=shared)
        assert a.shape == (4, 5, 2) and torch.allclose(a, b)


def test_inner_adapt_under_no_grad_still_adapts_and_returns_detached():
    net = nn.Linear(2, 1).double()
    x, y = torch.randn(2, 6, 2, dtype=torch.float64), torch.randn(2, 6, 1, dtype=torch.float64)
    kw = {"lrs": [0.1], "steps": 2, "first_order": False, "vectorize": True}
    with torch.no_grad():
        phi = inner_adapt(module_fn(net), dict(net.named_parameters()), x, y, **kw)
    assert not phi["weight"].requires_grad
    ref = inner_adapt(module_fn(net), dict(net.named_parameters()), x, y, **kw)
    assert torch.allclose(phi["weight"], ref["weight"]) and not torch.allclose(phi["weight"][0], net.weight)


def test_per_step_learning_rates_are_indexed_by_step_and_the_last_repeats():
    net = nn.Linear(2, 1, bias=False).double()
    x, y = torch.randn(1, 6, 2, dtype=torch.float64), torch.randn(1, 6, 1, dtype=torch.float64)
    fn, theta = module_fn(net), dict(net.named_parameters())
    got = inner_adapt(fn, theta, x, y, lrs=[0.1, 0.05], steps=3, first_order=True, vectorize=False)
    ref = adapt_one(fn, theta, x[0], y[0], lr=lambda s, k: [0.1, 0.05, 0.05][s], steps=3, create_graph=False)
    assert torch.allclose(got["weight"][0], ref["weight"])


def test_torch_batch_norm_is_refused_with_the_fix_in_the_message():
    bad = create_backbone("conv4", in_channels=1, hidden=4, image_size=16)
    bad.encoder[0][1] = nn.BatchNorm2d(4)
    with pytest.raises(ValueError, match=r"encoder\.0\.1.*BatchNorm2d.*convert_batch_norm"):
        create_learner("maml", backbone=bad, n_way=3)


def test_convert_batch_norm_copies_parameters_and_gives_exact_gradients():
    bad = small_conv4()
    bad.encoder[1][1] = nn.BatchNorm2d(4)
    with torch.no_grad():
        bad.encoder[1][1].weight.uniform_(0.5, 1.5)
        bad.encoder[1][1].bias.uniform_(-0.5, 0.5)
    fixed = convert_batch_norm(bad)
    assert isinstance(bad.encoder[1][1], nn.BatchNorm2d)  # the original is untouched
    x = torch.randn(6, 1, 16, 16)
    assert torch.allclose(fixed(x), bad.train()(x), atol=1e-5)
    learner = maml(fixed, inner_steps=2)
    loop = maml(convert_batch_norm(bad), inner_steps=2, vectorize=False)
    loop.load_state_dict(learner.state_dict())
    batch = image_batch()
    assert (
        rel_err(
            grads_of(learner(batch).loss, learner.parameters()), grads_of(loop(batch).loss, loop.parameters())
        )
        < 1e-10
    )


def test_forward_leaves_buffers_and_parameters_unchanged():
    for vectorize in (True, False):
        learner = maml(small_conv4(), vectorize=vectorize)
        before = {k: v.clone() for k, v in learner.state_dict().items()}
        learner(image_batch())
        assert all(torch.equal(before[k], v) for k, v in learner.state_dict().items())
