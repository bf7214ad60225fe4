"""Every registered pipeline fits a small table with missing values and an imbalanced class."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score
from threadpoolctl import threadpool_limits

from metadl.automl.portfolio import create_pipeline, get_candidate, list_pipelines
from metadl.automl.tabular import AutoMLError

FAMILIES = {"random_forest", "svm", "logistic_regression", "knn", "gradient_boosting", "mlp"}


def test_portfolio_covers_the_six_families_with_several_settings():
    families = [get_candidate(n).family for n in list_pipelines()]
    assert set(families) == FAMILIES
    assert all(families.count(f) >= 2 for f in FAMILIES)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # the MLPs stop at 100 epochs
@pytest.mark.parametrize("name", list_pipelines())
def test_pipeline_learns_a_separable_table_with_missing_values(name):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(240, 4))
    y = (X[:, 0] > 0.8).astype(int)  # about 20% positives
    X[rng.random(X.shape) < 0.05] = np.nan
    X[:, 0] = np.where(np.isnan(X[:, 0]), 0.0, X[:, 0])  # the informative column stays complete
    with threadpool_limits(1):  # boosting's OpenMP threads crawl on a shared machine
        model = create_pipeline(name).fit(X[:160], y[:160])
    assert balanced_accuracy_score(y[160:], model.predict(X[160:])) > 0.6


def test_unknown_pipeline_names_the_choices():
    with pytest.raises(AutoMLError, match="unknown pipeline 'xgb'.*rf_100_sqrt"):
        create_pipeline("xgb")
