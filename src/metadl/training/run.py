"""One meta-training run as an object whose steps have names: setup, step, validate, checkpoint, finish.

:meth:`TrainingRun.setup` builds everything a config asks for (data, learner, optimizer, samplers) and,
when resuming, restores the last checkpoint; :meth:`TrainingRun.run` then repeats :meth:`step` (one
meta-update and its ``metrics.csv`` row), :meth:`validate` and :meth:`checkpoint` when they are due, and
ends with :meth:`finish` (the best weights saved for use). An application with its own config or
metric builds a :class:`RunState` (with its :class:`~metadl.training.runconfig.RunConfig`) and a
:class:`Validator` itself and hands them to the constructor (the text app does:
:mod:`metadl.apps.text.run`).

Resuming is exact: a checkpoint holds the weights, the optimiser and scheduler, the episode sampler's
generator, every global RNG, the iteration, the best score and the number of ``metrics.csv`` rows, so a
run killed at any moment (even ``kill -9``) and resumed ends with the same weights and the same
``metrics.csv`` (bar its wall-clock ``time_s`` column), bit for bit on the CPU, as a run that was never
interrupted. Validation episodes are a fixed seeded set (the validation sampler is rewound before every
validation) and never draw from the training streams. Nothing non-finite is ever saved: every
floating tensor of the state (parameters, buffers, optimizer moments) is checked before each save.
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from metadl.algorithms import LEARNERS
from metadl.algorithms.base import Learner
from metadl.config import Config, ConfigError
from metadl.data.base import FewShotDataset
from metadl.evaluation import EvalResult, evaluate
from metadl.tasks import TaskKind, TaskSource
from metadl.training.build import (
    build_learner,
    build_optimizer,
    build_scheduler,
    input_shape,
    load_split,
    make_sampler,
)
from metadl.training.checkpoint import (
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from metadl.training.distributed import DistributedContext
from metadl.training.generated import training_source
from metadl.training.meta import NonFiniteLossError, check_trainable, meta_step
from metadl.training.metrics import MetricsLog, read_metrics
from metadl.training.plots import PLOT_FILE, plot_learning_curves
from metadl.training.runconfig import CoreRunConfig, RunConfig
from metadl.training.runfolder import BEST, LAST, RunFolder, RunFolderError
from metadl.training.stopping import StopRequests
from metadl.validation import non_finite_tensors

LOWER_IS_BETTER = frozenset({"mse", "rmse", "mae", "loss"})
METRICS: dict[TaskKind, str] = {"classification": "accuracy", "regression": "mse"}  # the score per task kind


class Validator(Protocol):
    """Scores the learner on fixed validation data; the same result every time for the same weights."""

    def __call__(self, learner: Learner) -> EvalResult: ...


@dataclass
class EpisodeValidator:
    """Mean score on the same seeded validation episodes every time, without touching any training stream."""

    sampler: TaskSource
    episodes: int
    device: torch.device
    start: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.start = self.sampler.state_dict()

    def __call__(self, learner: Learner) -> EvalResult:
        self.sampler.load_state_dict(self.start)  # rewind: the same episodes every time
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            return evaluate(learner, self.sampler, episodes=self.episodes, device=self.device)


@dataclass
class StepRecord:
    """One iteration's line of ``metrics.csv``: the update's loss and metric, and the validation if one ran."""

    iteration: int
    lr: float
    loss: float
    value: float  # the training metric of this meta-batch (accuracy or mse)
    time_s: float
    validation: EvalResult | None = None

    def row(self, metric: str) -> dict[str, Any]:
        row: dict[str, Any] = {
            "iteration": self.iteration,
            "lr": self.lr,
            "loss": self.loss,
            metric: self.value,
            "time_s": round(self.time_s, 3),
        }
        if self.validation is not None:
            row[f"val_{metric}"], row["val_ci95"] = self.validation.mean, self.validation.ci95
        return row


@dataclass
class RunState:
    """Everything a checkpoint holds: the training objects and the bookkeeping of the loop.

    ``config`` is the run's config as the loop sees it (:class:`~metadl.training.runconfig.RunConfig`:
    a core config's :class:`~metadl.training.runconfig.CoreRunConfig`, or an application's own)."""

    config: RunConfig
    learner: Learner
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    sampler: TaskSource
    x_shape: tuple[int, ...]
    metric: str
    iteration: int = 0
    best_value: float | None = None
    best_iteration: int | None = None
    metrics_rows: int = 0
    seconds: float = 0.0  # wall-clock training time of the sessions before this one
    recent: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=50))

    def weights(self) -> dict[str, Any]:
        """What ``best.ckpt`` holds: enough to rebuild and evaluate the learner."""
        return {
            "iteration": self.iteration,
            "model": self.learner.state_dict(),
            "x_shape": list(self.x_shape),
            "config": self.config.to_dict(),
            "metric": self.metric,
            "best_value": self.best_value,
            "best_iteration": self.best_iteration,
        }

    def full(self, session_seconds: float) -> dict[str, Any]:
        """What ``last.ckpt`` holds: the weights plus everything needed to continue exactly
        (``session_seconds``: training time of this session so far, added to the earlier sessions')."""
        return {
            **self.weights(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "sampler": self.sampler.state_dict(),
            "rng": rng_state(),
            "metrics_rows": self.metrics_rows,
            "seconds": self.seconds + session_seconds,
        }

    def restore(self, ckpt: dict[str, Any], source: Path) -> None:
        if not self.config.same_as(ckpt["config"]):
            raise RunFolderError(f"{source} was written by a different config than the run's config.yaml")
        self.learner.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.sampler.load_state_dict(ckpt["sampler"])
        set_rng_state(ckpt["rng"])
        self.iteration, self.metrics_rows = ckpt["iteration"], ckpt["metrics_rows"]
        self.best_value, self.best_iteration = ckpt["best_value"], ckpt["best_iteration"]
        self.seconds = float(ckpt.get("seconds", 0.0))  # absent from checkpoints of older versions

    def improves(self, value: float) -> bool:
        if self.best_value is None:
            return True
        return value < self.best_value if self.metric in LOWER_IS_BETTER else value > self.best_value


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


class TrainingRun:
    """A meta-training session on one run folder (see the module docstring).

    Only the main process (``ctx.is_main``) validates and writes files; every process steps.
    ``time_limit`` (seconds of this session) and SIGTERM / SIGINT (``stop``) end the session cleanly
    after the step in progress: checkpointed, model saved, resumable.
    """

    def __init__(
        self,
        state: RunState,
        folder: RunFolder,
        ctx: DistributedContext,
        *,
        validator: Validator | None,
        time_limit: float | None = None,
        stop: StopRequests | None = None,
        progress: bool = True,
        log: Callable[[str], None] = print,
        plots: bool = True,
        resume_command: str | None = None,
    ) -> None:
        if time_limit is not None and not time_limit > 0:
            raise ValueError(
                f"time_limit={time_limit}; give a positive number of seconds, or None for no limit"
            )
        check_trainable(state.learner)
        self.state, self.folder, self.ctx = state, folder, ctx
        self.validator = validator if ctx.is_main else None
        self.time_limit, self.stop = time_limit, stop or StopRequests()
        self.log = log if ctx.is_main else (lambda _: None)
        self.progress = progress and ctx.is_main
        self.plots = plots  # learning_curves.png at validations (off for short tuning trials)
        # how a user continues this run (an application whose runs need their config names it)
        self.resume_command = resume_command or f"metadl train --resume {folder.path}"
        self.started = time.monotonic()
        self.stopped_by: str | None = None  # "time limit", "SIGTERM", "SIGINT"
        self.metrics: MetricsLog | None = None

    @classmethod
    def setup(
        cls,
        cfg: Config,
        folder: RunFolder,
        ctx: DistributedContext,
        *,
        resume: bool,
        splits: Mapping[str, FewShotDataset] | None = None,
        **options: Any,
    ) -> TrainingRun:
        """Build the run a config describes (data first, so a bad root fails before anything is written),
        restoring ``last.ckpt`` when resuming. ``splits`` may hold datasets already loaded, by split name."""
        if not LEARNERS[cfg.learner.name].capabilities.meta_trainable:
            raise ConfigError(
                f"learner.name={cfg.learner.name!r} cannot be meta-trained (it is fitted without gradients); "
                "train a differentiable learner (see `metadl list`) and put this head on its trained backbone"
            )
        seed_everything(cfg.seed)
        given = splits or {}

        def split(name: str) -> FewShotDataset | None:
            return given[name] if given.get(name) is not None else load_split(cfg, name)

        train_data = split(cfg.dataset.split)
        sampler = training_source(cfg, train_data)  # labelled or unsupervised, augmented as configured
        if not sampler.batchable:
            raise ConfigError(
                f"dataset {cfg.dataset.name!r} draws tasks of different sizes, which cannot be meta-batched; "
                "give it a fixed number of support and query examples per task"
            )
        x_shape = input_shape(sampler, train_data)
        learner = build_learner(cfg, x_shape, sampler.kind).to(ctx.device)
        optimizer = build_optimizer(cfg, learner.parameters())
        metric = METRICS[sampler.kind]
        run_config = CoreRunConfig(cfg, x_shape, sampler.kind)
        scheduler = build_scheduler(cfg, optimizer)
        state = RunState(run_config, learner, optimizer, scheduler, sampler, x_shape, metric)
        validator = None
        val_split = cfg.dataset.val_split
        if ctx.is_main and val_split is not None and cfg.train.val_every > 0:
            val_sampler = make_sampler(
                cfg,
                val_split,
                cfg.seed,
                dataset=split(val_split),
                shape=cfg.eval_shape(),
                source=cfg.eval.source,
            )
            validator = EpisodeValidator(val_sampler, cfg.train.val_episodes, ctx.device)
        if resume and folder.last.exists():
            state.restore(load_checkpoint(folder.last), folder.last)
        ctx.broadcast_parameters(learner)
        return cls(state, folder, ctx, validator=validator, **options)

    # -- the loop -----------------------------------------------------------------------------------

    def run(self) -> TrainResult:
        s, loop = self.state, self.state.config.loop
        total = loop.iterations
        attempt = s.iteration + 1
        if s.iteration:
            self.log(f"resuming {self.folder.path} at iteration {s.iteration} of {total}")
        bar = tqdm(
            total=total, initial=s.iteration, desc="meta-train", disable=not self.progress, dynamic_ncols=True
        )
        self.metrics = self._open_metrics()
        try:
            with self.stop:
                while s.iteration < total and self.stopped_by is None:
                    attempt = s.iteration + 1
                    record = self.step()
                    if self._due(loop.val_every) and self.validator is not None:
                        record.validation = self.validate()
                    self._stop_if_asked()
                    if self.metrics is not None:
                        row = record.row(s.metric)
                        self.metrics.append({k: v for k, v in row.items() if k in self.metrics.columns})
                        s.metrics_rows = self.metrics.rows
                    if self._due(loop.checkpoint_every) or self.stopped_by is not None:
                        self.checkpoint()
                    if record.validation is not None:
                        self._plot()
                    bar.update(1)
                    if self.progress:
                        bar.set_postfix(self._postfix(), refresh=False)
        except NonFiniteLossError as err:
            if self.metrics is not None:
                self.metrics.sync()
            raise NonFiniteLossError(f"stopped at iteration {attempt}: {err}. {self._retry_hint()}") from None
        finally:
            if self.metrics is not None:
                self.metrics.close()
            bar.close()
        return self.finish()

    def step(self) -> StepRecord:
        """One meta-update on the next meta-batch (this process's shard of it)."""
        s, ctx, loop = self.state, self.ctx, self.state.config.loop
        batch = ctx.shard(s.sampler.sample_batch(loop.meta_batch)).to(ctx.device)
        lr = float(s.optimizer.param_groups[0]["lr"])
        out = meta_step(s.learner, batch, s.optimizer, grad_clip=loop.grad_clip, distributed=ctx)
        loss = float(ctx.reduce_mean(out.loss.item()))
        if not math.isfinite(loss):  # another process's shard, or a loss that only became inf in the mean
            raise NonFiniteLossError(f"meta-loss is {loss}")
        s.scheduler.step()
        s.iteration += 1
        value = float(ctx.reduce_mean(float(out.per_task_metric.mean())))
        s.recent.append((loss, value))
        return StepRecord(s.iteration, lr, loss, value, time_s=s.seconds + self._session_seconds())

    def validate(self) -> EvalResult:
        """Score on the validation episodes; keep the weights (``best.ckpt``) when they are the best so far."""
        assert self.validator is not None
        s = self.state
        result = self.validator(s.learner)
        if s.improves(result.mean):
            s.best_value, s.best_iteration = result.mean, s.iteration
            self._save(self.folder.best, s.weights())
        return result

    def checkpoint(self) -> None:
        """Write ``last.ckpt`` (and make ``metrics.csv`` durable first: the checkpoint counts its rows)."""
        if self.metrics is None:
            return
        self.metrics.sync()
        self._save(self.folder.last, self.state.full(self._session_seconds()))

    def finish(self) -> TrainResult:
        """Save the learner for use (the best validated weights, else the last) and say how the session ended."""
        s, total = self.state, self.state.config.loop.iterations
        self.ctx.barrier()
        if self.stopped_by is not None and s.iteration < total:
            self.log(
                f"{self.stopped_by}: stopped after {s.iteration} of {total} iterations (checkpointed); "
                f"continue with: {self.resume_command}"
            )
        if self.ctx.is_main:
            self._plot()
            if s.best_iteration is not None:
                s.learner.load_state_dict(load_checkpoint(self.folder.best)["model"])
                self.log(
                    f"best validation {s.metric} {s.best_value:.4f} at iteration {s.best_iteration}; saving those weights"
                )
            self._save_model()
        # The other processes wait for the main one to finish writing: leaving the Gloo group while a peer
        # is still connected aborts the process ("terminate called without an active exception").
        self.ctx.barrier()
        return TrainResult(
            self.folder.path,
            s.learner,
            s.iteration,
            s.metric,
            s.best_value,
            s.best_iteration,
            self.folder.model,
            complete=s.iteration >= total,
            seconds=s.seconds + self._session_seconds(),
            stopped_by=self.stopped_by,
            exit_code=self.stop.exit_code,
        )

    # -- helpers ------------------------------------------------------------------------------------

    def _due(self, every: int) -> bool:
        it = self.state.iteration
        return (every > 0 and it % every == 0) or it == self.state.config.loop.iterations

    def _session_seconds(self) -> float:
        return time.monotonic() - self.started

    def _stop_if_asked(self) -> None:
        """Every process takes the same decision: stop after this step if any of them was asked to."""
        out_of_time = self.time_limit is not None and self._session_seconds() >= self.time_limit
        reason = self.stop.requested or ("time limit reached" if out_of_time else None)
        if self.ctx.any_process(reason is not None):
            self.stopped_by = reason or "stop requested by another process"

    def _save(self, path: Path, state: dict[str, Any]) -> None:
        bad = non_finite_tensors({k: state[k] for k in ("model", "optimizer") if k in state})
        if bad:
            shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
            raise NonFiniteLossError(f"the training state is no longer finite ({shown})")
        save_checkpoint(path, state)

    def _open_metrics(self) -> MetricsLog | None:
        if not self.ctx.is_main:
            return None
        return MetricsLog(
            self.folder.path,
            metrics_columns(self.folder, self.state.metric),
            keep_rows=self.state.metrics_rows,
        )

    def _plot(self) -> None:
        if self.plots and self.ctx.is_main and self.folder.metrics.is_file():
            plot_learning_curves(
                read_metrics(self.folder.metrics), self.folder.path / PLOT_FILE, title=self.folder.path.name
            )

    def _retry_hint(self) -> str:
        last = self.folder.last
        where = (
            f"{last} (iteration {load_checkpoint(last)['iteration']})"
            if last.exists()
            else "none (no checkpoint was written yet)"
        )
        return (
            f"The last good checkpoint is {where}; start again with the fix, or retry from that checkpoint "
            f"with --resume {self.folder.path}"
        )

    def _postfix(self) -> dict[str, str]:
        """Progress-bar figures: running means over the last 50 iterations and the best validation score."""
        s = self.state
        short = s.metric[:3]
        out = {
            "loss": f"{np.mean([r[0] for r in s.recent]):.3f}",
            short: f"{np.mean([r[1] for r in s.recent]):.3f}",
        }
        if s.best_value is not None:
            out[f"best val {short}"] = f"{s.best_value:.3f}"
        return out

    def _save_model(self) -> Path:
        s = self.state  # its weights were checked when their checkpoint was saved (and saving checks again)
        metadata = {
            "checkpoint": BEST if s.best_iteration is not None else LAST,
            "iteration": s.best_iteration if s.best_iteration is not None else s.iteration,
            f"val_{s.metric}": s.best_value,
        }
        return s.config.save_model(self.folder.model, s.learner, metadata)


@dataclass
class TrainResult:
    """How a session ended. ``learner`` holds the saved weights (the best validated ones, else the last);
    ``best_*`` are ``None`` without validation. ``iterations`` is how many were done; ``complete`` is
    ``False`` when a time limit or a signal stopped the run before ``train.iterations`` (``stopped_by``
    says which, and ``exit_code`` is the one a command should end with: 128 + the signal's number)."""

    run_dir: Path
    learner: Learner
    iterations: int
    metric: str
    best_value: float | None
    best_iteration: int | None
    model_dir: Path
    complete: bool = True
    seconds: float = 0.0
    stopped_by: str | None = None
    exit_code: int = 0


def metrics_columns(folder: RunFolder, metric: str) -> list[str]:
    """The ``metrics.csv`` columns; a run started by an older version without ``time_s`` keeps its own."""
    columns = ["iteration", "lr", "loss", metric, f"val_{metric}", "val_ci95", "time_s"]
    if folder.metrics.is_file():
        with open(folder.metrics, encoding="utf-8", errors="replace") as f:
            header = f.readline().strip().split(",")
        if header == columns[:-1]:
            return header
    return columns
