"""The meta-training engine behind ``metadl train``: a config in, a run folder out.

A run folder holds::

    config.yaml            the resolved config (every default spelled out); --resume reads it back
    metrics.csv            one row per iteration: lr, loss, accuracy|mse, and val_* on validation rows
    learning_curves.png    redrawn at every validation and at the end
    tensorboard/           event files, when the optional tensorboard package is installed
    last.ckpt, best.ckpt   the latest state, and the weights with the best validation score
    model/                 the trained learner saved for use (metadl.load, metadl predict, metadl eval)

Resuming is exact: a checkpoint holds the weights, the optimiser and scheduler, the episode sampler's
generator, every global RNG, the iteration, the best score and the number of ``metrics.csv`` rows, so a
run killed at any moment (even ``kill -9``) and resumed ends with the same weights and the same
``metrics.csv``, bit for bit on the CPU, as a run that was never interrupted. Validation episodes are
a fixed seeded set (the validation sampler is rewound before every validation) and never draw from
the training streams.
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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
    resolve_device,
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
from metadl.training.meta import NonFiniteLossError, meta_step
from metadl.training.metrics import MetricsLog, read_metrics
from metadl.training.plots import PLOT_FILE, plot_learning_curves

CONFIG_FILE, LAST, BEST, MODEL_DIR = "config.yaml", "last.ckpt", "best.ckpt", "model"


class RunFolderError(ValueError):
    """The run folder cannot be used as asked (it holds another run, or is not a run)."""


@dataclass
class TrainResult:
    """How the run ended. ``learner`` holds the saved weights (the best validated ones, else the last);
    ``best_*`` are ``None`` without validation."""

    run_dir: Path
    learner: nn.Module
    iterations: int
    metric: str
    best_value: float | None
    best_iteration: int | None
    model_dir: Path


def prepare_run(run_dir: Path, cfg: Config | None, *, resume: bool) -> Config:
    """Create a new run folder holding ``config.yaml``, or read the config of the run to resume.

    Resuming with a config (``metadl train CONFIG --resume RUN``) requires it to equal the saved one.
    """
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
        raise RunFolderError(f"{run_dir} already holds a run; continue it with --resume {run_dir} or choose another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, saved)
    return cfg


def default_run_dir(config_path: Path | None) -> Path:
    """``runs/<config name>-<date>-<time>`` under the current folder."""
    stem = config_path.stem if config_path is not None else "run"
    return Path("runs") / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _validate(learner: nn.Module, sampler: Any, start: dict[str, Any], episodes: int, device: torch.device) -> EvalResult:
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
) -> TrainResult:
    """Meta-train as ``cfg`` says into ``run_dir`` (new), or continue the run in ``run_dir`` (``resume``).

    ``splits`` may hold datasets already loaded, by split name (the rest are loaded from the config).

    Raises :class:`NonFiniteLossError` when the meta-loss stops being finite; the last checkpoint, the
    best checkpoint and ``metrics.csv`` then hold the state before the failing iteration.
    """
    run_dir = Path(run_dir)
    cfg = prepare_run(run_dir, cfg, resume=resume)
    remove_stale_temporaries(run_dir)
    device = resolve_device(cfg.device)
    t = cfg.train
    metric = "mse" if is_regression(cfg) else "accuracy"
    _seed_everything(cfg.seed)

    def split(name: str) -> FewShotDataset | None:
        given = (splits or {}).get(name)
        return given if given is not None else load_split(cfg, name)

    train_data = split(cfg.dataset.split)
    validating = cfg.dataset.val_split is not None and t.val_every > 0
    x_shape = input_shape(cfg, train_data)
    learner = build_learner(cfg, x_shape).to(device)
    optimizer = build_optimizer(cfg, learner.parameters())
    scheduler = build_scheduler(cfg, optimizer)
    sampler = make_sampler(cfg, cfg.dataset.split, cfg.seed, dataset=train_data)
    if validating:
        val_split = cfg.dataset.val_split
        val_sampler = make_sampler(cfg, val_split, cfg.seed, dataset=split(val_split), shape=cfg.eval_shape())
        val_start = val_sampler.state_dict()

    start, rows, best_value, best_iteration = 0, 0, None, None
    if resume and (run_dir / LAST).exists():
        ckpt = load_checkpoint(run_dir / LAST)
        if config_from_dict(ckpt["config"]) != cfg:
            raise RunFolderError(f"{run_dir / LAST} was written by a different config than {run_dir / CONFIG_FILE}")
        learner.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        sampler.load_state_dict(ckpt["sampler"])
        set_rng_state(ckpt["rng"])
        start, rows = ckpt["iteration"], ckpt["metrics_rows"]
        best_value, best_iteration = ckpt["best_value"], ckpt["best_iteration"]
        log(f"resuming {run_dir} at iteration {start} of {t.iterations}")
    elif resume:
        log(f"{run_dir} has no checkpoint yet; starting it from iteration 0")
    metrics = MetricsLog(run_dir, ["iteration", "lr", "loss", metric, f"val_{metric}", "val_ci95"], keep_rows=rows)

    def state(iteration: int, with_training_state: bool) -> dict[str, Any]:
        out = {"iteration": iteration, "model": learner.state_dict(), "x_shape": list(x_shape),
               "config": config_to_dict(cfg), "metric": metric, "best_value": best_value, "best_iteration": best_iteration}
        if with_training_state:
            out.update(optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(), sampler=sampler.state_dict(),
                       rng=rng_state(), metrics_rows=metrics.rows)
        return out

    better = (lambda a, b: a < b) if metric == "mse" else (lambda a, b: a > b)
    recent: deque[tuple[float, float]] = deque(maxlen=50)
    bar = tqdm(total=t.iterations, initial=start, desc="meta-train", disable=not progress, dynamic_ncols=True)
    it = start
    try:
        for it in range(start + 1, t.iterations + 1):
            batch = sampler.sample_batch(cfg.sampler.meta_batch).to(device)
            lr = optimizer.param_groups[0]["lr"]
            out = meta_step(learner, batch, optimizer, grad_clip=t.grad_clip)
            loss = out.loss.item()
            if not math.isfinite(loss):  # learners with their own outer step (Reptile) are checked here
                raise NonFiniteLossError(f"meta-loss is {loss}")
            scheduler.step()
            row: dict[str, Any] = {"iteration": it, "lr": lr, "loss": loss, metric: float(out.per_task_metric.mean())}
            recent.append((loss, row[metric]))
            validated = validating and (it % t.val_every == 0 or it == t.iterations)
            if validated:
                result = _validate(learner, val_sampler, val_start, t.val_episodes, device)
                row[f"val_{metric}"], row["val_ci95"] = result.mean, result.ci95
                if best_value is None or better(result.mean, best_value):
                    best_value, best_iteration = result.mean, it
                    save_checkpoint(run_dir / BEST, state(it, with_training_state=False))
            metrics.append(row)
            if (t.checkpoint_every and it % t.checkpoint_every == 0) or it == t.iterations:
                if not all(bool(p.isfinite().all()) for p in learner.parameters()):
                    raise NonFiniteLossError(f"the parameters are no longer finite after a meta-loss of {loss}")
                metrics.sync()
                save_checkpoint(run_dir / LAST, state(it, with_training_state=True))
            if validated:
                plot_learning_curves(read_metrics(metrics.path), run_dir / PLOT_FILE, title=str(run_dir.name))
            bar.update(1)
            if progress:
                postfix = {"loss": f"{np.mean([r[0] for r in recent]):.3f}", metric[:3]: f"{np.mean([r[1] for r in recent]):.3f}"}
                if best_value is not None:
                    postfix[f"best val {metric[:3]}"] = f"{best_value:.3f}"
                bar.set_postfix(postfix, refresh=False)
    except NonFiniteLossError as err:
        metrics.sync()
        where = f"{run_dir / LAST} (iteration {load_checkpoint(run_dir / LAST)['iteration']})" if (run_dir / LAST).exists() \
            else "none (no checkpoint was written yet)"
        raise NonFiniteLossError(
            f"stopped at iteration {it}: {err}. The last good checkpoint is {where}; start again with the fix, "
            f"or retry from that checkpoint with --resume {run_dir}"
        ) from None
    finally:
        metrics.close()
        bar.close()

    plot_learning_curves(read_metrics(metrics.path), run_dir / PLOT_FILE, title=str(run_dir.name))
    if best_iteration is not None:
        learner.load_state_dict(load_checkpoint(run_dir / BEST)["model"])
        log(f"best validation {metric} {best_value:.4f} at iteration {best_iteration}; saving those weights")
    model_dir = _save_for_use(cfg, learner, x_shape, run_dir, best_iteration, best_value, metric)
    return TrainResult(run_dir, learner, t.iterations, metric, best_value, best_iteration, model_dir)


def _save_for_use(cfg: Config, learner: nn.Module, x_shape: tuple[int, ...], run_dir: Path,
                  best_iteration: int | None, best_value: float | None, metric: str) -> Path:
    from metadl.saving import save_model

    metadata = {
        "config": config_to_dict(cfg),
        "x_shape": list(x_shape),
        "checkpoint": BEST if best_iteration is not None else LAST,
        "iteration": best_iteration if best_iteration is not None else cfg.train.iterations,
        f"val_{metric}": best_value,
    }
    return save_model(run_dir / MODEL_DIR, learner, spec=model_spec(cfg, x_shape),
                      preprocessing=preprocessing_for(cfg, x_shape), metadata=metadata)


def load_trained(path: str | Path, *, checkpoint: str = "best", device: str | torch.device = "cpu") -> tuple[Config, nn.Module, dict[str, Any]]:
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
            raise RunFolderError(f"{path} holds no {' or '.join(c.name for c in candidates)}; is it a run folder?")
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

