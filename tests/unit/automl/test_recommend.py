"""recommend(): ranked pipelines with predicted and CV scores and a reason, from a small ground truth."""

from __future__ import annotations

import json

import numpy as np
import pytest

from metadl.automl import recommend as rec
from metadl.automl.collection import generated_datasets
from metadl.automl.groundtruth import CVSettings, build_ground_truth, metafeatures_cell
from metadl.automl.tabular import AutoMLError, EncodedTable

SETTINGS = CVSettings(folds=3, repeats=1, max_rows=150)
PIPELINES = ["knn_5", "logreg_c1", "svm_rbf_c1"]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    entries = list(generated_datasets(seed=0))[:8]
    root = tmp_path_factory.mktemp("gt")
    return entries, root, build_ground_truth(entries, root, settings=SETTINGS, pipelines=PIPELINES)


def test_recommendations_are_ranked_with_scores_and_reasons(small):
    entries, root, gt = small
    table = EncodedTable(entries[3].dataset, ("x",), 0)
    recs = rec.recommend(table, gt, top=3, cv_folds=3)
    assert sorted(r.pipeline for r in recs) == sorted(PIPELINES)
    assert [r.predicted_score for r in recs] == sorted((r.predicted_score for r in recs), reverse=True)
    assert all(r.cv_score is not None and 0.0 <= r.cv_score <= 1.0 for r in recs)
    assert recs[0].why.nearest_datasets[0] == entries[3].name  # its own copy is the nearest dataset
    assert len(recs[0].why.important_metafeatures) == 3
    payload = json.loads(json.dumps([r.as_json() for r in recs]))
    assert set(payload[0]) == {"pipeline", "params", "predicted_score", "cv_score", "why"}


def test_metafeatures_match_the_ground_truth_path(small, monkeypatch):
    entries, root, gt = small
    seen = []
    real = rec.compute_metafeatures

    def spy(*args, **kwargs):
        seen.append(real(*args, **kwargs).values)
        return real(*args, **kwargs)

    monkeypatch.setattr(rec, "compute_metafeatures", spy)
    rec.recommend(EncodedTable(entries[0].dataset, ("x",), 0), gt, top=1)
    np.testing.assert_allclose(seen[0], metafeatures_cell(entries[0], SETTINGS, root).values)


def test_without_cv_there_is_no_cv_score_and_bad_arguments_fail(small):
    entries, _, gt = small
    table = EncodedTable(entries[0].dataset, ("x",), 0)
    assert "cv_score" not in rec.recommend(table, gt, top=1)[0].as_json()
    with pytest.raises(AutoMLError, match="top=9"):
        rec.recommend(table, gt, top=9)
    with pytest.raises(AutoMLError, match="cv=1"):
        rec.recommend(table, gt, top=1, cv_folds=1)
