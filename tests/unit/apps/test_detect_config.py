"""The shipped detection config loads, round-trips and builds its detector; bad keys and values fail in one line."""

from __future__ import annotations

import pytest
import torch
import yaml

from metadl.apps.detect.config import (
    DetectConfig,
    detect_config_from_dict,
    detect_config_to_dict,
    is_detection_config,
    load_detect_config,
)
from metadl.apps.detect.run import detector_spec
from metadl.config import ConfigError, shipped_config
from metadl.data.detection.scenes import SceneSpec
from metadl.models.detection import CenterNetDetector

SHIPPED = shipped_config("detect_omniglot_scenes")


def test_the_shipped_config_pins_the_benchmark_of_issue_20():
    cfg = load_detect_config(SHIPPED)
    assert is_detection_config(SHIPPED) and not is_detection_config(shipped_config("demo"))
    assert cfg.scenes == SceneSpec()  # the generator's defaults are the shipped benchmark
    s = cfg.scenes
    assert (s.canvas, s.min_objects, s.max_objects, s.min_size, s.max_size) == (128, 2, 6, 20, 48)
    assert s.novel_alphabets >= 5 and s.novel_alphabets * s.novel_per_alphabet >= 20 and s.novel_fraction > 0
    assert cfg.eval.shots == [1, 5, 10] and cfg.eval.samples >= 5
    assert detect_config_from_dict(detect_config_to_dict(cfg)) == cfg
    detector = CenterNetDetector(detector_spec(cfg, 30))
    assert detector(torch.zeros(1, 1, 128, 128)).logits.shape == (1, 30, 16, 16)


def test_overrides_are_typed_by_their_field():
    cfg = load_detect_config(SHIPPED, ["train.steps=7", "eval.shots=[5]", "train.lr=1e-3", "data.folder=x"])
    assert (cfg.train.steps, cfg.eval.shots, cfg.train.lr, cfg.data.folder) == (7, [5], 0.001, "x")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.stepz=3"], "unknown key 'train.stepz'; allowed: batch_size"),
        (["train.steps=many"], "train.steps = 'many' is not a int"),
        (["train.lr=.nan"], "not a finite number"),
        (["eval.shots=[]"], "not a non-empty list"),
        (["eval.split=train"], "choose val or test"),
        (["detector.backbone=vit"], "choose conv4 or resnet12"),
        (["scenes.min_objects=1"], "objects per canvas"),
        (["train.steps=0"], "must be >= 1"),
    ],
)
def test_bad_values_fail_in_one_line(overrides, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_detect_config(SHIPPED, overrides)
    assert "\n" not in str(err.value)


def test_a_non_detection_mapping_is_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"task": "classification"}))
    with pytest.raises(ConfigError, match="not a detection config"):
        load_detect_config(path)
    assert not is_detection_config(tmp_path / "missing.yaml")
    assert DetectConfig().task == "detection"
