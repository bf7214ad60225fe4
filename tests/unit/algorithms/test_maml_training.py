"""Every gradient-based learner lowers the post-adaptation query loss after a short meta-training run.

Two tiny problems: MAML's sinusoid regression (MLP 1-40-40-1) and 3-way 2-shot classification of
Gaussian blobs with a batch-norm MLP (labels are shuffled per episode, so only a learned ability to
adapt helps). The loss is measured on a fixed set of 32 held-out tasks, in eval mode.
"""

from __future__ import annotations

import pytest
import torch
from maml_reference import (
    clusters_sampler,
    one_thread,  # noqa: F401 (autouse fixture)
)

from metadl.algorithms import create_learner
from metadl.models import create_backbone
from metadl.tasks.samplers import SinusoidSampler
from metadl.training.meta import meta_step

ITERATIONS = 150
SETTINGS = {  # learner -> (inner_lr sinusoid, inner_lr blobs, inner_steps)
    "maml": (0.01, 0.4, 1),
    "fomaml": (0.01, 0.4, 1),
    "metasgd": (0.01, 0.4, 1),
    "anil": (0.01, 0.4, 1),
    "reptile": (0.01, 0.1, 5),
}


def held_out_loss(learner, batch) -> float:
    learner.eval()
    with torch.no_grad():
        loss = learner(batch).loss.item()
    learner.train()
    return loss


@pytest.mark.parametrize("problem", ["sinusoid", "blobs"])
@pytest.mark.parametrize("name", list(SETTINGS))
def test_meta_training_lowers_the_query_loss(name, problem):
    torch.manual_seed(0)
    lr_sin, lr_blobs, steps = SETTINGS[name]
    if problem == "sinusoid":
        sampler, held_out = (
            SinusoidSampler(k_shot=10, n_query=10, seed=0),
            SinusoidSampler(k_shot=10, n_query=10, seed=1),
        )
        backbone = create_backbone("mlp", in_features=1, hidden=[40, 40])
        learner = create_learner(name, backbone=backbone, out_features=1, inner_lr=lr_sin, inner_steps=steps)
        target = 0.85
    else:
        sampler, held_out = clusters_sampler(seed=0), clusters_sampler(seed=1)
        backbone = create_backbone("mlp", in_features=8, hidden=[32], batch_norm=True)
        learner = create_learner(name, backbone=backbone, n_way=3, inner_lr=lr_blobs, inner_steps=steps)
        target = 0.5
    # Reptile's update is theta + eps * mean(phi - theta): SGD with eps = 1 (the paper's initial meta step).
    optimizer = (torch.optim.SGD(learner.parameters(), lr=1.0) if name == "reptile"
                 else torch.optim.Adam(learner.parameters(), lr=3e-3))  # fmt: skip
    eval_batch = held_out.sample_batch(32)
    before = held_out_loss(learner, eval_batch)
    for _ in range(ITERATIONS):
        meta_step(learner, sampler.sample_batch(8), optimizer)
    after = held_out_loss(learner, eval_batch)
    assert after < target * before, f"{name} on {problem}: held-out query loss {before:.3f} -> {after:.3f}"
