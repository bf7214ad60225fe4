"""Golden run: fixed-seed meta-training losses of every registered learner, recorded before the
learner-protocol refactor (one training path: ``forward(batch).loss.backward()`` then the optimizer step)
and required to stay bit-identical.

Reptile is in the table too: its update now reaches the parameters through the loss (a surrogate whose
gradient is ``theta - mean_t phi_t`` and whose value is the query loss), and since that gradient is the
same tensor the old side path wrote into ``.grad``, its losses are unchanged as well.

Regenerate only on purpose: ``python tests/unit/training/test_golden_run.py --write``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from metadl.algorithms import create_learner, list_learners
from metadl.models import create_backbone
from metadl.tasks.task import TaskBatch
from metadl.training.meta import meta_step

GOLDEN = Path(__file__).with_name("golden_losses.json")
STEPS, N_WAY, K_SHOT, N_QUERY, N_TASKS, FEATURES = 4, 3, 2, 3, 2, 5
NOT_TRAINED = {"randomforest"}  # fitted by scikit-learn, no gradient: nothing to meta-train


def batch(step: int) -> TaskBatch:
    g = torch.Generator().manual_seed(100 + step)
    centres = 2 * torch.randn(N_TASKS, N_WAY, 1, FEATURES, generator=g)
    sx = (centres + 0.5 * torch.randn(N_TASKS, N_WAY, K_SHOT, FEATURES, generator=g)).flatten(1, 2)
    qx = (centres + 0.5 * torch.randn(N_TASKS, N_WAY, N_QUERY, FEATURES, generator=g)).flatten(1, 2)
    sy = torch.arange(N_WAY).repeat_interleave(K_SHOT).expand(N_TASKS, -1)
    qy = torch.arange(N_WAY).repeat_interleave(N_QUERY).expand(N_TASKS, -1)
    return TaskBatch(sx, sy, qx, qy)


def losses(name: str) -> list[str]:
    """The meta-loss of each of ``STEPS`` Adam steps, as exact hex floats."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        backbone = create_backbone("mlp", in_features=FEATURES, hidden=[16, 8], batch_norm=True)
        learner = create_learner(name, backbone=backbone, n_way=N_WAY)
        optimizer = torch.optim.Adam(learner.parameters(), lr=1e-2)
        return [meta_step(learner, batch(s), optimizer).loss.item().hex() for s in range(STEPS)]
    finally:
        torch.set_num_threads(threads)


TRAINED = [n for n in list_learners() if n not in NOT_TRAINED]


@pytest.mark.parametrize("name", TRAINED)
def test_losses_match_the_recorded_golden_run(name: str) -> None:
    golden = json.loads(GOLDEN.read_text())
    assert name in golden, f"no golden losses for {name!r}: record them with {__file__} --write"
    assert losses(name) == golden[name]


def test_the_losses_change_over_the_steps() -> None:
    """The run trains something: otherwise matching the golden numbers would prove nothing."""
    golden = json.loads(GOLDEN.read_text())
    assert all(len(set(v)) > 1 for v in golden.values())


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    GOLDEN.write_text(json.dumps({n: losses(n) for n in TRAINED}, indent=1) + "\n")
