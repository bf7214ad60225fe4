"""Meta-features: a fixed-length description of a classification dataset, for algorithm selection.

Five standard groups (Rivolli et al., "Meta-features for meta-learning", 2022), all computed here with
numpy/scipy/scikit-learn so that the datasets the recommender learns from and the dataset a user brings
go through exactly the same code (and the default install needs no extra package; ``pymfe`` is used
in the tests as a reference for the values both define the same way):

- **simple**: log rows, log features, classes, log rows per feature, categorical columns, share of
  missing cells, minority/majority class ratio;
- **statistical**: mean absolute Pearson correlation between features, mean skewness, mean kurtosis,
  share of principal components needed for 95% of the variance;
- **information-theoretic** (features cut into ``BINS`` equal-width bins, entropies in bits): normalised
  class entropy, mean feature entropy, mean mutual information with the class, equivalent number of
  attributes ``H(C) / mean MI``, noise-to-signal ``(mean H(X) - mean MI) / mean MI``;
- **model-based** (a fully grown decision tree): leaves per row, depth / log2(rows), largest feature
  importance;
- **landmarkers**: 3-fold balanced accuracy of cheap learners (1-nearest neighbour, a decision stump,
  Gaussian naive Bayes, shrinkage LDA).

Rows beyond ``max_rows`` are subsampled (seeded, stratified) for everything but the row count;
missing values are imputed by the column median; constant columns are left out of the statistics.

Example:
    >>> X = np.array([[0.0, 1.0], [0.0, 2.0], [1.0, 3.0], [1.0, 4.0]] * 3)
    >>> y = np.array([0, 0, 1, 1] * 3)
    >>> mf = compute_metafeatures(X, y)
    >>> mf["n_classes"], mf["class_entropy"], mf["lm_stump"]
    (2.0, 1.0, 1.0)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats
from sklearn.base import ClassifierMixin
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.tree import DecisionTreeClassifier
from threadpoolctl import threadpool_limits

from metadl.automl.tabular import subsample

BINS = 10
MAX_ROWS = 500
RATIO_CAP = 100.0  # enat and noise-to-signal explode when the mutual information is ~0
GROUPS: dict[str, tuple[str, ...]] = {
    "simple": (
        "log_rows",
        "log_features",
        "n_classes",
        "log_rows_per_feature",
        "log1p_categorical",
        "frac_missing",
        "minority_ratio",
    ),
    "statistical": ("mean_abs_corr", "mean_skew", "mean_kurtosis", "pca_95"),
    "info_theory": ("class_entropy", "mean_attr_entropy", "mean_mutual_info", "enat", "noise_signal"),
    "model_based": ("tree_leaves_per_row", "tree_depth", "tree_max_importance"),
    "landmarkers": ("lm_1nn", "lm_stump", "lm_naive_bayes", "lm_lda"),
}
NAMES: tuple[str, ...] = tuple(name for names in GROUPS.values() for name in names)
LANDMARKERS: dict[str, Callable[[], ClassifierMixin]] = {
    "lm_1nn": lambda: KNeighborsClassifier(n_neighbors=1),
    "lm_stump": lambda: DecisionTreeClassifier(max_depth=1, random_state=0),
    "lm_naive_bayes": GaussianNB,
    "lm_lda": lambda: LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto"),
}


@dataclass(frozen=True)
class MetaFeatures:
    """Named meta-feature values in the order of :data:`NAMES` (``values`` ``(len(NAMES),)``, all finite)."""

    values: np.ndarray

    def __getitem__(self, name: str) -> float:
        return float(self.values[NAMES.index(name)])

    def as_dict(self) -> dict[str, float]:
        return {n: float(v) for n, v in zip(NAMES, self.values, strict=True)}


def entropy(labels: np.ndarray) -> float:
    """Shannon entropy in bits of a discrete sample.

    Example:
        >>> entropy(np.array([0, 0, 1, 1])), entropy(np.array([3, 3, 3]))
        (1.0, 0.0)
    """
    _, counts = np.unique(labels, return_counts=True)
    p = counts / counts.sum()
    return max(0.0, float(-(p * np.log2(p)).sum()))


def discretize(column: np.ndarray, bins: int = BINS) -> np.ndarray:
    """Equal-width bin index ``0..bins-1`` of each value (a constant column is all zeros).

    Example:
        >>> discretize(np.array([0.0, 0.5, 1.0]), bins=2).tolist()
        [0, 1, 1]
    """
    low, high = float(column.min()), float(column.max())
    if high <= low:
        return np.zeros(len(column), dtype=np.int64)
    return np.minimum(((column - low) / (high - low) * bins).astype(np.int64), bins - 1)


def mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """``H(a) + H(b) - H(a, b)`` in bits for two discrete samples."""
    joint = np.unique(np.stack([a, b], axis=1), axis=0, return_inverse=True)[1]
    return entropy(a) + entropy(b) - entropy(joint.reshape(-1))


def impute_median(X: np.ndarray) -> np.ndarray:
    """NaNs replaced by their column's median (0 for an all-missing column)."""
    X = X.astype(np.float64, copy=True)
    missing = np.isnan(X)
    if missing.any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            medians = np.nan_to_num(np.nanmedian(X, axis=0))
        X[missing] = np.take(medians, np.nonzero(missing)[1])
    return X


def _simple(X: np.ndarray, y: np.ndarray, n_rows: int, n_categorical: int) -> list[float]:
    n, d = n_rows, X.shape[1]
    counts = np.unique(y, return_counts=True)[1]
    return [
        np.log(n),
        np.log(d),
        float(len(counts)),
        np.log(n / d),
        np.log1p(n_categorical),
        float(np.isnan(X).mean()),
        float(counts.min() / counts.max()),
    ]


def _statistical(X: np.ndarray) -> list[float]:
    varying = X[:, X.std(axis=0) > 0]
    if varying.shape[1] == 0:
        return [0.0, 0.0, 0.0, 1.0]
    corr = np.corrcoef(varying, rowvar=False) if varying.shape[1] > 1 else np.ones((1, 1))
    upper = np.abs(corr[np.triu_indices_from(corr, k=1)])
    z = (varying - varying.mean(axis=0)) / varying.std(axis=0)
    share = np.cumsum(np.sort(np.linalg.svd(z, compute_uv=False) ** 2)[::-1])
    k = int(np.searchsorted(share / share[-1], 0.95) + 1)
    return [
        float(upper.mean()) if upper.size else 0.0,
        float(np.mean(stats.skew(varying, axis=0))),
        float(np.mean(stats.kurtosis(varying, axis=0))),
        k / varying.shape[1],
    ]


def _info_theory(X: np.ndarray, y: np.ndarray) -> list[float]:
    h_class = entropy(y)
    n_classes = len(np.unique(y))
    binned = [discretize(X[:, j]) for j in range(X.shape[1])]
    h_attr = float(np.mean([entropy(b) for b in binned]))
    mi = float(np.mean([mutual_information(b, y) for b in binned]))
    enat = min(RATIO_CAP, h_class / mi) if mi > 0 else RATIO_CAP
    noise = min(RATIO_CAP, (h_attr - mi) / mi) if mi > 0 else RATIO_CAP
    return [h_class / np.log2(n_classes), h_attr, mi, enat, noise]


def _model_based(X: np.ndarray, y: np.ndarray) -> list[float]:
    tree = DecisionTreeClassifier(random_state=0).fit(X, y)
    return [
        tree.get_n_leaves() / len(y),
        tree.get_depth() / max(1.0, np.log2(len(y))),
        float(tree.feature_importances_.max()),
    ]


def landmark(X: np.ndarray, y: np.ndarray, make: Callable[[], ClassifierMixin], seed: int = 0) -> float:
    """3-fold (fewer when a class is that small) stratified balanced accuracy of ``make()``."""
    folds = max(2, min(3, int(np.unique(y, return_counts=True)[1].min())))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        scores = cross_val_score(make(), X, y, cv=cv, scoring="balanced_accuracy", error_score=0.0)
    return float(np.mean(scores))


def compute_metafeatures(
    X: np.ndarray, y: np.ndarray, *, n_categorical: int = 0, max_rows: int = MAX_ROWS, seed: int = 0
) -> MetaFeatures:
    """The meta-features of a dataset ``X`` ``(n, d)`` (NaN = missing) with class labels ``y`` ``(n,)``.

    Args:
        n_categorical: how many source columns were categorical (see :mod:`metadl.automl.tabular`).
        max_rows: rows beyond this are subsampled (stratified, ``seed``) for all but ``log_rows``.
    """
    y = np.unique(y, return_inverse=True)[1].reshape(-1)
    n_rows = len(y)
    Xs, ys = subsample(X.astype(np.float64), y, max_rows, seed)
    simple = _simple(Xs, ys, n_rows, n_categorical)
    Xs = impute_median(Xs)
    landmarkers = [landmark(Xs, ys, make, seed) for make in LANDMARKERS.values()]
    values = simple + _statistical(Xs) + _info_theory(Xs, ys) + _model_based(Xs, ys) + landmarkers
    return MetaFeatures(
        np.nan_to_num(np.array(values, dtype=np.float64), posinf=RATIO_CAP, neginf=-RATIO_CAP)
    )
