"""The meta-training engine behind ``metadl train``: a config in, a run folder out.

:func:`train` takes the run folder's lock, settles the run's config (a new run, or the saved one when
resuming), and hands over to the run object (:class:`metadl.training.run.TrainingRun`: setup, step,
validate, checkpoint, finish). The run folder's layout is described in :mod:`metadl.training.runfolder`,
exact resumption in :mod:`metadl.training.run`.

Nothing is written before the data and the learner have been built, so a run that cannot start (a wrong
root, no network for a download) leaves no run behind; a folder whose run never finished an iteration
can be started again with new settings. A run with history (checkpoints, a saved model, logged rows)
is never silently restarted: without its ``last.ckpt``, ``--resume`` refuses.

Data-parallel training: launched by ``torchrun`` (see :mod:`metadl.training.distributed`), every process
draws the same meta-batch and trains on its shard of the tasks with averaged gradients; only the main
process validates and writes the run folder, and only it holds the run folder's lock.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from metadl.algorithms.base import Learner
from metadl.config import Config, ConfigError, config_diff, config_from_dict, load_config, save_config
from metadl.data.base import FewShotDataset
from metadl.fileio import remove_stale
from metadl.tasks import TaskKind
from metadl.training.build import build_learner
from metadl.training.checkpoint import CorruptCheckpointError, load_checkpoint
from metadl.training.distributed import DistributedContext
from metadl.training.run import TrainingRun, TrainResult
from metadl.training.runfolder import (
    BEST,
    CONFIG_FILE,
    LAST,
    MODEL_DIR,
    RunFolder,
    RunFolderError,
    default_run_dir,
)

__all__ = [
    "BEST",
    "CONFIG_FILE",
    "LAST",
    "MODEL_DIR",
    "RunFolderError",
    "TrainResult",
    "default_run_dir",
    "load_trained",
    "resumed_config",
    "train",
]


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
    cleanly after the iteration that reaches it, and so does SIGTERM / SIGINT: checkpointed, model saved,
    resumable (``TrainResult.stopped_by`` and ``exit_code`` say so).

    Raises :class:`NonFiniteLossError` when the meta-loss or the state stops being finite; the last
    checkpoint, the best checkpoint and ``metrics.csv`` then hold the state before the failing iteration.
    Raises :class:`RunFolderError` when the folder is in use by another process, holds another run, or
    cannot be resumed.
    """
    folder = RunFolder(Path(run_dir))
    if cfg is None and not resume:
        raise ValueError("a new run needs a config")
    ctx = (
        distributed
        if distributed is not None
        else DistributedContext.from_env(cfg.device if cfg is not None else _saved_config(folder).device)
    )
    try:
        with _exclusive(folder, ctx):
            cfg = _settle_config(folder, cfg, resume=resume, log=log if ctx.is_main else None)
            if ctx.is_main:
                # Under the lock no writer of ours is alive: every temporary file is a killed write's.
                remove_stale(folder.path, ".*.tmp", older_than=0)
            run = TrainingRun.setup(
                cfg, folder, ctx, resume=resume, splits=splits,
                time_limit=time_limit, progress=progress, log=log,
            )  # fmt: skip
            if ctx.is_main and not (resume and folder.config.is_file()):
                save_config(cfg, folder.config)  # only now that the data and the learner could be built
            ctx.barrier()
            return run.run()
    finally:
        if distributed is None:
            ctx.close()


@contextlib.contextmanager
def _exclusive(folder: RunFolder, ctx: DistributedContext) -> Iterator[None]:
    """Hold the run folder's lock on the main process; every process learns whether it was taken."""
    created = not folder.path.exists()
    with contextlib.ExitStack() as stack:
        refusal: RunFolderError | None = None
        if ctx.is_main:
            try:
                stack.enter_context(folder.lock())
            except RunFolderError as err:
                refusal = err
        if ctx.any_process(refusal is not None):
            raise refusal or RunFolderError(f"{folder.path} is in use by another process")
        try:
            yield
        except BaseException:
            if created and ctx.is_main and not folder.holds_run():  # leave no empty folder behind
                stack.close()
                _remove_empty(folder.path)
            raise


def _remove_empty(path: Path) -> None:
    with contextlib.suppress(OSError):
        (path / ".lock").unlink()
        path.rmdir()


def _saved_config(folder: RunFolder) -> Config:
    if not folder.config.is_file():
        raise RunFolderError(
            f"cannot resume: {folder.config} does not exist (is {folder.path} a run folder?)"
        )
    return load_config(folder.config)


def _settle_config(
    folder: RunFolder, cfg: Config | None, *, resume: bool, log: Callable[[str], None] | None
) -> Config:
    """The run's config: the saved one when resuming (a given one must equal it), else the given one.

    Refuses a new run in a folder with history, and a resume of a run with history but no ``last.ckpt``.
    """
    history = folder.history()
    if resume:
        saved = _saved_config(folder)
        if cfg is not None and cfg != saved:
            raise RunFolderError(
                f"the config differs from the one {folder.path} was started with ({', '.join(config_diff(cfg, saved))}); "
                "resume without a config (metadl train --resume RUN_DIR) or start a new run"
            )
        if history and not folder.last.exists():
            raise RunFolderError(
                f"cannot resume {folder.path}: it has {', '.join(history)} but no {LAST} to continue from; "
                f"restore {LAST} from a backup, or start a new run with another --out"
            )
        if not history and log is not None:
            log(f"{folder.path} has no checkpoint yet; starting it from iteration 0")
        return saved
    assert cfg is not None
    if folder.holds_run() and history:
        raise RunFolderError(
            f"{folder.path} already holds a run; continue it with --resume {folder.path} or choose another --out"
        )
    if folder.holds_run() and log is not None:
        log(f"{folder.path} holds a run that never finished an iteration; starting it again with this config")
    return cfg


def checkpoint_file(path: Path, checkpoint: str = "best") -> Path:
    """The file a run folder's ``best`` (falling back to ``last``) or ``last`` checkpoint is, or ``path`` itself."""
    if not path.is_dir():
        return path
    if checkpoint not in ("best", "last"):
        raise ValueError(f"checkpoint={checkpoint!r}; choose 'best' or 'last'")
    candidates = [path / BEST, path / LAST] if checkpoint == "best" else [path / LAST]
    file = next((c for c in candidates if c.exists()), None)
    if file is None:
        raise RunFolderError(
            f"{path} holds no {' or '.join(c.name for c in candidates)}; is it a run folder?"
        )
    if file.is_dir():
        raise CorruptCheckpointError(
            f"{file} is a folder, not a checkpoint file; give the run folder or a .ckpt file"
        )
    return file


def check_training_checkpoint(ckpt: Any, file: Path) -> Config:
    """The config of a training checkpoint, after checking what a valid header cannot vouch for.

    The payload must hold a config that validates, the example shape, the iteration and weights that fit
    the learner that config builds (compared on the ``meta`` device: nothing is allocated); inside a run
    folder it must be *that* run's (a checkpoint copied in from another run is refused). Raises
    :class:`CorruptCheckpointError` naming the file.
    """
    if not isinstance(ckpt, dict) or not {"config", "x_shape", "model", "iteration"} <= set(ckpt):
        keys = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CorruptCheckpointError(f"{file}: not a training checkpoint (holds {keys})")
    shape, weights = ckpt["x_shape"], ckpt["model"]
    if not (
        isinstance(shape, list | tuple)
        and 0 < len(shape) <= 4
        and all(isinstance(n, int) and 0 < n <= 65536 for n in shape)
    ):
        raise CorruptCheckpointError(f"{file}: x_shape {shape!r} is not the shape of an example")
    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise CorruptCheckpointError(f"{file}: 'model' is not a state dict of tensors")
    try:
        cfg = config_from_dict(ckpt["config"], source=str(file))
    except ConfigError as err:
        raise CorruptCheckpointError(f"{file}: its config does not validate ({err})") from None
    run_config = file.parent / CONFIG_FILE
    if run_config.is_file():
        differs = config_diff(cfg, load_config(run_config))
        if differs:
            raise CorruptCheckpointError(
                f"{file} was written by another run: its config differs from {run_config} in "
                f"{', '.join(differs[:5])}; evaluate that run's folder instead"
            )
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        expected = build_learner(cfg, tuple(shape), checkpoint_kind(ckpt)).state_dict()
    wrong = sorted(set(expected) ^ set(weights)) + [
        k for k in sorted(set(expected) & set(weights)) if expected[k].shape != weights[k].shape
    ]
    if wrong:
        raise CorruptCheckpointError(
            f"{file}: the weights do not fit the learner its config builds ({', '.join(wrong[:5])}); "
            "the checkpoint was changed or mixes two runs"
        )
    return cfg


def checkpoint_kind(ckpt: dict[str, Any]) -> TaskKind:
    """Regression or classification, from the metric a training checkpoint was scored with."""
    return "regression" if ckpt.get("metric") == "mse" else "classification"


def load_trained(
    path: str | Path, *, checkpoint: str = "best", device: str | torch.device = "cpu"
) -> tuple[Config, Learner, dict[str, Any]]:
    """The config and the trained learner of a run folder (``best`` falls back to ``last``) or a ``.ckpt`` file.

    Returns ``(config, learner in eval mode, info)`` with ``info`` the checkpoint's ``iteration`` and file
    (as ``metadl eval --json`` reports them). The checkpoint is read once and checked before anything is built.
    """
    file = checkpoint_file(Path(path), checkpoint)
    ckpt = load_checkpoint(file)
    cfg = check_training_checkpoint(ckpt, file)
    with torch.random.fork_rng(devices=[]):
        learner = build_learner(cfg, tuple(ckpt["x_shape"]), checkpoint_kind(ckpt))
    learner.load_state_dict(ckpt["model"])
    learner.to(device).eval()
    return cfg, learner, {"checkpoint": str(file), "iteration": ckpt["iteration"]}


def resumed_config(run_dir: str | Path) -> Config:
    """The config a run folder was started with."""
    return load_config(Path(run_dir) / CONFIG_FILE)
