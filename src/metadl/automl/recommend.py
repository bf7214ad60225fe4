"""Recommend pipelines for a user's dataset: meta-features -> meta random forest -> ranked pipelines.

The selector is refitted from the ground-truth *table* (``ground_truth.json``, shipped in this package
and written by ``benchmarks/algorithm_selection.py``) at each call rather than loaded as a saved model:
the table is plain data (JSON, about 60 KB, readable and diffable, no pickle), fitting two forests on
~150 rows takes well under a second, and the result is deterministic for a seed. The same meta-feature
code and row cap as the ground truth are used, so a user's table is described exactly like the
datasets the forest learnt from.

Each recommendation says why: the training datasets nearest in standardised meta-feature space, and
the meta-features the forest relies on most (with this dataset's values).

Example:
    >>> import numpy as np
    >>> from metadl.automl.tabular import EncodedTable
    >>> from metadl.tasks.dataset_source import NamedDataset
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(120, 3)); y = (X[:, 0] > 0).astype(int)
    >>> table = EncodedTable(NamedDataset("mine", X, y), ("a", "b", "c"), 0)
    >>> recs = recommend(table, load_ground_truth(), top=2, cv_folds=3)
    >>> len(recs), recs[0].predicted_score >= recs[1].predicted_score, 0.5 < recs[0].cv_score <= 1.0
    (2, True, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from metadl.automl.groundtruth import GroundTruth, cross_validate
from metadl.automl.metafeatures import compute_metafeatures
from metadl.automl.portfolio import ParamValue, get_candidate
from metadl.automl.selectors import KNearestDatasets, MetaRandomForest
from metadl.automl.tabular import AutoMLError, EncodedTable

TABLE_NAME = "ground_truth.json"


@dataclass(frozen=True)
class Why:
    """Why a ranking came out as it did: nearest training datasets, most used meta-features (with values)."""

    nearest_datasets: tuple[str, ...]
    important_metafeatures: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class Recommendation:
    """One ranked pipeline; ``cv_score`` is its balanced accuracy by CV on the user's data (if asked)."""

    pipeline: str
    params: dict[str, ParamValue]
    predicted_score: float
    cv_score: float | None
    why: Why

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "pipeline": self.pipeline,
            "params": self.params,
            "predicted_score": round(self.predicted_score, 4),
        }
        if self.cv_score is not None:
            out["cv_score"] = round(self.cv_score, 4)
        out["why"] = {
            "nearest_datasets": list(self.why.nearest_datasets),
            "important_metafeatures": {n: round(v, 4) for n, v in self.why.important_metafeatures},
        }
        return out


def load_ground_truth(path: str | Path | None = None) -> GroundTruth:
    """The table at ``path``, or the one shipped with metadl."""
    if path is None:
        shipped = resources.files("metadl.automl") / TABLE_NAME
        if not shipped.is_file():
            raise AutoMLError(
                f"no {TABLE_NAME} shipped with this install; build one with benchmarks/algorithm_selection.py "
                "and pass it with --ground-truth"
            )
        path = Path(str(shipped))
    return GroundTruth.load(path)


def recommend(
    table: EncodedTable,
    gt: GroundTruth,
    *,
    top: int = 3,
    cv_folds: int | None = None,
    neighbours: int = 3,
    seed: int = 0,
) -> list[Recommendation]:
    """The ``top`` pipelines for ``table`` by the meta random forest's predicted balanced accuracy.

    Args:
        cv_folds: also cross-validate each recommended pipeline on the table (stratified, one repeat).
    """
    if not 1 <= top <= len(gt.pipelines):
        raise AutoMLError(f"top={top}; choose between 1 and {len(gt.pipelines)} pipelines")
    if cv_folds is not None and cv_folds < 2:
        raise AutoMLError(f"cv={cv_folds}; cross-validation needs at least 2 folds")
    data = table.dataset
    y = np.unique(data.y, return_inverse=True)[1].reshape(-1)
    mf = compute_metafeatures(data.X, y, n_categorical=table.n_categorical, max_rows=gt.max_rows, seed=seed)
    x = mf.values[None, :]
    forest = MetaRandomForest(seed=seed).fit(gt.metafeatures, gt.selection)
    predicted = forest.predict(x)[0]
    near = KNearestDatasets(k=neighbours).fit(gt.metafeatures, gt.selection).neighbours(x)[0]
    important = np.argsort(-forest.importances_, kind="stable")[:3]
    why = Why(
        tuple(gt.names[i] for i in near),
        tuple((gt.metafeature_names[i], float(mf.values[i])) for i in important),
    )
    ranked = np.argsort(-predicted, kind="stable")[:top]
    X = data.X.astype(np.float64)
    return [
        Recommendation(
            gt.pipelines[p],
            dict(get_candidate(gt.pipelines[p]).params),
            float(predicted[p]),
            None
            if cv_folds is None
            else float(cross_validate(gt.pipelines[p], X, y, cv_folds, [seed])[0][0]),
            why,
        )
        for p in ranked
    ]


def format_recommendations(recs: list[Recommendation]) -> str:
    """A plain-text table: rank, pipeline, predicted (and CV) balanced accuracy, then the reasons."""
    lines = []
    for rank, r in enumerate(recs, start=1):
        cv = "" if r.cv_score is None else f"  cv {r.cv_score:.3f}"
        lines.append(f"{rank}. {r.pipeline:20s} predicted {r.predicted_score:.3f}{cv}  {r.params}")
    if recs:
        why = recs[0].why
        features = ", ".join(f"{n}={v:.3g}" for n, v in why.important_metafeatures)
        lines.append(
            f"nearest datasets: {', '.join(why.nearest_datasets)}; meta-features that mattered: {features}"
        )
    return "\n".join(lines)
