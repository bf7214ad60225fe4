"""``metadl demo``: meta-train a few-shot learner on the embedded synthetic glyphs and evaluate it.

No download, a few minutes on 2 CPU cores: the experiment is the shipped config ``demo`` (a
ProtoNet with a Conv-4 backbone meta-trained on 20-way 1-shot episodes of the training glyph classes),
run by the training engine (:func:`metadl.training.trainer.train`), then scored on 5-way 1-shot
episodes of held-out glyph classes, reported as mean accuracy with its 95% confidence interval.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from metadl.config import load_config, shipped_config
from metadl.evaluation import EvalResult
from metadl.evaluation.run import evaluate_config
from metadl.training.build import load_dataset_split
from metadl.training.trainer import train


@dataclass(frozen=True)
class DemoSettings:
    """Changes to the shipped ``demo`` config (``None``: as in the file: 600 iterations, 600 episodes, seed 0).

    ``seed`` sets the glyphs, the initialisation and the training and test episodes.
    """

    iterations: int | None = None
    eval_episodes: int | None = None
    seed: int | None = None


def demo_overrides(settings: DemoSettings) -> list[str]:
    """``KEY=VALUE`` overrides of the demo config for these settings.

    Example:
        >>> demo_overrides(DemoSettings(iterations=3, seed=1))
        ['train.iterations=3', 'seed=1', 'dataset.seed=1', 'eval.seed=1']
    """
    out = []
    if settings.iterations is not None:
        out.append(f"train.iterations={settings.iterations}")
    if settings.eval_episodes is not None:
        out.append(f"eval.episodes={settings.eval_episodes}")
    if settings.seed is not None:
        out += [f"{key}={settings.seed}" for key in ("seed", "dataset.seed", "eval.seed")]
    return out


def run_demo(
    settings: DemoSettings = DemoSettings(),
    *,
    progress: bool = True,
    log: Callable[[str], None] = print,
    out: str | Path | None = None,
) -> EvalResult:
    """Train and evaluate as described in the module docstring; returns the test result.

    ``out`` keeps the run folder (checkpoints, metrics, plots, saved model); by default it is temporary.
    """
    start = time.perf_counter()
    cfg = load_config(shipped_config("demo"), demo_overrides(settings))
    ds, s = cfg.dataset, cfg.sampler
    splits = {
        name: load_dataset_split(cfg, name)
        for name in (ds.split, ds.val_split, cfg.eval.split)
        if name is not None
    }
    train_data, test_data = splits[ds.split], splits[cfg.eval.split]
    log(
        f"synthetic glyphs: {train_data.num_classes} training classes, {test_data.num_classes} held-out test classes, "
        f"{int(train_data.class_counts[0])} examples each, {train_data.x_shape} ({time.perf_counter() - start:.1f} s)"
    )
    log(
        f"meta-training {cfg.learner.name} ({cfg.backbone.name}) on {s.ways}-way {s.shots}-shot "
        f"episodes for {cfg.train.iterations} iterations"
    )
    with tempfile.TemporaryDirectory(prefix="metadl-demo-") as tmp:
        run = train(
            cfg,
            Path(out) if out is not None else Path(tmp) / "run",
            progress=progress,
            log=log,
            splits=splits,
        )
        result = evaluate_config(cfg, run.learner, dataset=test_data, progress=progress)
    ways, shots, _ = cfg.eval_shape()
    log(
        f"{ways}-way {shots}-shot on held-out classes: {result} "
        f"(chance {100 / ways:.0f}%), total {time.perf_counter() - start:.0f} s"
    )
    if out is not None:
        log(f"model saved to {run.model_dir} (metadl predict {run.model_dir} --support DIR --query DIR)")
    return result
