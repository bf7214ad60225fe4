"""What the run object (:class:`metadl.training.run.TrainingRun`) needs from a config, whoever wrote it.

The run object steps, validates, checkpoints and stops the same way for every application; what differs
between the core's YAML configs and an application's own (a text config, ``app: text``) is behind
:class:`RunConfig`: the loop's settings (:class:`LoopSettings`), the JSON record of the config kept in
every checkpoint (and compared on resume: a checkpoint written by another config is refused), and how
the trained learner is saved for use. :class:`CoreRunConfig` is the core's.

Example:
    >>> from metadl.config import config_from_dict
    >>> cfg = config_from_dict({"dataset": {"name": "synthetic_glyphs"}, "backbone": {"name": "mlp"},
    ...                         "learner": {"name": "protonet"}, "train": {"iterations": 7}})
    >>> run_config = CoreRunConfig(cfg, (1, 28, 28), "classification")
    >>> run_config.loop.iterations, run_config.same_as(run_config.to_dict())
    (7, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from metadl.algorithms.base import Learner
from metadl.config import Config, ConfigError, config_from_dict, config_to_dict
from metadl.saving import save_model
from metadl.tasks import TaskKind
from metadl.training.build import model_spec, preprocessing_for


@dataclass(frozen=True)
class LoopSettings:
    """``iterations`` meta-updates on meta-batches of ``meta_batch`` tasks, gradients clipped to ``grad_clip``
    (global norm; None: no clipping); validation every ``val_every`` and ``last.ckpt`` every
    ``checkpoint_every`` iterations (0: only at the end), and always at the last one."""

    iterations: int
    meta_batch: int = 1
    grad_clip: float | None = None
    val_every: int = 0
    checkpoint_every: int = 0


class RunConfig(Protocol):
    """A config as the run object sees it (see the module docstring)."""

    @property
    def loop(self) -> LoopSettings: ...

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON: stored in every checkpoint."""
        ...

    def same_as(self, saved: Any) -> bool:
        """Whether ``saved`` (a checkpoint's ``to_dict()``) is this config."""
        ...

    def save_model(self, folder: Path, learner: Learner, metadata: dict[str, Any]) -> Path:
        """Save ``learner`` for use into ``folder`` with ``metadata`` (the checkpoint it came from, ...)."""
        ...


@dataclass(frozen=True)
class CoreRunConfig:
    """A core :class:`~metadl.config.Config` for examples of shape ``x_shape`` and tasks of ``kind``."""

    cfg: Config
    x_shape: tuple[int, ...]
    kind: TaskKind

    @property
    def loop(self) -> LoopSettings:
        train = self.cfg.train
        return LoopSettings(
            train.iterations,
            self.cfg.sampler.meta_batch,
            train.grad_clip,
            train.val_every,
            train.checkpoint_every,
        )

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self.cfg)

    def same_as(self, saved: Any) -> bool:
        try:
            return config_from_dict(saved) == self.cfg
        except ConfigError:
            return False

    def save_model(self, folder: Path, learner: Learner, metadata: dict[str, Any]) -> Path:
        return save_model(
            folder,
            learner,
            spec=model_spec(self.cfg, self.x_shape, self.kind),
            preprocessing=preprocessing_for(self.cfg, self.x_shape),
            metadata={"config": self.to_dict(), "x_shape": list(self.x_shape), **metadata},
        )
