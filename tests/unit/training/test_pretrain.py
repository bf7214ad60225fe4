"""Pre-train then meta-train, and the frozen-feature baselines (SimpleShot nearest centroid, LR)."""

from __future__ import annotations

import pytest
import torch

from metadl.data.base import FewShotDataset
from metadl.models import create_backbone
from metadl.tasks.samplers import EpisodeSampler
from metadl.training.pretrain import FrozenFeatures, frozen_baseline, mean_feature, pretrain_then_meta_train


def _blobs(n_classes: int, seed: int) -> FewShotDataset:
    """Class blobs in 4 informative dims hidden among 16 noisy ones (as tests/unit/algorithms)."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n_classes, 4, generator=g)
    informative = means.repeat_interleave(20, 0) + 0.3 * torch.randn(n_classes * 20, 4, generator=g)
    x = torch.cat([informative, 3.0 * torch.randn(n_classes * 20, 16, generator=g)], 1)
    return FewShotDataset(
        x, torch.arange(n_classes).repeat_interleave(20), [f"c{i}" for i in range(n_classes)]
    )


def _backbone():
    torch.manual_seed(0)
    return create_backbone("mlp", in_features=20, hidden=[32, 32], batch_norm=True)


def _accuracy(learner: torch.nn.Module) -> float:
    batch = EpisodeSampler(_blobs(32, seed=1), n_way=5, k_shot=3, n_query=5, seed=7).sample_batch(32)
    learner.eval()
    with torch.no_grad():
        return float(learner(batch).accuracy)


def test_frozen_features_are_centred_normalised_and_stay_frozen() -> None:
    bb = _backbone()
    data = _blobs(4, seed=3)
    mean = mean_feature(bb, data)
    bb.eval()
    torch.testing.assert_close(mean, bb(data.data).mean(0))
    frozen = FrozenFeatures(bb, mean=mean).train()
    assert not bb.training and not any(p.requires_grad for p in bb.parameters())
    z = frozen(data.data[:8])
    torch.testing.assert_close(z, torch.nn.functional.normalize(bb(data.data[:8]) - mean, dim=1))
    assert "mean" in frozen.state_dict()
    with pytest.raises(ValueError, match="one per feature"):
        FrozenFeatures(_backbone(), mean=torch.zeros(3))


def test_pretrained_features_beat_random_ones_and_meta_training_continues_from_them() -> None:
    train = _blobs(64, seed=0)
    untrained = _accuracy(frozen_baseline(_backbone(), train, n_way=5))
    res = pretrain_then_meta_train(
        "protonet",
        _backbone(),
        train,
        n_way=5,
        k_shot=3,
        n_query=5,
        pretrain_epochs=20,
        pretrain_lr=1e-2,
        batch_size=64,
        meta_iterations=20,
        meta_batch=4,
        meta_lr=1e-3,
    )
    assert res.supervised.history[-1]["train_acc"] > res.supervised.history[0]["train_acc"]
    assert len(res.meta_history) == 20
    meta_trained = _accuracy(res.learner)
    # SimpleShot on the meta-trained backbone's features, and the logistic-regression baseline.
    centroid = _accuracy(frozen_baseline(res.learner.backbone, train, n_way=5))
    logreg = _accuracy(frozen_baseline(res.learner.backbone, train, n_way=5, head="logreg", C=10.0))
    assert min(meta_trained, centroid, logreg) > untrained + 0.4, (untrained, meta_trained, centroid, logreg)


def test_learners_that_cannot_be_meta_trained_stop_after_pre_training() -> None:
    res = pretrain_then_meta_train(
        "randomforest",
        _backbone(),
        _blobs(8, seed=0),
        n_way=3,
        k_shot=1,
        n_query=1,
        pretrain_epochs=1,
        learner_kwargs={"n_estimators": 5},
    )
    assert res.meta_history == [] and res.learner.capabilities.meta_trainable is False


def test_unknown_baseline_head_names_the_choices() -> None:
    with pytest.raises(ValueError, match="centroid"):
        frozen_baseline(_backbone(), _blobs(4, seed=0), n_way=3, head="svm")
