"""A text config's episodic fine-tuning as a session of the core run object, so it is kill-safe and resumable.

:func:`text_run` builds what :class:`~metadl.training.run.TrainingRun` steps: the encoder and the
fine-tunable model (:mod:`metadl.apps.text.finetune`), the episodes of the configured data, AdamW,
and a :class:`~metadl.training.run.RunState` whose config is a :class:`TextRunConfig` (the text config's
YAML mapping as its record; the model saved with :func:`~metadl.apps.text.predict.save_text_model`).
From there the run is the core's: ``last.ckpt`` every ``train.checkpoint_every`` episodes (weights,
AdamW, the episode source's generator, every global random state), SIGTERM / SIGINT / ``--time-limit``
stop it after the episode in progress (checkpointed, model saved), and ``metadl train CONFIG --resume RUN``
continues it exactly (CONFIG: the config it was started with, e.g. ``RUN/config.yaml``, which holds the
``--set`` values): the resumed run ends with the weights of a run never interrupted, bit for bit on the CPU.

The frozen lower layers never change and their outputs are read from the on-disk cache or recomputed
identically, so they hold no state to checkpoint. No validation runs during fine-tuning: the model
saved is the last one (``metrics.csv`` has the training loss and accuracy of every episode).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from metadl.algorithms.base import Learner
from metadl.apps.text.finetune import FinetuneSettings, episode_source, finetunable_model
from metadl.apps.text.model import TextModel
from metadl.apps.text.predict import save_text_model
from metadl.data.text import TextDataset
from metadl.models.text.layers import LowerLayerEncoder
from metadl.tasks.file_source import TaskFileSource
from metadl.training.checkpoint import load_checkpoint
from metadl.training.distributed import DistributedContext
from metadl.training.run import RunState, TrainingRun, seed_everything
from metadl.training.runconfig import LoopSettings
from metadl.training.runfolder import RunFolder


@dataclass(frozen=True)
class TextRunConfig:
    """A text config as the run object sees it (:class:`~metadl.training.runconfig.RunConfig`)."""

    raw: dict[str, Any]  # the YAML mapping, overrides applied: config.yaml and every checkpoint hold it
    settings: FinetuneSettings
    model: TextModel
    held_out: tuple[str, ...] = ()  # ARSC target domains kept out of meta-training
    validation: tuple[str, ...] = ()  # ARSC domains kept out of meta-training to screen settings on

    @property
    def loop(self) -> LoopSettings:
        s = self.settings
        return LoopSettings(s.episodes, s.meta_batch, s.grad_clip, 0, s.checkpoint_every)

    def to_dict(self) -> dict[str, Any]:
        return self.raw

    def same_as(self, saved: Any) -> bool:
        return bool(saved == self.raw)

    def save_model(self, folder: Path, learner: Learner, metadata: dict[str, Any]) -> Path:
        if learner is not self.model.learner:
            raise ValueError("a text run saves the learner of its own model")
        info = {
            "config": self.raw,
            "held_out_domains": list(self.held_out),
            "validation_domains": list(self.validation),
            **metadata,
        }
        return save_text_model(folder, self.model, metadata=info)


def text_run(
    raw: dict[str, Any],
    encoder: LowerLayerEncoder,
    learner: dict[str, Any],
    data: TextDataset | TaskFileSource,
    settings: FinetuneSettings,
    folder: RunFolder,
    *,
    resume: bool,
    held_out: tuple[str, ...] = (),
    validation: tuple[str, ...] = (),
    time_limit: float | None = None,
    progress: bool = True,
) -> TrainingRun:
    """The run of a text config on ``folder``: ``learner`` (``{"name": ..., **kwargs}``) on the top blocks
    above ``encoder``, trained on episodes of ``data``; ``held_out`` and ``validation``: the ARSC domains
    kept out of ``data``, recorded in the saved model; restored from ``last.ckpt`` when ``resume``."""
    seed_everything(settings.seed)
    kwargs = dict(learner)
    model = finetunable_model(encoder, kwargs.pop("name"), n_way=settings.n_way, learner_kwargs=kwargs)
    source = episode_source(model, data, settings)
    trainable = [p for p in model.learner.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=settings.lr, weight_decay=settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    config = TextRunConfig(raw, settings, model, held_out, validation)
    state = RunState(config, model.learner, optimizer, scheduler, source, (encoder.dim,), "accuracy")
    if resume and folder.last.exists():
        state.restore(load_checkpoint(folder.last), folder.last)
    resume_command = f"metadl train {folder.config} --resume {folder.path}"  # the run's own config
    return TrainingRun(
        state,
        folder,
        DistributedContext(),
        validator=None,
        time_limit=time_limit,
        progress=progress,
        resume_command=resume_command,
    )
