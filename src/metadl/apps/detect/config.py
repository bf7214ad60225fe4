"""Detection configs (``task: detection``): typed sections, checked at load time like every metadl config.

A detection experiment does not fit the episodic schema of :mod:`metadl.config` (no sampler, no
learner, no episodes: a detector trains on images and is scored by COCO AP), so it has its own small
schema. ``metadl train`` and ``metadl eval`` recognise it by its ``task: detection`` key and take the
detection path (:mod:`.run`). Unknown keys and values of the wrong type fail naming the key and what
is allowed; ``--set section.key=value`` works as for the other configs.

Example:
    >>> cfg = detect_config_from_dict({"task": "detection", "train": {"steps": 10}})
    >>> cfg.train.steps, cfg.scenes.canvas, cfg.eval.shots
    (10, 128, [1, 5, 10])
    >>> detect_config_from_dict({"task": "detection", "train": {"stepz": 10}})
    Traceback (most recent call last):
    ...
    metadl.config.ConfigError: config: unknown key 'train.stepz'; allowed: batch_size, checkpoint_every, lr, steps, weight_decay
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from metadl.config import ConfigError, apply_overrides, read_yaml
from metadl.data.detection.scenes import SceneSpec

TASK = "detection"
_KINDS: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}


@dataclass(frozen=True)
class DataSection:
    """``root``: the Omniglot files; ``folder``: where the generated benchmark lives (default: RUN/scenes)."""

    root: str = "data/omniglot"
    folder: str | None = None


@dataclass(frozen=True)
class DetectorSection:
    backbone: str = "conv4"
    hidden: int = 32
    dim: int = 64


@dataclass(frozen=True)
class TrainSection:
    steps: int = 1500
    batch_size: int = 16
    lr: float = 0.002
    weight_decay: float = 0.0001
    checkpoint_every: int = 100


@dataclass(frozen=True)
class FinetuneSection:
    """TFA's head fine-tuning on the frozen detector's maps of the K-shot set."""

    steps: int = 300
    batch_size: int = 16
    lr: float = 0.01


@dataclass(frozen=True)
class EvalSection:
    shots: list[int] = field(default_factory=lambda: [1, 5, 10])
    samples: int = 5
    seed: int = 0
    split: str = "test"


@dataclass(frozen=True)
class DetectConfig:
    task: str = TASK
    seed: int = 0
    data: DataSection = DataSection()
    scenes: SceneSpec = SceneSpec()
    detector: DetectorSection = DetectorSection()
    train: TrainSection = TrainSection()
    finetune: FinetuneSection = FinetuneSection()
    eval: EvalSection = EvalSection()


SECTIONS: dict[str, type] = {
    "data": DataSection,
    "scenes": SceneSpec,
    "detector": DetectorSection,
    "train": TrainSection,
    "finetune": FinetuneSection,
    "eval": EvalSection,
}


def _value(key: str, value: Any, hint: str) -> Any:
    optional = hint.endswith(" | None")
    kind = hint.removesuffix(" | None")
    if isinstance(value, str) and kind != "str":  # a --set value arrives as text: read it as YAML
        try:
            value = read_yaml(value)
        except yaml.YAMLError:
            raise ConfigError(f"{key} = {value!r} is not a YAML value; write lists as [1, 5]") from None
    if value is None and optional:
        return None
    if kind.startswith("list["):
        item = kind[5:-1]
        if not isinstance(value, list) or not value:
            raise ConfigError(f"{key} = {value!r} is not a non-empty list of {item}")
        return [_value(f"{key}[{i}]", v, item) for i, v in enumerate(value)]
    allowed = _KINDS[kind]
    if not isinstance(value, allowed) or (kind != "bool" and isinstance(value, bool)):
        raise ConfigError(f"{key} = {value!r} is not a {kind}")
    if kind == "float":
        number = float(typing.cast(float, value))
        if not math.isfinite(number):
            raise ConfigError(f"{key} = {value!r} is not a finite number")
        return number
    return str(value) if kind == "str" else value


def _section(cls: type, raw: Any, prefix: str) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix} must be a mapping of keys to values, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            raise ConfigError(f"unknown key '{prefix}.{key}'; allowed: {', '.join(sorted(fields))}")
    values = {k: _value(f"{prefix}.{k}", v, str(fields[k].type)) for k, v in raw.items()}
    try:
        return cls(**values)
    except ValueError as err:
        raise ConfigError(f"{prefix}: {err}") from None


def detect_config_from_dict(raw: Any, *, source: str = "config") -> DetectConfig:
    """A checked :class:`DetectConfig` from a parsed YAML mapping (``source`` names it in errors)."""
    if not isinstance(raw, dict) or raw.get("task") != TASK:
        raise ConfigError(f"{source} is not a detection config (it needs task: {TASK})")
    fields = {f.name: f for f in dataclasses.fields(DetectConfig)}
    try:
        for key in raw:
            if key not in fields:
                raise ConfigError(f"unknown key '{key}'; allowed: {', '.join(sorted(fields))}")
        values = {
            key: _section(SECTIONS[key], value, key)
            if key in SECTIONS
            else _value(key, value, str(fields[key].type))
            for key, value in raw.items()
        }
        cfg = DetectConfig(**values)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
    if cfg.detector.backbone not in ("conv4", "resnet12"):
        raise ConfigError(
            f"{source}: detector.backbone = {cfg.detector.backbone!r}; choose conv4 or resnet12"
        )
    if min(cfg.train.steps, cfg.train.batch_size, cfg.eval.samples, *cfg.eval.shots) < 1:
        raise ConfigError(f"{source}: train.steps, batch_size, eval.samples and eval.shots must be >= 1")
    if cfg.eval.split not in ("val", "test"):
        raise ConfigError(f"{source}: eval.split = {cfg.eval.split!r}; choose val or test")
    return cfg


def is_detection_config(path: str | Path) -> bool:
    """Whether a YAML file is a detection config (has ``task: detection``); False for anything unreadable."""
    try:
        raw = read_yaml(Path(path).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return isinstance(raw, dict) and raw.get("task") == TASK


def load_detect_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> DetectConfig:
    """Read, override (``section.key=value``) and check a detection config."""
    raw = read_yaml(Path(path).read_text())
    try:
        raw = apply_overrides(raw, overrides)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    return detect_config_from_dict(raw, source=str(path))


def detect_config_to_dict(cfg: DetectConfig) -> dict[str, Any]:
    """The plain mapping :func:`detect_config_from_dict` reads back to an equal config."""
    return dataclasses.asdict(cfg)
