"""``metadl eval``: score a trained run or a saved model on a fixed, seeded set of test episodes.

The episodes depend only on the dataset and split, the episode shape and the seed (never on the
learner or the batch size), so every learner evaluated with the same arguments meets the same tasks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from metadl.config import (
    LEARNER_DERIVED,
    Config,
    ConfigError,
    apply_overrides,
    config_diff,
    config_from_dict,
    config_to_dict,
    load_config,
    resolve_device,
)
from metadl.data.base import FewShotDataset
from metadl.evaluation.episodes import EvalResult, evaluate
from metadl.training.build import build_learner
from metadl.training.checkpoint import CorruptCheckpointError, load_checkpoint


def evaluate_config(
    cfg: Config,
    learner: nn.Module,
    *,
    device: str | torch.device | None = None,
    dataset: FewShotDataset | None = None,
    progress: bool = False,
) -> EvalResult:
    """Score ``learner`` on ``cfg.eval.episodes`` episodes of ``cfg.eval.split`` seeded by ``cfg.eval.seed``.

    ``dataset`` is that split when the caller has loaded it already.
    """
    from metadl.training.build import make_sampler

    device = resolve_device(cfg.device) if device is None else torch.device(device)
    sampler = make_sampler(cfg, cfg.eval.split, cfg.eval.seed, dataset=dataset, shape=cfg.eval_shape())
    learner.to(device)
    return evaluate(learner, sampler, episodes=cfg.eval.episodes, device=device, progress=progress)


def load_for_eval(
    target: str | Path,
    *,
    config: str | Path | None = None,
    dataset: str | None = None,
    overrides: tuple[str, ...] = (),
    checkpoint: str = "best",
) -> tuple[Config, nn.Module, dict[str, Any]]:
    """The learner to evaluate and the config that says on what.

    ``target`` is a run folder (its ``config.yaml`` and ``best.ckpt``/``last.ckpt``), a ``.ckpt`` file, or
    a saved model folder (``metadl.json``; its metadata holds the training config when it was saved
    by ``metadl train``). ``config`` replaces the stored config's data and evaluation sections;
    ``dataset`` replaces the dataset section by ``{name: dataset}`` (keeping ``image_size``, the
    model's input size); ``overrides`` (``KEY=VALUE``, e.g. ``eval.ways=5``) apply last.
    """
    from metadl.training.trainer import load_trained

    target = Path(target)
    size_hint = None
    if (target / "metadl.json").is_file() or target.name == "metadl.json":
        from metadl.saving import load

        model = load(target)
        learner, info = model.learner, {"model": str(model.path)}
        stored = model.metadata.get("config") or _sections_from_spec(model.spec)
        if model.preprocessing is not None:
            size_hint = model.preprocessing.image_size[0]
    else:
        check_trained_checkpoint(target, checkpoint=checkpoint)
        cfg, learner, info = load_trained(target, checkpoint=checkpoint)
        stored = config_to_dict(cfg)
    raw = dict(stored)
    if config is not None:
        given = config_to_dict(load_config(config))
        # The learner is already built: take the data and the evaluation protocol from the given config.
        raw.update({k: given[k] for k in ("dataset", "sampler", "eval", "device")})
    if dataset is not None:
        size = raw.get("dataset", {}).get("image_size") or size_hint
        raw["dataset"] = {"name": dataset, **({"image_size": size} if size else {})}
    if "dataset" not in raw:
        raise ConfigError(
            f"{target} records no training config; pass --config (or --dataset) to say what to evaluate on"
        )
    cfg = config_from_dict(apply_overrides(raw, overrides), source="evaluation settings")
    return cfg, learner, info


def check_trained_checkpoint(target: str | Path, *, checkpoint: str = "best") -> Path:
    """The checkpoint file ``metadl eval`` reads for ``target`` (a run folder or a ``.ckpt`` file), after
    checking what a valid header cannot vouch for: the payload holds a config that validates, the
    example shape, the iteration and weights that fit the learner that config builds (compared on the
    ``meta`` device, nothing allocated), and, inside a run folder, the config of *that* run: a
    checkpoint copied in from another run is refused. Raises :class:`CorruptCheckpointError`.
    """
    target = Path(target)
    if target.is_dir() and checkpoint in ("best", "last"):
        candidates = (
            [target / "best.ckpt", target / "last.ckpt"] if checkpoint == "best" else [target / "last.ckpt"]
        )
        file = next((c for c in candidates if c.exists()), candidates[-1])
    else:
        file = target
    if file.is_dir():
        raise CorruptCheckpointError(
            f"{file} is a folder, not a checkpoint file; give the run folder or a .ckpt file"
        )
    if not file.exists():
        return file  # load_trained names what is missing
    ckpt = load_checkpoint(file)
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
    run_config = file.parent / "config.yaml"
    if run_config.is_file():
        differs = config_diff(cfg, load_config(run_config))
        if differs:
            raise CorruptCheckpointError(
                f"{file} was written by another run: its config differs from {run_config} in "
                f"{', '.join(differs[:5])}; evaluate that run's folder instead"
            )
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        expected = build_learner(cfg, tuple(shape)).state_dict()
    wrong = sorted(set(expected) ^ set(weights)) + [
        k for k in sorted(set(expected) & set(weights)) if expected[k].shape != weights[k].shape
    ]
    if wrong:
        raise CorruptCheckpointError(
            f"{file}: the weights do not fit the learner its config builds ({', '.join(wrong[:5])}); "
            "the checkpoint was changed or mixes two runs"
        )
    return file


def _sections_from_spec(spec: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Backbone and learner sections for a saved model that records no config (its data must be given)."""
    learner = {k: v for k, v in spec["learner"].items() if k not in LEARNER_DERIVED}
    return {"backbone": dict(spec["backbone"]), "learner": learner}


def eval_report(cfg: Config, result: EvalResult, info: dict[str, Any]) -> dict[str, Any]:
    """What ``metadl eval --json`` prints: the result and the protocol that produced it."""
    ways, shots, queries = cfg.eval_shape()
    return {
        **result.to_dict(),
        "dataset": cfg.dataset.name,
        "split": cfg.eval.split,
        "ways": None if result.metric == "mse" else ways,
        "shots": shots,
        "queries": queries,
        "seed": cfg.eval.seed,
        **info,
    }


def eval_summary(cfg: Config, result: EvalResult) -> str:
    """``"5-way 1-shot on omniglot test (seed 0): accuracy 98.10% ± 0.35% over 1000 episodes"``."""
    ways, shots, _ = cfg.eval_shape()
    shape = f"{shots}-shot" if result.metric == "mse" else f"{ways}-way {shots}-shot"
    return f"{shape} on {cfg.dataset.name} {cfg.eval.split} (seed {cfg.eval.seed}): {result}"
