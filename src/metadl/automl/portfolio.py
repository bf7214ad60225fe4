"""The portfolio: the candidate pipelines algorithm selection chooses from, in one explicit registry.

Each entry is a family (random forest, SVM, logistic regression, kNN, gradient boosting, MLP) with one
hyperparameter setting; some settings weight the classes inversely to their frequency, which matters
for balanced accuracy on the many imbalanced keel datasets. Every pipeline imputes missing values by the median and standardises the
features first (trees do not need it, but it costs nothing and keeps one preprocessing for all), so a
pipeline takes the raw encoded table of :mod:`metadl.automl.tabular`, NaNs included.

Example:
    >>> "rf_500_sqrt" in list_pipelines(), create_pipeline("knn_5").steps[-1][1].n_neighbors
    (False, 5)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sklearn.base import ClassifierMixin
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from metadl.automl.tabular import AutoMLError

ParamValue = int | float | str | None


@dataclass(frozen=True)
class Candidate:
    """One pipeline of the portfolio: its family, its hyperparameters, and how to build the classifier."""

    name: str
    family: str
    params: dict[str, ParamValue]
    build: Callable[[dict[str, ParamValue]], ClassifierMixin]


def _rf(p: dict[str, ParamValue]) -> ClassifierMixin:
    return RandomForestClassifier(**p, random_state=0, n_jobs=1)


def _svm(p: dict[str, ParamValue]) -> ClassifierMixin:
    return SVC(**p, random_state=0)


def _logreg(p: dict[str, ParamValue]) -> ClassifierMixin:
    return LogisticRegression(**p, max_iter=500)


def _knn(p: dict[str, ParamValue]) -> ClassifierMixin:
    return KNeighborsClassifier(**p)


def _gb(p: dict[str, ParamValue]) -> ClassifierMixin:
    return HistGradientBoostingClassifier(**p, early_stopping=False, random_state=0)


def _mlp(p: dict[str, ParamValue]) -> ClassifierMixin:
    width, alpha = p["width"], p["alpha"]
    if not isinstance(width, int) or not isinstance(alpha, float):
        raise AutoMLError(f"mlp params need an int width and a float alpha, got {p}")
    # 100 epochs, no early stopping: its stratified validation split fails on classes of one example
    return MLPClassifier((width, width), alpha=alpha, max_iter=100, random_state=0)


_CANDIDATES = (
    Candidate("rf_100_sqrt", "random_forest", {"n_estimators": 100, "max_features": "sqrt"}, _rf),
    Candidate(
        "rf_100_balanced",
        "random_forest",
        {"n_estimators": 100, "min_samples_leaf": 3, "class_weight": "balanced_subsample"},
        _rf,
    ),
    Candidate("svm_rbf_c1", "svm", {"kernel": "rbf", "C": 1.0}, _svm),
    Candidate("svm_rbf_c100", "svm", {"kernel": "rbf", "C": 100.0}, _svm),
    Candidate("svm_rbf_c1_balanced", "svm", {"kernel": "rbf", "C": 1.0, "class_weight": "balanced"}, _svm),
    Candidate("logreg_c1", "logistic_regression", {"C": 1.0}, _logreg),
    Candidate("logreg_c1_balanced", "logistic_regression", {"C": 1.0, "class_weight": "balanced"}, _logreg),
    Candidate("knn_1", "knn", {"n_neighbors": 1}, _knn),
    Candidate("knn_5", "knn", {"n_neighbors": 5}, _knn),
    Candidate("knn_25_distance", "knn", {"n_neighbors": 25, "weights": "distance"}, _knn),
    Candidate("gb_100_lr0.1", "gradient_boosting", {"max_iter": 100, "learning_rate": 0.1}, _gb),
    Candidate(
        "gb_200_depth3", "gradient_boosting", {"max_iter": 200, "max_depth": 3, "learning_rate": 0.05}, _gb
    ),
    Candidate("mlp_32", "mlp", {"width": 32, "alpha": 1e-4}, _mlp),
    Candidate("mlp_64_alpha0.1", "mlp", {"width": 64, "alpha": 0.1}, _mlp),
)
_REGISTRY: dict[str, Candidate] = {c.name: c for c in _CANDIDATES}


def list_pipelines() -> list[str]:
    """The portfolio's pipeline names, in registry order (the column order of every score table)."""
    return list(_REGISTRY)


def get_candidate(name: str) -> Candidate:
    """The registry entry ``name``."""
    if name not in _REGISTRY:
        raise AutoMLError(f"unknown pipeline {name!r}; choose one of {list_pipelines()}")
    return _REGISTRY[name]


def create_pipeline(name: str) -> Pipeline:
    """A fresh, unfitted scikit-learn pipeline: median imputation, standardisation, the classifier."""
    candidate = get_candidate(name)
    return Pipeline(
        [
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("scale", StandardScaler()),
            ("model", candidate.build(dict(candidate.params))),
        ]
    )
