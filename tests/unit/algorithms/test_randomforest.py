"""Random-forest head: scikit-learn's forest per task, evaluation only, arbitrary labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fewshot_blobs import backbone, blobs, one_thread  # noqa: F401 (fixture)
from sklearn.ensemble import RandomForestClassifier

from metadl.algorithms import create_learner
from metadl.tasks.samplers import EpisodeSampler

pytestmark = pytest.mark.usefixtures("one_thread")


def _learner():
    return create_learner("randomforest", backbone=backbone(), n_way=5, n_estimators=15, seed=3)


def test_logits_are_log_probabilities_of_a_forest_fitted_per_task() -> None:
    rf = _learner()
    batch = EpisodeSampler(
        blobs(10, 10, seed=0, noise=0.1), n_way=5, k_shot=3, n_query=2, seed=0
    ).sample_batch(2)
    out = rf(batch)
    with torch.no_grad():
        for t in range(2):
            forest = RandomForestClassifier(n_estimators=15, random_state=3, max_features="sqrt")
            forest.fit(rf.backbone(batch.support_x[t]).double().numpy(), batch.support_y[t].numpy())
            expected = forest.predict_proba(rf.backbone(batch.query_x[t]).double().numpy())
            np.testing.assert_allclose(out.logits[t].exp().numpy(), expected, atol=1e-6)
    assert float(out.accuracy) > 0.6  # low-noise blobs: well above chance (0.2)


def test_is_not_meta_trainable_and_says_so_on_backward() -> None:
    rf = _learner()
    assert rf.capabilities.meta_trainable is False
    batch = EpisodeSampler(blobs(10, 10, seed=0), n_way=5, k_shot=1, n_query=1, seed=0).sample_batch(1)
    out = rf(batch)
    with pytest.raises(RuntimeError, match="no gradient"):
        out.loss.backward()
    with torch.no_grad():
        assert not rf(batch).loss.requires_grad


def test_adapt_predicts_arbitrary_labels() -> None:
    rf = _learner()
    x = blobs(3, 4, seed=2, noise=0.1).data
    labels = torch.tensor([9, -4, 7]).repeat_interleave(4)
    predictor = rf.adapt(x, labels)
    assert predictor.classes_.tolist() == [-4, 7, 9]
    assert predictor.predict(x).tolist() == labels.tolist()  # a forest fits its training set
