"""CNP and ANP: the Gaussian likelihood by hand, variance plumbing, invariances, and learning sinusoids."""

from __future__ import annotations

import math

import pytest
import torch
from fewshot_blobs import one_thread  # noqa: F401 (fixture)

from metadl.algorithms import create_learner, gaussian_nll
from metadl.algorithms.neural_process import ANP, CNP
from metadl.models import create_backbone
from metadl.tasks import SinusoidSampler
from metadl.tasks.task import TaskBatch

pytestmark = pytest.mark.usefixtures("one_thread")
NAMES = ["cnp", "anp"]


def _np(name: str, **kw: object) -> CNP | ANP:
    torch.manual_seed(0)
    backbone = create_backbone("mlp", in_features=1, hidden=[32])
    extra = {"heads": 4} if name == "anp" else {}
    return create_learner(name, backbone=backbone, hidden=32, **(extra | kw))  # type: ignore[return-value]


def _batch(seed: int = 0, t: int = 4) -> TaskBatch:
    return SinusoidSampler(k_shot=10, n_query=10, seed=seed).sample_batch(t)


def test_gaussian_nll_matches_the_density_written_out():
    mean, var, y = (
        torch.tensor([0.0, 1.0, -2.0]),
        torch.tensor([1.0, 0.25, 4.0]),
        torch.tensor([0.5, 1.0, 1.0]),
    )
    by_hand = [
        -math.log(math.exp(-((b - m) ** 2) / (2 * v)) / math.sqrt(2 * math.pi * v))
        for m, v, b in zip(mean.tolist(), var.tolist(), y.tolist(), strict=True)
    ]
    assert gaussian_nll(mean, var, y).item() == pytest.approx(sum(by_hand) / 3, rel=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_eval_loss_is_the_nll_of_the_predicted_mean_and_variance(name):
    net = _np(name, out_features=1).eval()
    batch = _batch()
    with torch.no_grad():
        out = net(batch)
    assert out.variance is not None and out.variance.shape == out.logits.shape == (4, 10, 1)
    m, v, y = out.logits.double(), out.variance.double(), batch.query_y.double()
    by_hand = (0.5 * torch.log(2 * math.pi * v) + (y - m) ** 2 / (2 * v)).mean()
    assert out.loss.item() == pytest.approx(by_hand.item(), rel=1e-5)
    assert (out.variance >= net.min_std**2).all()


@pytest.mark.parametrize("name", NAMES)
def test_adapted_predictor_gives_mean_and_variance_of_the_batched_forward(name):
    net = _np(name, out_features=1).eval()
    batch = _batch(seed=3, t=1)
    with torch.no_grad():
        out = net(batch)
        predictor = net.adapt(batch.support_x[0], batch.support_y[0])
        assert predictor.has_variance
        torch.testing.assert_close(predictor.predict(batch.query_x[0]), out.logits[0])
        torch.testing.assert_close(predictor.predict_variance(batch.query_x[0]), out.variance[0])


def test_learners_without_uncertainty_refuse_predict_variance():
    maml = create_learner("maml", backbone=create_backbone("mlp", in_features=1, hidden=[8]), out_features=1)
    batch = _batch(t=1)
    predictor = maml.adapt(batch.support_x[0], batch.support_y[0])
    assert not predictor.has_variance and not maml.capabilities.uncertainty
    with pytest.raises(ValueError, match="Capabilities\\(uncertainty=True\\)"):
        predictor.predict_variance(batch.query_x[0])


@pytest.mark.parametrize("name", NAMES)
def test_predictions_do_not_depend_on_the_order_of_the_support_set(name):
    net = _np(name, out_features=1).eval()
    batch = _batch(t=2)
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(1))
    shuffled = TaskBatch(batch.support_x[:, perm], batch.support_y[:, perm], batch.query_x, batch.query_y)
    with torch.no_grad():
        torch.testing.assert_close(net(batch).logits, net(shuffled).logits)


@pytest.mark.parametrize("name", NAMES)
def test_class_scores_depend_only_on_that_class_support(name):
    """Moving an example of class 1 changes no query's score for class 0 (per-class aggregation)."""
    torch.manual_seed(0)
    net = create_learner(name, backbone=create_backbone("mlp", in_features=3, hidden=[16]), n_way=2, hidden=16,
                         **({"heads": 2} if name == "anp" else {})).eval()  # fmt: skip
    g = torch.Generator().manual_seed(0)
    sx, qx = torch.randn(1, 6, 3, generator=g), torch.randn(1, 4, 3, generator=g)
    sy = torch.tensor([[0, 0, 0, 1, 1, 1]])
    moved = sx.clone()
    moved[0, 4] += 5.0
    with torch.no_grad():
        a = net(TaskBatch(sx, sy, qx, torch.zeros(1, 4, dtype=torch.long))).logits
        b = net(TaskBatch(moved, sy, qx, torch.zeros(1, 4, dtype=torch.long))).logits
    torch.testing.assert_close(a[..., 0], b[..., 0])
    assert not torch.allclose(a[..., 1], b[..., 1])


@pytest.mark.parametrize("name", NAMES)
def test_meta_training_on_sinusoids_lowers_the_held_out_nll_and_mse(name):
    net = _np(name, out_features=1)
    held_out = _batch(seed=99, t=32)
    net.eval()
    with torch.no_grad():
        before = net(held_out)
    net.train()
    sampler = SinusoidSampler(k_shot=10, n_query=10, seed=0)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(300):
        opt.zero_grad()
        net(sampler.sample_batch(16)).loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        after = net(held_out)
    assert after.loss < before.loss - 2.0  # measured: about 5.5 -> 1.8 for both
    assert after.per_task_metric.mean() < 0.85 * before.per_task_metric.mean()  # the CNP learns slowest


def test_anp_training_loss_adds_a_non_negative_kl_and_eval_is_deterministic():
    net = _np("anp", out_features=1)
    batch = _batch()
    out = net.train()(batch)
    assert out.variance is not None
    assert out.loss.item() >= gaussian_nll(out.logits, out.variance, batch.query_y).item() - 1e-6
    net.eval()
    with torch.no_grad():
        torch.testing.assert_close(net(batch).logits, net(batch).logits)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_way": 3, "out_features": 1}, "exactly one of n_way"),
        ({"out_features": 1, "min_std": 0.0}, "min_std must lie in"),
        ({"out_features": 1, "hidden": 30, "heads": 4}, "multiple of heads"),
    ],
)
def test_bad_arguments_fail_with_the_fix(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ANP(backbone=create_backbone("mlp", in_features=1, hidden=[8]), **kwargs)


def test_targets_of_the_wrong_kind_or_width_are_refused():
    net = _np("cnp", out_features=2)
    with pytest.raises(ValueError, match="out_features=1"):
        net(_batch())
    with pytest.raises(ValueError, match="created for regression"):
        net.adapt(torch.randn(4, 1), torch.tensor([0, 0, 1, 1]))
