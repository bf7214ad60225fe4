"""``metadl train`` on a detection config: base training in a locked run folder, kill-safe and resumable.

Why not :class:`metadl.training.run.TrainingRun`: that run object is built around episodes (a task
sampler, a ``Learner`` whose ``forward(batch)`` returns a meta-loss, episodic validation). A detector
trains on images with boxes, so detection has its own small loop (:class:`.fit.DetectorTrainer`) and
reuses the run-folder machinery around it: :class:`~metadl.training.runfolder.RunFolder` (layout and
``flock``), sha256-checked atomic checkpoints (:mod:`metadl.training.checkpoint`) and
:func:`metadl.fileio.atomic_write_bytes`. The run folder holds ``config.yaml``, ``metrics.csv``
(``step, loss, time_s``, rewritten with each checkpoint so it always matches it), ``last.ckpt`` and
``model/detector.ckpt``; the benchmark is generated into ``RUN/scenes`` unless ``data.folder`` names
one. A run cut by ``--time-limit`` (or killed) continues with ``--resume`` to the same weights.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from metadl.apps.detect.config import DetectConfig, detect_config_to_dict, load_detect_config
from metadl.apps.detect.experiment import BenchmarkData, tensors
from metadl.apps.detect.model import SavedDetector, save_detector
from metadl.config import ConfigError
from metadl.data.detection.scenes import generate_scenes
from metadl.data.omniglot import load_omniglot_characters
from metadl.fileio import atomic_write_bytes
from metadl.models.detection import CenterNetDetector, DetectorSpec, DetectorTrainer, FitSettings
from metadl.training.checkpoint import load_checkpoint, save_checkpoint
from metadl.training.runfolder import RunFolder, RunFolderError
from metadl.validation import read_json


@dataclass(frozen=True)
class DetectTrainResult:
    """Where the run is, how far it got, and whether the time limit stopped it (``--resume`` continues)."""

    run_dir: Path
    model_dir: Path
    steps_done: int
    stopped: bool


def benchmark_folder(cfg: DetectConfig, run_dir: Path) -> Path:
    """``data.folder`` if set, else ``RUN/scenes``."""
    return Path(cfg.data.folder) if cfg.data.folder else run_dir / "scenes"


def ensure_benchmark(cfg: DetectConfig, folder: Path) -> BenchmarkData:
    """The benchmark in ``folder``, generated from Omniglot (``data.root``) when absent; a folder
    generated from another spec is refused."""
    split = folder / "split.json"
    if split.is_file():
        found = read_json(split).get("spec")
        if found != dataclasses.asdict(cfg.scenes):
            raise ConfigError(
                f"{folder} holds scenes generated from another spec; remove it or set data.folder"
            )
    else:
        chars = load_omniglot_characters(cfg.data.root, image_size=cfg.scenes.max_size, progress=False)
        generate_scenes(chars, cfg.scenes, folder)
    return BenchmarkData.open(folder)


def detector_spec(cfg: DetectConfig, n_classes: int) -> DetectorSpec:
    d = cfg.detector
    return DetectorSpec(n_classes=n_classes, backbone=d.backbone, hidden=d.hidden, dim=d.dim, in_channels=1)


def fit_settings(cfg: DetectConfig) -> FitSettings:
    t = cfg.train
    return FitSettings(
        steps=t.steps, batch_size=t.batch_size, lr=t.lr, weight_decay=t.weight_decay, seed=cfg.seed
    )


def _write_metrics(folder: RunFolder, losses: list[float], times: list[float]) -> None:
    rows = ["step,loss,time_s"] + [
        f"{i},{loss:.6f},{t:.2f}" for i, (loss, t) in enumerate(zip(losses, times, strict=True), 1)
    ]
    atomic_write_bytes(folder.metrics, ("\n".join(rows) + "\n").encode())


def _start(cfg: DetectConfig | None, folder: RunFolder, resume: bool) -> DetectConfig:
    if resume:
        if not folder.last.is_file():
            raise RunFolderError(f"{folder.path} has no last.ckpt to resume from; start a new run with --out")
        return load_detect_config(folder.config)
    if cfg is None:
        raise ConfigError("give a detection config to start a run")
    if folder.holds_run() and folder.history():
        raise RunFolderError(
            f"{folder.path} already holds a run ({', '.join(folder.history())}); use --resume or another --out"
        )
    return cfg


def train_detection(
    cfg: DetectConfig | None, run_dir: str | Path, *, resume: bool = False, time_limit: float | None = None,
    progress: bool = True,
) -> DetectTrainResult:  # fmt: skip
    """Base-train the detector of ``cfg`` in ``run_dir`` (or continue the run there, ``resume=True``)."""
    folder = RunFolder(Path(run_dir))
    cfg = _start(cfg, folder, resume)
    with folder.lock():
        if not resume:
            atomic_write_bytes(
                folder.config, yaml.safe_dump(detect_config_to_dict(cfg), sort_keys=False).encode()
            )
        bench = ensure_benchmark(cfg, benchmark_folder(cfg, folder.path))
        torch.manual_seed(cfg.seed)
        detector = CenterNetDetector(detector_spec(cfg, len(bench.base_ids)))
        trainer = DetectorTrainer(detector, tensors(bench.read("train_base"), bench), fit_settings(cfg))
        losses: list[float] = []
        times: list[float] = []
        if resume:
            state = load_checkpoint(folder.last)
            trainer.load_state_dict(state["trainer"])
            losses, times = list(state["losses"]), list(state["times"])
        started, before = time.monotonic(), (times[-1] if times else 0.0)
        stopped = False
        while trainer.steps_done < trainer.settings.steps:
            losses.append(trainer.step())
            times.append(before + time.monotonic() - started)
            step = trainer.steps_done
            if progress and step % 10 == 0:
                print(
                    f"step {step}/{trainer.settings.steps} loss {losses[-1]:.4f} ({times[-1]:.0f} s)",
                    flush=True,
                )
            stopped = time_limit is not None and time.monotonic() - started >= time_limit
            if stopped or step % cfg.train.checkpoint_every == 0 or step == trainer.settings.steps:
                save_checkpoint(
                    folder.last, {"trainer": trainer.state_dict(), "losses": losses, "times": times}
                )
                _write_metrics(folder, losses, times)
            if stopped:
                break
        names = [bench.categories[c] for c in bench.base_ids]
        save_detector(SavedDetector(detector, names, cfg.scenes.canvas, 1), folder.model)
    if stopped and progress:
        print(
            f"time limit reached at step {trainer.steps_done}; continue with: metadl train --resume {folder.path}"
        )
    return DetectTrainResult(folder.path, folder.model, trainer.steps_done, stopped)
