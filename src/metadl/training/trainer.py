"""The meta-training engine behind ``metadl train``: a config in, a run folder out.

A run folder holds::

    config.yaml            the resolved config (every default spelled out); --resume reads it back
    metrics.csv            one row per iteration: lr, loss, accuracy|mse, val_* on validation rows, and
                           time_s (wall-clock seconds of training so far, summed over resumed sessions)
    learning_curves.png    redrawn at every validation and at the end
    tensorboard/           event files, when the optional tensorboard package is installed
    last.ckpt, best.ckpt   the latest state, and the weights with the best validation score
    model/                 the trained learner saved for use (metadl.load, metadl predict, metadl eval)

Resuming is exact: a checkpoint holds the weights, the optimiser and scheduler, the episode sampler's
generator, every global RNG, the iteration, the best score and the number of ``metrics.csv`` rows, so a
run killed at any moment (even ``kill -9``) and resumed ends with the same weights and the same
``metrics.csv`` (bar its wall-clock ``time_s`` column), bit for bit on the CPU, as a run that was never
interrupted. A time limit (``time_limit``, ``metadl train --time-limit``) ends a session cleanly: the
state is checkpointed, the model saved from the weights so far, and ``--resume`` continues the run
later, with a new limit if wanted. Validation episodes are
a fixed seeded set (the validation sampler is rewound before every validation) and never draw from
the training streams.

Data-parallel training: launched by ``torchrun`` (see :mod:`metadl.training.distributed`), every process
draws the same meta-batch and trains on its shard of the tasks with averaged gradients; only the main
process validates and writes the run folder.
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from metadl.config import (
    Config,
    ConfigError,
    config_diff,
    config_from_dict,
    config_to_dict,
    load_config,
    save_config,
)
from metadl.data.base import FewShotDataset
from metadl.evaluation import EvalResult, evaluate
from metadl.training.build import (
    build_learner,
    build_optimizer,
    build_scheduler,
    input_shape,
    is_regression,
    load_split,
    make_sampler,
    model_spec,
    preprocessing_for,
)
from metadl.training.checkpoint import (
    load_checkpoint,
    remove_stale_temporaries,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from metadl.training.distributed import DistributedContext
from metadl.training.meta import NonFiniteLossError, meta_step
from metadl.training.metrics import MetricsLog, read_metrics
from metadl.training.plots import PLOT_FILE, plot_learning_curves

CONFIG_FILE, LAST, BEST, MODEL_DIR = "config.yaml", "last.ckpt", "best.ckpt", "model"


class RunFolderError(ValueError):
    """The run folder cannot be used as asked (it holds another run, or is not a run)."""


@dataclass
class TrainResult:
    """How the run ended. ``learner`` holds the saved weights (the best validated ones, else the last);
    ``best_*`` are ``None`` without validation. ``iterations`` is how many were done; ``complete`` is
    ``False`` when a time limit stopped the run before ``train.iterations``."""

    run_dir: Path
    learner: nn.Module
    iterations: int
    metric: str
    best_value: float | None
    best_iteration: int | None
    model_dir: Path
    complete: bool = True
    seconds: float = 0.0


def prepare_run(run_dir: Path, cfg: Config | None, *, resume: bool, write: bool = True) -> Config:
    """Check the run folder and return the run's config; a new run's folder and ``config.yaml`` are
    created when ``write``. Resuming with a config requires it to equal the saved one."""
    saved = run_dir / CONFIG_FILE
    if resume:
        if not saved.is_file():
            raise RunFolderError(f"cannot resume: {saved} does not exist (is {run_dir} a run folder?)")
        resumed = load_config(saved)
        if cfg is not None and cfg != resumed:
            raise RunFolderError(
                f"the config differs from the one {run_dir} was started with ({', '.join(config_diff(cfg, resumed))}); "
                "resume without a config (metadl train --resume RUN_DIR) or start a new run"
            )
        return resumed
    if cfg is None:
        raise ValueError("a new run needs a config")
    if run_dir.exists() and any((run_dir / name).exists() for name in (CONFIG_FILE, LAST, "metrics.csv")):
        raise RunFolderError(
            f"{run_dir} already holds a run; continue it with --resume {run_dir} or choose another --out"
        )
    if write:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, saved)
    return cfg


def default_run_dir(config_path: Path | None) -> Path:
    """``runs/<config name>-<date>-<time>`` under the current folder."""
    stem = config_path.stem if config_path is not None else "run"
    return Path("runs") / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"


@dataclass
class RunState:
    """Everything a checkpoint holds: the training objects and the bookkeeping of the loop."""

    cfg: Config
    learner: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    sampler: Any
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
            "config": config_to_dict(self.cfg),
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
        if config_from_dict(ckpt["config"]) != self.cfg:
            raise RunFolderError(f"{source} was written by a different config than the run's {CONFIG_FILE}")
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
        return value < self.best_value if self.metric == "mse" else value > self.best_value


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _validate(
    learner: nn.Module, sampler: Any, start: dict[str, Any], episodes: int, device: torch.device
) -> EvalResult:
    """Score on the fixed validation episodes without touching any training random stream."""
    sampler.load_state_dict(start)  # rewind: the same episodes every time
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        return evaluate(learner, sampler, episodes=episodes, device=device)


def train(
    cfg: Config | None,
    run_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    splits: Mapping[str, FewShotDataset] | None = None,
    distributed: DistributedContext | None = None,
    time_limit: float | None = None,
) -> TrainResult:
    """Meta-train as ``cfg`` says into ``run_dir`` (new), or continue the run in ``run_dir`` (``resume``).

    ``splits`` may hold datasets already loaded, by split name (the rest are loaded from the config).
    ``distributed`` defaults to :meth:`DistributedContext.from_env` (a single process unless launched
    by torchrun), which also resolves the device. ``time_limit`` (seconds of this session) stops the run
    cleanly after the iteration that reaches it: checkpointed, model saved, resumable.

    Raises :class:`NonFiniteLossError` when the meta-loss stops being finite; the last checkpoint, the
    best checkpoint and ``metrics.csv`` then hold the state before the failing iteration.
    """
    run_dir = Path(run_dir)
    cfg = prepare_run(run_dir, cfg, resume=resume, write=False)
    ctx = distributed if distributed is not None else DistributedContext.from_env(cfg.device)
    try:
        ctx.barrier()  # every process has checked the folder before the main one writes into it
        if ctx.is_main:
            if not resume:
                prepare_run(run_dir, cfg, resume=False)
            remove_stale_temporaries(run_dir)
        else:
            progress, log = False, lambda _: None
        return _train(
            cfg,
            run_dir,
            ctx,
            resume=resume,
            progress=progress,
            log=log,
            splits=splits or {},
            time_limit=time_limit,
        )
    finally:
        if distributed is None:
            ctx.close()


def _train(
    cfg: Config,
    run_dir: Path,
    ctx: DistributedContext,
    *,
    resume: bool,
    progress: bool,
    log: Callable[[str], None],
    splits: Mapping[str, FewShotDataset],
    time_limit: float | None,
) -> TrainResult:
    if time_limit is not None and time_limit <= 0:
        raise ValueError(f"time_limit={time_limit}; give a positive number of seconds, or None for no limit")
    started = time.monotonic()
    t, device, main = cfg.train, ctx.device, ctx.is_main
    _seed_everything(cfg.seed)

    def split(name: str) -> FewShotDataset | None:
        given = splits.get(name)
        return given if given is not None else load_split(cfg, name)

    train_data = split(cfg.dataset.split)
    x_shape = input_shape(cfg, train_data)
    learner = build_learner(cfg, x_shape).to(device)
    optimizer = build_optimizer(cfg, learner.parameters())
    run = RunState(
        cfg,
        learner,
        optimizer,
        build_scheduler(cfg, optimizer),
        make_sampler(cfg, cfg.dataset.split, cfg.seed, dataset=train_data),
        x_shape,
        "mse" if is_regression(cfg) else "accuracy",
    )
    validating = main and cfg.dataset.val_split is not None and t.val_every > 0
    if validating:
        val_split = cfg.dataset.val_split
        val_sampler = make_sampler(cfg, val_split, cfg.seed, dataset=split(val_split), shape=cfg.eval_shape())
        val_start = val_sampler.state_dict()
    if resume and (run_dir / LAST).exists():
        run.restore(load_checkpoint(run_dir / LAST), run_dir / LAST)
        log(f"resuming {run_dir} at iteration {run.iteration} of {t.iterations}")
    elif resume:
        log(f"{run_dir} has no checkpoint yet; starting it from iteration 0")
    ctx.broadcast_parameters(learner)
    metric = run.metric
    columns = _metrics_columns(run_dir, metric, resume=resume)
    metrics = MetricsLog(run_dir, columns, keep_rows=run.metrics_rows) if main else None
    bar = tqdm(
        total=t.iterations, initial=run.iteration, desc="meta-train", disable=not progress, dynamic_ncols=True
    )
    it = run.iteration + 1
    out_of_time = False
    try:
        while run.iteration < t.iterations and not out_of_time:
            it = run.iteration + 1
            batch = ctx.shard(run.sampler.sample_batch(cfg.sampler.meta_batch)).to(device)
            lr = optimizer.param_groups[0]["lr"]
            out = meta_step(learner, batch, optimizer, grad_clip=t.grad_clip, distributed=ctx)
            loss = ctx.reduce_mean(out.loss.item())
            if not math.isfinite(loss):  # learners with their own outer step (Reptile) are checked here
                raise NonFiniteLossError(f"meta-loss is {loss}")
            run.scheduler.step()
            run.iteration = it
            row: dict[str, Any] = {
                "iteration": it,
                "lr": lr,
                "loss": loss,
                metric: ctx.reduce_mean(float(out.per_task_metric.mean())),
            }
            run.recent.append((loss, row[metric]))
            session = time.monotonic() - started
            out_of_time = time_limit is not None and ctx.any_process(session >= time_limit)
            if "time_s" in columns:
                row["time_s"] = round(run.seconds + session, 3)
            validated = validating and (it % t.val_every == 0 or it == t.iterations)
            if validated:
                result = _validate(learner, val_sampler, val_start, t.val_episodes, device)
                row[f"val_{metric}"], row["val_ci95"] = result.mean, result.ci95
                if run.improves(result.mean):
                    run.best_value, run.best_iteration = result.mean, it
                    save_checkpoint(run_dir / BEST, run.weights())
            checkpointing = (
                (t.checkpoint_every and it % t.checkpoint_every == 0) or it == t.iterations or out_of_time
            )
            if checkpointing and not all(bool(p.isfinite().all()) for p in learner.parameters()):
                raise NonFiniteLossError(f"the parameters are no longer finite after a meta-loss of {loss}")
            if metrics is not None:
                metrics.append(row)
                run.metrics_rows = metrics.rows
                if checkpointing:
                    metrics.sync()
                    save_checkpoint(run_dir / LAST, run.full(time.monotonic() - started))
                if validated:
                    plot_learning_curves(read_metrics(metrics.path), run_dir / PLOT_FILE, title=run_dir.name)
            bar.update(1)
            if progress:
                bar.set_postfix(_postfix(run), refresh=False)
    except NonFiniteLossError as err:
        if metrics is not None:
            metrics.sync()
        last = (
            f"{run_dir / LAST} (iteration {load_checkpoint(run_dir / LAST)['iteration']})"
            if (run_dir / LAST).exists()
            else "none (no checkpoint was written yet)"
        )
        raise NonFiniteLossError(
            f"stopped at iteration {it}: {err}. The last good checkpoint is {last}; start again with "
            f"the fix, or retry from that checkpoint with --resume {run_dir}"
        ) from None
    finally:
        if metrics is not None:
            metrics.close()
        bar.close()

    ctx.barrier()
    seconds = run.seconds + time.monotonic() - started
    if out_of_time and run.iteration < t.iterations:
        log(
            f"time limit reached after {run.iteration} of {t.iterations} iterations; "
            f"continue with: metadl train --resume {run_dir}"
        )
    model_dir = run_dir / MODEL_DIR
    if main:
        plot_learning_curves(read_metrics(run_dir / "metrics.csv"), run_dir / PLOT_FILE, title=run_dir.name)
        if run.best_iteration is not None:
            learner.load_state_dict(load_checkpoint(run_dir / BEST)["model"])
            log(
                f"best validation {metric} {run.best_value:.4f} at iteration {run.best_iteration}; saving those weights"
            )
        model_dir = _save_for_use(
            cfg, learner, x_shape, run_dir, run.iteration, run.best_iteration, run.best_value, metric
        )
    # The other processes wait for the main one to finish writing: leaving the Gloo group while a peer
    # is still connected aborts the process ("terminate called without an active exception").
    ctx.barrier()
    return TrainResult(
        run_dir,
        learner,
        run.iteration,
        metric,
        run.best_value,
        run.best_iteration,
        model_dir,
        complete=run.iteration >= t.iterations,
        seconds=seconds,
    )


def _metrics_columns(run_dir: Path, metric: str, *, resume: bool) -> list[str]:
    """The ``metrics.csv`` columns; a run started by an older version without ``time_s`` keeps its own."""
    columns = ["iteration", "lr", "loss", metric, f"val_{metric}", "val_ci95", "time_s"]
    path = run_dir / "metrics.csv"
    if resume and path.is_file():
        with open(path) as f:
            header = f.readline().strip().split(",")
        if header == columns[:-1]:
            return header
    return columns


def _postfix(run: RunState) -> dict[str, str]:
    """Progress-bar figures: running means over the last 50 iterations and the best validation score."""
    short = run.metric[:3]
    out = {
        "loss": f"{np.mean([r[0] for r in run.recent]):.3f}",
        short: f"{np.mean([r[1] for r in run.recent]):.3f}",
    }
    if run.best_value is not None:
        out[f"best val {short}"] = f"{run.best_value:.3f}"
    return out


def _save_for_use(
    cfg: Config,
    learner: nn.Module,
    x_shape: tuple[int, ...],
    run_dir: Path,
    iterations: int,
    best_iteration: int | None,
    best_value: float | None,
    metric: str,
) -> Path:
    from metadl.saving import save_model

    metadata = {
        "config": config_to_dict(cfg),
        "x_shape": list(x_shape),
        "checkpoint": BEST if best_iteration is not None else LAST,
        "iteration": best_iteration if best_iteration is not None else iterations,
        f"val_{metric}": best_value,
    }
    return save_model(
        run_dir / MODEL_DIR,
        learner,
        spec=model_spec(cfg, x_shape),
        preprocessing=preprocessing_for(cfg, x_shape),
        metadata=metadata,
    )


def load_trained(
    path: str | Path, *, checkpoint: str = "best", device: str | torch.device = "cpu"
) -> tuple[Config, nn.Module, dict[str, Any]]:
    """The config and the trained learner of a run folder (``best`` falls back to ``last``) or a ``.ckpt`` file.

    Returns ``(config, learner in eval mode, info)`` with ``info`` the checkpoint's ``iteration`` and file.
    """
    path = Path(path)
    if path.is_dir():
        if checkpoint not in ("best", "last"):
            raise ValueError(f"checkpoint={checkpoint!r}; choose 'best' or 'last'")
        candidates = [path / BEST, path / LAST] if checkpoint == "best" else [path / LAST]
        file = next((c for c in candidates if c.is_file()), None)
        if file is None:
            raise RunFolderError(
                f"{path} holds no {' or '.join(c.name for c in candidates)}; is it a run folder?"
            )
    else:
        file = path
    ckpt = load_checkpoint(file)
    try:
        cfg = config_from_dict(ckpt["config"], source=str(file))
    except ConfigError as err:
        raise RunFolderError(f"{file}: its config no longer validates ({err})") from None
    with torch.random.fork_rng(devices=[]):
        learner = build_learner(cfg, tuple(ckpt["x_shape"]))
    learner.load_state_dict(ckpt["model"])
    learner.to(device).eval()
    return cfg, learner, {"checkpoint": str(file), "iteration": ckpt["iteration"]}


def resumed_config(run_dir: str | Path) -> Config:
    """The config a run folder was started with."""
    return load_config(Path(run_dir) / CONFIG_FILE)
