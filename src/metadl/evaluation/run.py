"""``metadl eval``: score a trained run or a saved model on a fixed, seeded set of test episodes.

The episodes depend only on the dataset and split, the episode shape and the seed (never on the
learner or the batch size), so every learner evaluated with the same arguments meets the same tasks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from metadl.algorithms.base import Learner
from metadl.algorithms.clustering_steps import as_clusterer
from metadl.algorithms.ensemble import ProbabilityEnsemble
from metadl.config import (
    LEARNER_DERIVED,
    Config,
    ConfigError,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_config,
    resolve_device,
)
from metadl.data.base import FewShotDataset
from metadl.evaluation.cluster_protocol import ClusteringEvalResult, evaluate_clustering
from metadl.evaluation.episodes import EvalResult, evaluate
from metadl.evaluation.uncertainty import UncertaintyReport, evaluate_uncertainty
from metadl.saving import load
from metadl.training.build import load_dataset_split, make_sampler
from metadl.training.trainer import load_trained


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
    device = resolve_device(cfg.device) if device is None else torch.device(device)
    sampler = make_sampler(
        cfg, cfg.eval.split, cfg.eval.seed, dataset=dataset, shape=cfg.eval_shape(), source=cfg.eval.source
    )
    learner.to(device)
    return evaluate(learner, sampler, episodes=cfg.eval.episodes, device=device, progress=progress)


def evaluate_clustering_config(
    cfg: Config,
    learner: Learner,
    *,
    device: str | torch.device | None = None,
    dataset: FewShotDataset | None = None,
) -> ClusteringEvalResult:
    """Partition each group of classes of ``cfg.eval.split`` (Omniglot: each alphabet) into
    ``cfg.eval.clusters`` clusters and score it (:mod:`metadl.evaluation.cluster_protocol`)."""
    device = resolve_device(cfg.device) if device is None else torch.device(device)
    clusterer = as_clusterer(learner)
    data = load_dataset_split(cfg, cfg.eval.split) if dataset is None else dataset
    learner.to(device)
    return evaluate_clustering(clusterer, data, k=cfg.eval.clusters, seed=cfg.eval.seed, device=device)


def evaluate_run(
    cfg: Config, learner: nn.Module, *, baselines: bool = True, progress: bool = False
) -> tuple[EvalResult | ClusteringEvalResult, UncertaintyReport | None]:
    """What ``metadl eval`` reports: the episode score, and for a learner that predicts a variance (on
    regression tasks) its MSE, NLL and 95% coverage beside the per-task baselines (``baselines=False``
    skips them). The episode score of such a learner is its MSE averaged per group (a named task's name).
    A clustering learner is scored by the clustering protocol instead (:func:`evaluate_clustering_config`)."""
    if isinstance(learner, Learner) and learner.capabilities.clustering:
        return evaluate_clustering_config(cfg, learner), None
    if not (isinstance(learner, Learner) and learner.capabilities.uncertainty):
        return evaluate_config(cfg, learner, progress=progress), None
    device = resolve_device(cfg.device)
    sampler = make_sampler(cfg, cfg.eval.split, cfg.eval.seed, shape=cfg.eval_shape())
    report = evaluate_uncertainty(
        learner, sampler, episodes=cfg.eval.episodes, baselines=baselines, device=device
    )
    mse = report.model.mse
    return EvalResult("mse", mse.mean, mse.half, report.model.episodes, per_episode=[]), report


def load_for_eval(
    target: str | Path,
    *,
    config: str | Path | None = None,
    dataset: str | None = None,
    overrides: tuple[str, ...] = (),
    checkpoint: str = "best",
    ensemble: tuple[str | Path, ...] = (),
) -> tuple[Config, nn.Module, dict[str, Any]]:
    """The learner to evaluate and the config that says on what.

    ``target`` is a run folder (its ``config.yaml`` and ``best.ckpt``/``last.ckpt``), a ``.ckpt`` file, or
    a saved model folder (``metadl.json``; its metadata holds the training config when it was saved
    by ``metadl train``). ``config`` replaces the stored config's data and evaluation sections;
    ``dataset`` replaces the dataset section by ``{name: dataset}`` (keeping ``image_size``, the
    model's input size); ``overrides`` (``KEY=VALUE``, e.g. ``eval.ways=5``) apply last.
    ``ensemble`` names more runs or models like ``target``: the learner returned averages the class
    probabilities of all of them (:class:`~metadl.algorithms.ensemble.ProbabilityEnsemble`), on
    ``target``'s episodes; each must classify inputs of the same dataset and size as ``target``.
    """
    stored, learner, info, size_hint = _load_learner(Path(target), checkpoint)
    raw = dict(stored)
    if ensemble:
        members = [_classifier(Path(target), learner)]
        for other in ensemble:
            other_stored, member, _, _ = _load_learner(Path(other), checkpoint)
            _check_same_data(Path(other), other_stored, Path(target), stored)
            members.append(_classifier(Path(other), member))
        learner = ProbabilityEnsemble(members)
        info = {**info, "ensemble": [str(target), *map(str, ensemble)]}
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


def _load_learner(
    target: Path, checkpoint: str
) -> tuple[dict[str, Any], nn.Module, dict[str, Any], int | None]:
    """A run folder, checkpoint or saved model -> (its stored config as a mapping, the learner, info, the
    saved model's input height or None)."""
    if (target / "metadl.json").is_file() or target.name == "metadl.json":
        model = load(target)
        stored = model.metadata.get("config") or _sections_from_spec(model.spec)
        height = model.preprocessing.height if model.preprocessing is not None else None
        return dict(stored), model.learner, {"model": str(model.path)}, height
    cfg, learner, info = load_trained(target, checkpoint=checkpoint)
    return config_to_dict(cfg), learner, info, None


def _classifier(path: Path, learner: nn.Module) -> nn.Module:
    """``learner`` if it can join an ensemble: a classifier (no regression or clustering)."""
    caps = learner.capabilities if isinstance(learner, Learner) else None
    if caps is None or caps.regression or caps.clustering:
        raise ConfigError(
            f"--ensemble {path}: only classifiers can be ensembled (their class probabilities are averaged); "
            f"its learner is {type(learner).__name__}"
        )
    return learner


def _check_same_data(path: Path, stored: dict[str, Any], target: Path, target_stored: dict[str, Any]) -> None:
    """An ensemble member must have been trained on the target's dataset at the target's image size."""

    def data(raw: dict[str, Any]) -> str:
        section = raw.get("dataset")
        if not section:  # a saved model without its training config
            return "data it does not record"
        return f"{section.get('name')} (image_size {section.get('image_size')})"

    if data(stored) != data(target_stored):
        raise ConfigError(
            f"--ensemble {path}: trained on {data(stored)}, but {target} on {data(target_stored)}; "
            "ensemble models trained on the same dataset at the same image size"
        )


def _sections_from_spec(spec: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Backbone and learner sections for a saved model that records no config (its data must be given)."""
    learner = {k: v for k, v in spec["learner"].items() if k not in LEARNER_DERIVED}
    return {"backbone": dict(spec["backbone"]), "learner": learner}


def eval_report(
    cfg: Config,
    result: EvalResult | ClusteringEvalResult,
    info: dict[str, Any],
    uncertainty: UncertaintyReport | None = None,
) -> dict[str, Any]:
    """What ``metadl eval --json`` prints: the result and the protocol that produced it (and, for a
    learner that predicts a variance, ``mse``, ``nll``, ``coverage95`` and ``baselines``)."""
    if isinstance(result, ClusteringEvalResult):
        return {
            **result.to_dict(),
            "dataset": cfg.dataset.name,
            "split": cfg.eval.split,
            "seed": cfg.eval.seed,
            **info,
        }
    ways, shots, queries = cfg.eval_shape()
    return {
        **result.to_dict(),
        **({} if uncertainty is None else uncertainty.to_dict()),
        "dataset": cfg.dataset.name,
        "split": cfg.eval.split,
        "ways": None if result.metric == "mse" else ways,
        "shots": shots,
        "queries": queries,
        "seed": cfg.eval.seed,
        **info,
    }


def eval_summary(cfg: Config, result: EvalResult | ClusteringEvalResult) -> str:
    """``"5-way 1-shot on omniglot test (seed 0): accuracy 98.10% ± 0.35% over 1000 episodes"``."""
    if isinstance(result, ClusteringEvalResult):
        return f"clustering {cfg.dataset.name} {cfg.eval.split} (seed {cfg.eval.seed}): {result}"
    ways, shots, _ = cfg.eval_shape()
    shape = f"{shots}-shot" if result.metric == "mse" else f"{ways}-way {shots}-shot"
    return f"{shape} on {cfg.dataset.name} {cfg.eval.split} (seed {cfg.eval.seed}): {result}"
