"""Builders: turn a validated :class:`~metadl.config.Config` into data, samplers, a learner and an optimiser.

Pure functions of the config (plus the data they are given), shared by ``metadl train``, ``metadl eval``
and the demo. A task source (generated functions, countries, task files: anything without a
:class:`~metadl.data.base.FewShotDataset`) is built by :func:`make_sampler` through
:mod:`metadl.training.data`; the learner's output (``n_way`` or ``out_features``) follows the source's
``kind``, never its name.
"""

from __future__ import annotations

import inspect
import math
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metadl.algorithms import LEARNERS, Learner, create_learner
from metadl.config import Config, ConfigError, OptimizerConfig
from metadl.data import DATASETS, create_dataset
from metadl.data.base import FewShotDataset
from metadl.data.preprocess import Preprocessing
from metadl.models import BACKBONES, create_backbone
from metadl.tasks import TaskKind, TaskSource, create_task_source
from metadl.training.data import build_source, example_shape, is_task_source


def derive_seed(seed: int, purpose: str) -> int:
    """An independent 32-bit seed per purpose (``"train"``, ``"val"``, ``"test"``, ...) from one seed.

    Splits of generated tasks (sinusoids, step functions) differ only by their seed, so their streams must
    not coincide.

    Example:
        >>> derive_seed(0, "train") == derive_seed(0, "train") != derive_seed(0, "test")
        True
    """
    return int(np.random.SeedSequence([seed, zlib.crc32(purpose.encode())]).generate_state(1)[0])


def load_split(cfg: Config, split: str) -> FewShotDataset | None:
    """One split of the configured dataset; ``None`` for a task source (it reads or generates its own tasks)."""
    return None if is_task_source(cfg) else load_dataset_split(cfg, split)


def load_dataset_split(cfg: Config, split: str) -> FewShotDataset:
    """One split of the configured dataset, which must be one (not a task source).

    A builder without a ``split`` argument (``image_folder``) reads the split from ``root/<split>``.
    """
    ds = cfg.dataset
    if is_task_source(cfg):
        raise ConfigError(
            f"dataset {ds.name!r} is a task source: it has no dataset split to load; use make_sampler"
        )
    kwargs: dict[str, Any] = {
        k: v for k, v in (("root", ds.root), ("image_size", ds.image_size)) if v is not None
    }
    if "split" in inspect.signature(DATASETS[ds.name]).parameters:
        kwargs["split"] = split
    else:
        kwargs["root"] = Path(kwargs["root"]) / split
    return create_dataset(ds.name, **kwargs, **ds.options)


def make_sampler(
    cfg: Config,
    split: str,
    seed: int,
    *,
    dataset: FewShotDataset | None = None,
    shape: tuple[int, int, int] | None = None,
    source: str | None = None,
) -> TaskSource:
    """Tasks of ``split`` seeded by ``(seed, split)``; ``shape`` = (ways, shots, queries), default the sampler's.

    A dataset's split is drawn as episodes by the pool task source ``source`` (default ``sampler.source``:
    random N-way K-shot, or within-alphabet); a task source is built for the split
    (:mod:`metadl.training.data`). ``dataset`` saves loading the split again when the caller has it already.
    """
    s = cfg.sampler
    shape = shape or (s.ways, s.shots, s.queries)
    generator_seed = derive_seed(seed, split)
    if is_task_source(cfg):
        return build_source(cfg, split, generator_seed, shape)
    if dataset is None:
        dataset = load_dataset_split(cfg, split)
    ways, shots, queries = shape
    return create_task_source(
        source or s.source, dataset=dataset, n_way=ways, k_shot=shots, n_query=queries, seed=generator_seed
    )


def input_shape(source: TaskSource, dataset: FewShotDataset | None = None) -> tuple[int, ...]:
    """Shape of one example: the dataset's when given, else read from one of the source's tasks."""
    return tuple(dataset.x_shape) if dataset is not None else example_shape(source)


def backbone_kwargs(cfg: Config, x_shape: tuple[int, ...]) -> dict[str, Any]:
    """The backbone's arguments with the input size filled in from the data where the config leaves it out.

    Images ``(C, H, W)`` give ``in_channels`` and ``image_size``; ``in_features`` is the number of input
    values (a flattened image for an MLP). Only parameters the backbone declares are filled.
    """
    kwargs = dict(cfg.backbone.kwargs)
    params = inspect.signature(BACKBONES[cfg.backbone.name]).parameters
    derived: dict[str, Any] = {"in_features": math.prod(x_shape)}
    if len(x_shape) == 3:
        derived.update(in_channels=x_shape[0], image_size=x_shape[-1])
    for key, value in derived.items():
        if key in params and key not in kwargs and not (key == "in_features" and "vocab_size" in kwargs):
            kwargs[key] = value
    return kwargs


def learner_kwargs(cfg: Config, kind: TaskKind) -> dict[str, Any]:
    """The learner's hyperparameters plus ``n_way`` (classification) or ``out_features=1`` (regression)."""
    kwargs = dict(cfg.learner.kwargs)
    if kind == "classification":
        kwargs["n_way"] = cfg.sampler.ways
    elif LEARNERS[cfg.learner.name].capabilities.regression:
        kwargs["out_features"] = 1
    return kwargs


def build_learner(cfg: Config, x_shape: tuple[int, ...], kind: TaskKind) -> Learner:
    """Backbone + learner as configured (initialised from torch's global RNG: seed it first).

    Example:
        >>> from metadl.config import config_from_dict
        >>> cfg = config_from_dict({"dataset": {"name": "sinusoid"}, "backbone": {"name": "mlp", "hidden": [40, 40]},
        ...                         "learner": {"name": "maml", "inner_lr": 0.01}})
        >>> learner = build_learner(cfg, (1,), "regression")  # MAML's 1-40-40-1 sinusoid network
        >>> type(learner).__name__, sum(p.numel() for p in learner.parameters())
        ('MAML', 1761)
    """
    backbone = create_backbone(cfg.backbone.name, **backbone_kwargs(cfg, x_shape))
    return create_learner(cfg.learner.name, backbone=backbone, **learner_kwargs(cfg, kind))


def model_spec(cfg: Config, x_shape: tuple[int, ...], kind: TaskKind) -> dict[str, dict[str, Any]]:
    """What :func:`metadl.saving.save_model` needs to rebuild the learner: names plus resolved arguments."""
    return {
        "backbone": {"name": cfg.backbone.name, **backbone_kwargs(cfg, x_shape)},
        "learner": {"name": cfg.learner.name, **learner_kwargs(cfg, kind)},
    }


INK_DATASETS = ("omniglot", "synthetic_glyphs")  # bright strokes on a dark background


def preprocessing_for(cfg: Config, x_shape: tuple[int, ...]) -> Preprocessing | None:
    """How raw images must be prepared for a model trained on this data (``None`` for non-images)."""
    if len(x_shape) != 3:
        return None
    channels, size = x_shape[0], x_shape[-1]
    if cfg.dataset.name in INK_DATASETS:
        # Same filter as the Omniglot loader (bilinear unless the config chose another), so a raw PNG
        # given to `metadl predict` becomes what the model saw in training.
        resample = cfg.dataset.options.get("resample", "bilinear")
        return Preprocessing(
            image_size=size, channels=channels, background="dark", fit="pad", resample=resample
        )
    background = "dark" if cfg.dataset.options.get("invert") else None
    return Preprocessing(image_size=size, channels=channels, background=background, resample="bilinear")


def build_optimizer(cfg: Config, params: Any) -> torch.optim.Optimizer:
    o = cfg.optimizer
    if o.name == "adam":
        return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)
    if o.name == "adamw":
        return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)
    return torch.optim.SGD(params, lr=o.lr, weight_decay=o.weight_decay, momentum=o.momentum)


def lr_factor(step: int, o: OptimizerConfig, iterations: int) -> float:
    """Multiplier of the base learning rate at 0-based ``step``: linear warm-up, then the schedule.

    Example:
        >>> o = OptimizerConfig(schedule="cosine", warmup=2)
        >>> [round(lr_factor(s, o, 6), 3) for s in range(6)]
        [0.5, 1.0, 1.0, 0.854, 0.5, 0.146]
    """
    if step < o.warmup:
        return (step + 1) / o.warmup
    after = step - o.warmup
    if o.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * after / max(1, iterations - o.warmup)))
    if o.schedule == "step":
        return o.gamma ** (after // o.step_size)
    return 1.0


def build_scheduler(cfg: Config, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
    """Stepped once per iteration; its state (the step count) goes into checkpoints."""
    o, total = cfg.optimizer, cfg.train.iterations
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, o, total))
