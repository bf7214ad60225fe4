"""Algorithm selectors: from a dataset's meta-features, predict how well each pipeline will do on it.

Every selector follows :class:`Selector`: ``fit(metafeatures (n, F), scores (n, P))`` on past datasets,
``predict(metafeatures (m, F)) -> (m, P)`` predicted scores (higher is better), and declares
``evaluations``: how many of its top-ranked pipelines are cross-validated on the new dataset before the
best of them is taken (1 = trust the prediction; the greedy portfolio needs its members evaluated).

**Meta random forest / meta SVM: per-pipeline regression, not pairwise ranking.** With P = 14
pipelines pairwise ranking needs P(P-1)/2 = 91 models and yields votes, not the ``predicted_score``
the recommender reports; per-pipeline regression needs P models (one multi-output forest for the RF)
and predicts scores directly. Its known weakness is that most of the variance of raw scores is the
dataset's difficulty, which every pipeline shares and which says nothing about which is best: so each
selector regresses two things, the dataset's mean score over the portfolio (its *level*) and each
pipeline's *offset* from that mean; the offsets rank, level + offset is the predicted score.

**Hybrid**: :class:`MetaRFPortfolio` builds a portfolio per new dataset from the meta RF's trees
(top-1 first, then the members that add most expected gain), so that evaluating b of them is spent
on alternatives the forest itself finds plausible.

Baselines: the single best pipeline on the training datasets, a static portfolio chosen greedily to
minimise the training regret (auto-sklearn 2.0), uniform random choice, and the k nearest datasets in
standardised meta-feature space (auto-sklearn 1.0's warm start: their mean scores are the prediction).

Example:
    >>> rng = np.random.default_rng(0)
    >>> meta = rng.normal(size=(40, 3))
    >>> scores = np.stack([meta[:, 0] > 0, meta[:, 0] <= 0], axis=1).astype(float)  # pipeline 0 wins iff x0 > 0
    >>> rf = create_selector("meta_rf").fit(meta, scores)
    >>> rf.predict(np.array([[2.0, 0.0, 0.0], [-2.0, 0.0, 0.0]])).argmax(axis=1).tolist()
    [0, 1]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
from sklearn.ensemble import RandomForestRegressor
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVR

from metadl.automl.tabular import AutoMLError


class Selector(Protocol):
    """The selector contract (see the module docstring)."""

    evaluations: int

    def fit(self, metafeatures: np.ndarray, scores: np.ndarray) -> Selector: ...

    def predict(self, metafeatures: np.ndarray) -> np.ndarray: ...


def _check(metafeatures: np.ndarray, scores: np.ndarray) -> None:
    if metafeatures.ndim != 2 or scores.ndim != 2 or len(metafeatures) != len(scores) or len(scores) < 2:
        raise AutoMLError(
            f"need metafeatures (n, F) and scores (n, P) with n >= 2, got {metafeatures.shape} and {scores.shape}"
        )


class MetaRandomForest:
    """Random forests for the level and (multi-output) the per-pipeline offsets; ``importances_`` ``(F,)``."""

    def __init__(
        self, *, n_estimators: int = 300, min_samples_leaf: int = 1, evaluations: int = 1, seed: int = 0
    ):
        self.n_estimators, self.min_samples_leaf = n_estimators, min_samples_leaf
        self.evaluations, self.seed = evaluations, seed

    def _forest(self) -> RandomForestRegressor:
        return RandomForestRegressor(
            self.n_estimators, min_samples_leaf=self.min_samples_leaf, random_state=self.seed, n_jobs=1
        )

    def fit(self, metafeatures: np.ndarray, scores: np.ndarray) -> MetaRandomForest:
        _check(metafeatures, scores)
        level = scores.mean(axis=1)
        self.level_ = self._forest().fit(metafeatures, level)
        self.offsets_ = self._forest().fit(metafeatures, scores - level[:, None])
        self.importances_ = self.offsets_.feature_importances_
        return self

    def predict(self, metafeatures: np.ndarray) -> np.ndarray:
        offsets = self.offsets_.predict(metafeatures).reshape(len(metafeatures), -1)
        return self.level_.predict(metafeatures)[:, None] + offsets


class MetaSVM:
    """Support vector regression (RBF) on standardised meta-features: one for the level, one per offset."""

    def __init__(self, *, C: float = 1.0, epsilon: float = 0.005, evaluations: int = 1):
        self.C, self.epsilon, self.evaluations = C, epsilon, evaluations

    def fit(self, metafeatures: np.ndarray, scores: np.ndarray) -> MetaSVM:
        _check(metafeatures, scores)
        self.scaler_ = StandardScaler().fit(metafeatures)
        z = self.scaler_.transform(metafeatures)
        level = scores.mean(axis=1)
        self.level_ = SVR(C=self.C, epsilon=self.epsilon).fit(z, level)
        self.offsets_ = [SVR(C=self.C, epsilon=self.epsilon).fit(z, s - level) for s in scores.T]
        return self

    def predict(self, metafeatures: np.ndarray) -> np.ndarray:
        z = self.scaler_.transform(metafeatures)
        return self.level_.predict(z)[:, None] + np.stack([m.predict(z) for m in self.offsets_], axis=1)


class KNearestDatasets:
    """Mean scores of the ``k`` training datasets nearest in standardised meta-feature space."""

    def __init__(self, *, k: int = 5, evaluations: int = 1):
        if k < 1:
            raise AutoMLError(f"k={k}; the number of nearest datasets must be at least 1")
        self.k, self.evaluations = k, evaluations

    def fit(self, metafeatures: np.ndarray, scores: np.ndarray) -> KNearestDatasets:
        _check(metafeatures, scores)
        self.scaler_ = StandardScaler().fit(metafeatures)
        self.train_ = self.scaler_.transform(metafeatures)
        self.scores_ = scores
        return self

    def neighbours(self, metafeatures: np.ndarray) -> np.ndarray:
        """Indices ``(m, k)`` of the nearest training datasets, nearest first."""
        z = self.scaler_.transform(metafeatures)
        distances = ((z[:, None, :] - self.train_[None, :, :]) ** 2).sum(axis=-1)
        return np.argsort(distances, axis=1, kind="stable")[:, : min(self.k, len(self.train_))]

    def predict(self, metafeatures: np.ndarray) -> np.ndarray:
        return self.scores_[self.neighbours(metafeatures)].mean(axis=1)


class SingleBest:
    """The pipeline with the best mean score on the training datasets, for every new dataset."""

    evaluations = 1

    def fit(self, metafeatures: np.ndarray, scores: np.ndarray) -> SingleBest:
        _check(metafeatures, scores)
        self.mean_ = scores.mean(axis=0)
        return self

    def predict(self, metafeatures: np.ndarray) -> np.ndarray:
        return np.tile(self.mean_, (len(metafeatures), 1))


def greedy_portfolio(scores: np.ndarray, size: int) -> list[int]:
    """Pipelines added one at a time, each minimising the mean regret of the best member so far.

    Example:
        >>> greedy_portfolio(np.array([[0.9, 0.5, 0.8], [0.2, 0.9, 0.8]]), 2)
        [2, 0]
    """
    best = scores.max(axis=1)
    chosen: list[int] = []
    for _ in range(min(size, scores.shape[1])):
        regrets = [
            np.inf if p in chosen else float((best - scores[:, [*chosen, p]].max(axis=1)).mean())
            for p in range(scores.shape[1])
        ]
        chosen.append(int(np.argmin(regrets)))
    return chosen


class GreedyPortfolio:
    """auto-sklearn 2.0's static portfolio: its ``size`` members are cross-validated, the best is kept."""

    def __init__(self, *, size: int = 3):
        if size < 1:
            raise AutoMLError(f"size={size}; a portfolio needs at least one pipeline")
        self.size = self.evaluations = size

    def fit(self, metafeatures: np.ndarray, scores: np.ndarray) -> GreedyPortfolio:
        _check(metafeatures, scores)
        self.members_ = greedy_portfolio(scores, self.size)
        self.mean_ = scores.mean(axis=0)
        return self

    def predict(self, metafeatures: np.ndarray) -> np.ndarray:
        order = self.mean_ - 2.0  # non-members below every member, in their mean order
        for rank, p in enumerate(self.members_):
            order[p] = 1.0 + (len(self.members_) - rank) / len(self.members_)
        return np.tile(order, (len(metafeatures), 1))


class MetaRFPortfolio:
    """A portfolio built for the new dataset on the meta RF's predictions: its top-1, then expected gain.

    The forest's trees are ``n_estimators`` plausible offset vectors for the new dataset (each tree's
    leaf holds a few training datasets; the forest's prediction is their mean). The members are added
    greedily, each maximising the mean over trees of the best member's offset so far (the greedy
    portfolio of :func:`greedy_portfolio`, run on the trees instead of on past datasets; ties go to the
    higher mean). The first member is therefore the meta RF's top-1; the next ones cover the cases
    where the trees disagree with it, rather than its near-copies. ``predict`` returns a ranking score:
    the forest's predicted scores, with the ``size`` members lifted above all others in greedy order
    (the orders are nested, so the first b members are the portfolio of b).
    """

    def __init__(self, *, size: int = 5, evaluations: int = 1, n_estimators: int = 300, seed: int = 0):
        if size < 1:
            raise AutoMLError(f"size={size}; a portfolio needs at least one pipeline")
        self.size, self.evaluations = size, evaluations
        self.forest_ = MetaRandomForest(n_estimators=n_estimators, seed=seed)

    def fit(self, metafeatures: np.ndarray, scores: np.ndarray) -> MetaRFPortfolio:
        self.forest_.fit(metafeatures, scores)
        return self

    def members(self, metafeatures: np.ndarray) -> np.ndarray:
        """The greedy members ``(m, min(size, P))`` per new dataset, in the order they were added."""
        trees = self.forest_.offsets_.estimators_
        samples = np.stack([t.predict(metafeatures).reshape(len(metafeatures), -1) for t in trees], axis=1)
        out = []
        for row in samples:  # (trees, P)
            by_mean = np.argsort(-row.mean(axis=0), kind="stable")
            out.append(by_mean[greedy_portfolio(row[:, by_mean], self.size)])
        return np.array(out).reshape(len(metafeatures), -1)

    def predict(self, metafeatures: np.ndarray) -> np.ndarray:
        predicted = self.forest_.predict(metafeatures)
        members = self.members(metafeatures)
        lift = predicted.max() - predicted.min() + 1.0
        for row, chosen in zip(predicted, members, strict=True):
            row[chosen] = row.max() + lift * np.arange(len(chosen), 0, -1)
        return predicted


class RandomChoice:
    """Uniformly random scores (seeded): the chance baseline."""

    def __init__(self, *, seed: int = 0, evaluations: int = 1):
        self.rng, self.evaluations = np.random.default_rng(seed), evaluations

    def fit(self, metafeatures: np.ndarray, scores: np.ndarray) -> RandomChoice:
        _check(metafeatures, scores)
        self.n_pipelines_ = scores.shape[1]
        return self

    def predict(self, metafeatures: np.ndarray) -> np.ndarray:
        return self.rng.random((len(metafeatures), self.n_pipelines_))


_REGISTRY: dict[str, Callable[..., Selector]] = {
    "meta_rf": MetaRandomForest,
    "meta_svm": MetaSVM,
    "knn_datasets": KNearestDatasets,
    "single_best": SingleBest,
    "greedy_portfolio": GreedyPortfolio,
    "meta_rf_portfolio": MetaRFPortfolio,
    "random": RandomChoice,
}


def list_selectors() -> list[str]:
    """Names accepted by :func:`create_selector`."""
    return list(_REGISTRY)


def create_selector(name: str, **kwargs: object) -> Selector:
    """A fresh selector by name, keyword arguments passed to its constructor."""
    if name not in _REGISTRY:
        raise AutoMLError(f"unknown selector {name!r}; choose one of {list_selectors()}")
    try:
        return _REGISTRY[name](**kwargs)
    except TypeError as err:
        raise AutoMLError(f"selector {name!r}: {err}") from None
