"""Warm start: the first trials of a new search, proposed from the runs of similar task distributions.

Given the meta-features of a new task distribution and the trials of the experiment database:

1. every other distribution in the database is a point in meta-feature space; the features are
   standardised (mean 0, standard deviation 1 over the database's distributions), so that a count of classes
   and an accuracy weigh alike;
2. the ``neighbours`` nearest distributions (Euclidean distance) each propose their ``per_neighbour`` best
   configurations among those that apply to the new distribution's modality (no Conv-4 for vectors);
   with ``pool="grid"``, every point of the modality's space is a candidate instead;
3. a **meta-model**, a random forest over (standardised meta-features, encoded configuration) trained on
   every trial of the database, predicts each candidate's score on the new distribution (as its margin over
   the mean trial of that distribution, so that easy and hard distributions are comparable), and the
   candidates are ranked by it.

The distributions named in ``exclude`` (always the target itself, when it has a name) contribute nothing:
neither neighbours nor meta-model training rows. Without a database (or with nothing left after exclusion)
the warm start is empty and the search starts cold.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import RandomForestRegressor

from metadl.config import Config
from metadl.experiments.database import ExperimentDB, RunRecord
from metadl.experiments.record import config_features, distribution_name, task_kind
from metadl.tune.space import Params, check_params, encode, grid, modality_of, params_key

POOLS = ("neighbours", "grid")


@dataclass(frozen=True)
class Candidate:
    """A proposed configuration: where it came from, how far that distribution is, what the meta-model predicts."""

    params: Params
    source: str
    distance: float
    predicted: float


@dataclass(frozen=True)
class WarmStart:
    """The ranked candidates, the neighbours they came from, and the distributions the meta-model learnt from."""

    candidates: list[Candidate]
    neighbours: list[tuple[str, float]]
    trained_on: frozenset[str]


def warm_start(
    records: Sequence[RunRecord],
    target: Mapping[str, float],
    *,
    metric: str = "val_accuracy",
    exclude: Collection[str] = (),
    neighbours: int = 5,  # chosen over 3 on validation distributions (docs/benchmarks.md, issue 19)
    per_neighbour: int = 2,
    top: int = 3,
    maximize: bool = True,
    seed: int = 0,
    pool: str = "neighbours",
) -> WarmStart:
    """Rank configurations for the distribution with meta-features ``target`` (see the module docstring).

    ``pool="grid"`` lets the meta-model rank every point of the target's space instead of the neighbours'
    best ones (source ``"meta-model"``; the neighbours are still reported).
    """
    if pool not in POOLS:
        raise ValueError(f"pool={pool!r}; choose one of {list(POOLS)}")
    usable = [
        r
        for r in records
        if r.distribution not in exclude and metric in r.metrics and r.params and r.metafeatures
    ]
    by_distribution: dict[str, list[RunRecord]] = defaultdict(list)
    for r in usable:
        by_distribution[r.distribution].append(r)
    if not by_distribution:
        return WarmStart([], [], frozenset())
    names = sorted(by_distribution)
    keys = sorted(set(target) & set().union(*(r.metafeatures for r in usable)))
    table = np.array([[_feature(by_distribution[n], k) for k in keys] for n in names])  # (D, F)
    table = np.where(np.isnan(table), np.nanmean(table, axis=0), table)
    table = np.nan_to_num(table)
    mean, std = table.mean(0), table.std(0)
    std[std == 0] = 1.0
    z_table = (table - mean) / std
    z_target = (np.array([target[k] for k in keys]) - mean) / std
    distance = np.linalg.norm(z_table - z_target, axis=1)
    nearest = [(names[i], float(distance[i])) for i in np.argsort(distance, kind="stable")[:neighbours]]

    sign = 1.0 if maximize else -1.0
    modality = modality_of(target)
    proposed: dict[str, Candidate] = {}
    if pool == "grid":
        proposed = {params_key(p): Candidate(p, "meta-model", float("nan"), 0.0) for p in grid(modality)}
    else:
        for name, dist in nearest:
            fits = [r for r in by_distribution[name] if _fits(r.params, modality)]  # no Conv-4 for vectors
            ranked = sorted(fits, key=lambda r: -sign * r.metrics[metric])
            for r in ranked[:per_neighbour]:
                proposed.setdefault(params_key(r.params), Candidate(dict(r.params), name, dist, 0.0))
    if not proposed:
        return WarmStart([], nearest, frozenset(names))
    model = _meta_model(by_distribution, names, z_table, metric, sign, seed)
    rows = np.array([[*z_target, *encode(c.params)] for c in proposed.values()])
    predicted = model.predict(rows)
    scored = [
        Candidate(c.params, c.source, c.distance, float(p))
        for c, p in zip(proposed.values(), predicted, strict=True)
    ]
    scored.sort(key=lambda c: (-c.predicted, c.distance))
    return WarmStart(scored[:top], nearest, frozenset(names))


def _meta_model(
    by_distribution: Mapping[str, list[RunRecord]],
    names: list[str],
    z_table: np.ndarray,
    metric: str,
    sign: float,
    seed: int,
) -> RandomForestRegressor:
    """Random forest: (standardised meta-features, encoded params) -> the trial's margin over its distribution's mean."""
    x, y = [], []
    for row, name in zip(z_table, names, strict=True):
        scores = [sign * r.metrics[metric] for r in by_distribution[name]]
        centre = float(np.mean(scores))
        for r, score in zip(by_distribution[name], scores, strict=True):
            x.append([*row, *encode(r.params)])
            y.append(score - centre)
    model = RandomForestRegressor(n_estimators=200, min_samples_leaf=2, random_state=seed, n_jobs=1)
    return model.fit(np.array(x), np.array(y))


def _fits(params: Params, modality: str) -> bool:
    try:
        check_params(params, modality)
    except ValueError:
        return False
    return True


def _feature(records: list[RunRecord], key: str) -> float:
    values = [r.metafeatures[key] for r in records if key in r.metafeatures]
    return float(np.mean(values)) if values else float("nan")


def propose_for_config(cfg: Config, db: ExperimentDB, *, top: int = 3) -> list[Candidate]:
    """The warm start of a search on ``cfg``'s training distribution, from the trials in ``db`` (its own excluded)."""
    s = cfg.sampler
    shape = (s.ways, s.shots, s.queries)
    regression = task_kind(cfg) == "regression"
    metric = "val_mse" if regression else "val_accuracy"
    features = config_features(cfg, cfg.dataset.split, shape).as_dict()
    own = distribution_name(cfg, cfg.dataset.split, shape)
    plan = warm_start(
        db.query(kind="trial"),
        features,
        metric=metric,
        exclude={own},
        top=top,
        maximize=not regression,
    )
    return plan.candidates
