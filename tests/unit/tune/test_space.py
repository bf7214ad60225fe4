"""The tuning space: the grid is every valid point, every point builds a valid config, encodings line up."""

from __future__ import annotations

import itertools
import random

import pytest

from metadl.config import config_from_dict
from metadl.tune.distributions import task_distributions
from metadl.tune.space import (
    SPACE,
    apply_params,
    check_params,
    describe,
    encode,
    encoded_names,
    grid,
    params_key,
    suggest,
)


def test_grid_matches_a_brute_force_count() -> None:
    brute = set()
    for values in itertools.product(*(c.values for c in SPACE)):
        full = dict(zip((c.name for c in SPACE), values, strict=True))
        point = {c.name: full[c.name] for c in SPACE if c.active(full)}
        brute.add(params_key(point))
    points = grid()
    assert len(points) == len({params_key(p) for p in points}) == len(brute) == 90
    assert {params_key(p) for p in points} == brute


def test_suggest_gives_valid_points_and_only_active_parameters() -> None:
    rng = random.Random(0)
    for _ in range(200):
        point = suggest(lambda _name, values: rng.choice(values))
        assert check_params(point) == point
        assert ("depth" in point) == (point["backbone"] == "mlp")
        assert ("inner_lr" in point) == (point["learner"] == "maml")


@pytest.mark.parametrize(
    "bad",
    [
        {"learner": "protonet", "backbone": "conv4", "width": 16, "lr": 0.003, "inner_lr": 0.1},
        {"learner": "protonet", "backbone": "conv4", "width": 17, "lr": 0.003},
        {"learner": "reptile", "backbone": "conv4", "width": 16, "lr": 0.003},
    ],
)
def test_points_outside_the_space_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError, match="not a point of the tuning space"):
        check_params(bad)


def test_every_point_builds_a_config_that_validates() -> None:
    raw = task_distributions()[0].config()
    for point in grid():
        cfg = config_from_dict(apply_params(raw, point))
        assert cfg.learner.name == point["learner"] and cfg.optimizer.lr == point["lr"]
        assert cfg.backbone.name == point["backbone"]
        if point["learner"] == "maml":
            assert cfg.learner.kwargs == {
                "inner_lr": point["inner_lr"],
                "inner_steps": point["inner_steps"],
                "first_order": True,
            }
        hidden = cfg.backbone.kwargs["hidden"]
        assert hidden == (
            point["width"] if point["backbone"] == "conv4" else [point["width"]] * point["depth"]
        )
        assert describe(point).startswith(point["learner"])


def test_encodings_have_one_name_per_number_and_tell_points_apart() -> None:
    codes = {tuple(encode(p)) for p in grid()}
    assert len(codes) == len(grid())
    assert all(len(c) == len(encoded_names()) for c in codes)
