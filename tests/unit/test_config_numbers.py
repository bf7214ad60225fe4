"""Numbers in configs: NaN and infinities are refused everywhere, ``1e6`` is the float it looks like."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from metadl.config import ConfigError, load_config, read_yaml

BASE = """
dataset: {name: sinusoid}
backbone: {name: mlp, hidden: [8]}
learner: {name: maml, inner_lr: 0.01}
"""


def write(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(BASE + extra)
    return path


@pytest.mark.parametrize(
    "extra, key",
    [
        ("optimizer: {lr: .nan}", "optimizer.lr"),
        ("optimizer: {lr: .inf}", "optimizer.lr"),
        ("optimizer: {schedule: step, gamma: .nan}", "optimizer.gamma"),
        ("optimizer: {weight_decay: .inf}", "optimizer.weight_decay"),
        ("train: {grad_clip: .nan}", "train.grad_clip"),
        ("train: {grad_clip: .inf}", "train.grad_clip"),
        ("optimizer: {lr: -.inf}", "optimizer.lr"),
    ],
)
def test_nan_and_inf_are_refused_in_every_float_field(tmp_path, extra, key):
    with pytest.raises(ConfigError, match=rf"{key} = (nan|inf|-inf) is not allowed: must be a finite number"):
        load_config(write(tmp_path, extra))


def test_nan_is_refused_in_builder_arguments_and_lists(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(BASE.replace("inner_lr: 0.01", "inner_lr: .nan"))
    with pytest.raises(ConfigError, match=r"learner\.inner_lr = nan"):
        load_config(path)
    path.write_text(BASE.replace("hidden: [8]", "hidden: [8, .inf]"))
    with pytest.raises(ConfigError, match=r"backbone\.hidden\[1\] = inf"):
        load_config(path)


@pytest.mark.parametrize("override", ["optimizer.lr=.nan", "optimizer.gamma=.inf", "learner.inner_lr=.NaN"])
def test_nan_and_inf_are_refused_in_overrides(tmp_path, override):
    with pytest.raises(ConfigError, match="must be a finite number"):
        load_config(write(tmp_path), [override])


def test_exponent_floats_are_read_as_floats_in_files_and_overrides(tmp_path):
    cfg = load_config(write(tmp_path, "optimizer: {lr: 1e-3, weight_decay: 5E-4}\ntrain: {grad_clip: 1e1}"))
    assert (cfg.optimizer.lr, cfg.optimizer.weight_decay, cfg.train.grad_clip) == (1e-3, 5e-4, 10.0)
    cfg = load_config(write(tmp_path), ["optimizer.lr=1e6", "learner.inner_lr=2e-2", "train.grad_clip=+1E+2"])
    assert (cfg.optimizer.lr, cfg.learner.kwargs["inner_lr"], cfg.train.grad_clip) == (1e6, 2e-2, 100.0)


def test_read_yaml_keeps_strings_that_only_look_like_numbers():
    assert read_yaml("a: e5\nb: 1e\nc: '1e6'\nd: 1.5e3\ne: 1_000") == {
        "a": "e5",
        "b": "1e",
        "c": "1e6",
        "d": 1500.0,
        "e": 1000,
    }
    assert math.isnan(read_yaml(".nan"))


def test_an_override_that_is_not_yaml_is_refused_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"seed = '\[1' is not allowed: not a YAML value"):
        load_config(write(tmp_path), ["seed=[1"])


def test_a_config_that_is_not_utf8_is_refused_naming_the_file(tmp_path):
    path = write(tmp_path)
    path.write_bytes(path.read_bytes() + b"\n# \xff\xfe")
    with pytest.raises(ConfigError, match=r"c\.yaml is not UTF-8 text"):
        load_config(path)


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            "dataset: {name: image_folder, root: x, image_size: 60000}",
            "dataset.image_size = 60000 is not allowed: must be <= 4096",
        ),
        (
            "backbone: {name: mlp, hidden: [1000000000000]}",
            "backbone.hidden = 1000000000000 is above the limit",
        ),
        (
            "learner: {name: maml, inner_steps: 100000000}",
            "learner.inner_steps = 100000000 is above the limit of 10000",
        ),
    ],
)
def test_huge_sizes_are_refused_at_load(tmp_path, extra, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, extra))
