"""Warm start: neighbours by standardised meta-features, held-out distributions excluded, meta-model ranking."""

from __future__ import annotations

import numpy as np
import pytest

from metadl.experiments.database import RunRecord
from metadl.tune.space import grid, params_key
from metadl.tune.warmstart import warm_start

POINTS = grid()
PROTONET = [p for p in POINTS if p["learner"] == "protonet"]
MAML = [p for p in POINTS if p["learner"] == "maml"]


def _trials(name: str, features: dict[str, float], scores: dict[int, float]) -> list[RunRecord]:
    """Records of trials of grid points ``scores`` (index -> val_accuracy) on distribution ``name``."""
    return [
        RunRecord(kind="trial", distribution=name, config={}, params=POINTS[i], metafeatures=features,
                  metrics={"val_accuracy": s})
        for i, s in scores.items()
    ]  # fmt: skip


def _features(ways: float, landmark: float) -> dict[str, float]:
    return {"ways": ways, "shots": 1.0, "landmark_raw": landmark}


def test_neighbours_are_the_nearest_in_standardised_features() -> None:
    rng = np.random.default_rng(0)
    features = {f"d{i}": _features(float(rng.integers(2, 20)), float(rng.random())) for i in range(8)}
    records = [r for name, f in features.items() for r in _trials(name, f, {0: 0.5, 1: 0.6})]
    target = _features(7.0, 0.4)
    plan = warm_start(records, target, neighbours=3)
    table = np.array([[f["ways"], f["shots"], f["landmark_raw"]] for f in features.values()])
    std = table.std(0)
    std[std == 0] = 1
    z = (table - table.mean(0)) / std
    t = (np.array([7.0, 1.0, 0.4]) - table.mean(0)) / std
    brute = sorted(zip(np.linalg.norm(z - t, axis=1), features, strict=True), key=lambda x: x[0])[:3]
    assert [n for n, _ in plan.neighbours] == [name for _, name in brute]
    assert [d for _, d in plan.neighbours] == pytest.approx([d for d, _ in brute])


def test_a_held_out_distribution_never_contributes_to_its_own_warm_start() -> None:
    own = _features(5.0, 0.5)
    secret = 3  # only the held-out distribution ever tried this point, and it scored perfectly there
    records = _trials("held-out", own, {secret: 1.0, 4: 0.2, 5: 0.2})
    records += _trials("twin", _features(5.0, 0.51), {10: 0.6, 11: 0.5})
    records += _trials("far", _features(20.0, 0.9), {12: 0.7, 13: 0.4})
    plan = warm_start(records, own, exclude={"held-out"}, neighbours=5, per_neighbour=5, top=10)
    assert "held-out" not in plan.trained_on and "held-out" not in {n for n, _ in plan.neighbours}
    assert {c.source for c in plan.candidates} <= {"twin", "far"}
    assert params_key(POINTS[secret]) not in {params_key(c.params) for c in plan.candidates}
    assert plan.neighbours[0][0] == "twin"
    unexcluded = warm_start(
        records, own, neighbours=1, per_neighbour=1, top=1
    )  # the control: it would have won
    assert unexcluded.candidates[0].params == POINTS[secret] and unexcluded.candidates[0].source == "held-out"


def test_the_meta_model_ranks_the_learner_that_wins_everywhere_first() -> None:
    """Planted: on every distribution ProtoNet beats MAML by 0.3; the best candidate must be a ProtoNet."""
    rng = np.random.default_rng(1)
    records = []
    for d in range(10):
        features = _features(float(rng.integers(3, 15)), float(rng.random()))
        scores = {POINTS.index(p): 0.6 + 0.01 * rng.standard_normal() for p in rng.permuted(PROTONET)[:3]}
        scores |= {POINTS.index(p): 0.3 + 0.01 * rng.standard_normal() for p in rng.permuted(MAML)[:6]}
        records += _trials(f"d{d}", features, scores)
    plan = warm_start(records, _features(6.0, 0.5), neighbours=10, per_neighbour=9, top=5)
    predicted = [c.predicted for c in plan.candidates]
    assert predicted == sorted(predicted, reverse=True)
    assert [c.params["learner"] for c in plan.candidates[:3]] == ["protonet"] * 3
    assert plan.candidates[0].predicted > 0.1  # well above its distribution's mean trial


def test_an_empty_database_gives_a_cold_start() -> None:
    plan = warm_start([], _features(5.0, 0.5))
    assert plan.candidates == [] and plan.neighbours == [] and plan.trained_on == frozenset()


def test_the_grid_pool_proposes_a_point_the_neighbours_never_tried() -> None:
    """Point 7 won on every far distribution; the nearest one never tried it. Only the grid pool finds it."""
    star, rng = 7, np.random.default_rng(1)
    records = _trials("near", _features(5.0, 0.5), {i: 0.3 + 0.01 * i for i in range(20, 26)})
    for d in range(6):
        scores = {int(i): float(rng.uniform(0.2, 0.5)) for i in rng.choice(range(20, 90), 8, replace=False)}
        records += _trials(f"far{d}", _features(10.0 + d, 0.9), {**scores, star: 0.95})
    target = _features(5.0, 0.5)
    by_neighbours = warm_start(records, target, neighbours=1, per_neighbour=3, top=3)
    by_grid = warm_start(records, target, neighbours=1, top=3, pool="grid")
    assert POINTS[star] not in [c.params for c in by_neighbours.candidates]
    assert POINTS[star] in [c.params for c in by_grid.candidates]
    assert {c.source for c in by_grid.candidates} == {"meta-model"}
    assert len(by_grid.candidates) == 3 and by_grid.neighbours == by_neighbours.neighbours
    vector = warm_start(records, {**target, "is_vector": 1.0}, top=5, pool="grid")
    assert all(c.params["backbone"] == "mlp" for c in vector.candidates)
    with pytest.raises(ValueError, match="pool='all'"):
        warm_start(records, target, pool="all")
