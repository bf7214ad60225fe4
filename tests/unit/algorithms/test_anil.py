"""ANIL: only the head adapts; the body is shared by all tasks and meta-learned through the features."""

from __future__ import annotations

import pytest
import torch
from maml_reference import (
    backbone_head_fn,
    grads_of,
    image_batch,
    one_thread,  # noqa: F401 (autouse fixture)
    reference_meta_loss,
    rel_err,
    small_conv4,
    small_mlp,
    vector_batch,
)

from metadl.algorithms import create_learner


def anil(backbone, **kw):
    torch.manual_seed(0)
    return create_learner("anil", backbone=backbone, n_way=3, inner_lr=0.4, **kw).double()


@pytest.mark.parametrize("vectorize", [True, False])
@pytest.mark.parametrize(
    ("make_backbone", "make_batch"), [(small_conv4, image_batch), (small_mlp, vector_batch)]
)
def test_meta_gradient_matches_loop_where_only_the_head_adapts(make_backbone, make_batch, vectorize):
    learner = anil(make_backbone(), inner_steps=3, vectorize=vectorize)
    batch = make_batch()
    params = dict(learner.named_parameters())
    ref = reference_meta_loss(
        backbone_head_fn(learner),
        params,
        batch,
        lr=lambda s, k: 0.4,
        steps=3,
        keys=["head.weight", "head.bias"],
    )
    got = grads_of(learner(batch).loss, params.values())
    assert rel_err(got, grads_of(ref, params.values())) < 1e-10
    assert all(g.abs().sum() > 0 for g in got)  # the body is meta-learned too


def test_inner_loop_leaves_the_body_unchanged():
    learner = anil(small_conv4(), inner_steps=2)
    batch = image_batch()
    phi = learner.adapt_params(batch.support_x, batch.support_y, 2)
    assert sorted(phi) == ["head.bias", "head.weight"] and phi["head.weight"].shape[0] == len(batch)
    # Query logits = adapted head on features from the unchanged body.
    with torch.no_grad():
        features = torch.stack([learner.backbone(x) for x in batch.query_x])
        expected = features @ phi["head.weight"].transpose(1, 2) + phi["head.bias"][:, None]
        assert torch.allclose(learner(batch).logits, expected, rtol=1e-10)


def test_non_transductive_features_use_the_support_set():
    learner = anil(small_mlp(), transductive=False)
    task = vector_batch(n_tasks=1)[0]
    predictor = learner.adapt(task.support_x, task.support_y)
    with torch.no_grad():
        one = predictor.decision_function(task.query_x[:1])
        many = predictor.decision_function(task.query_x)
    assert torch.allclose(one[0], many[0], rtol=1e-12)  # a query's score ignores the other queries
