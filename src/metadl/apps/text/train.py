"""``metadl train`` for text configs: episodic fine-tuning of a sentence encoder's top blocks into a run folder.

A text config is a YAML file whose first key is ``app: text`` (the shipped ones live in
``metadl/apps/text/configs/``: ``text_intent_clinc150_to_banking77``, ``text_sentiment_arsc``)::

    app: text
    encoder: {model: all-MiniLM-L6-v2, frozen_layers: 5, max_length: 32}
    dataset: {name: clinc150, root: ../shared/data/clinc150, exclude_domains: [banking], per_intent: 20}
    learner: {name: protonet, distance: cosine, learn_temperature: true}
    train: {episodes: 300, n_way: 10, k_shot: 5, n_query: 5, lr: 1.0e-4, seed: 0}

``dataset.name`` is ``clinc150`` (its training split, ``per_intent`` rows of each intent, without the
``exclude_domains``) or ``arsc`` (the ``.train`` files of an ARSC folder read through the task-file source,
without ``held_out`` domains drawn with ``seed``, and without ``validation`` more domains when settings
are being screened: :mod:`metadl.apps.text.sentiment`). ``train`` holds the
fields of :class:`~metadl.apps.text.finetune.FinetuneSettings`. ``--set SECTION.KEY=VALUE`` overrides any value;
unknown keys fail naming the allowed ones.

The run folder is the core's (:mod:`metadl.training.runfolder`): ``config.yaml`` (the config as run),
``metrics.csv`` (loss and accuracy per episode), ``last.ckpt`` and ``model/``, a saved text model that
``metadl predict RUN --support S.csv --query Q.csv`` adapts. The fine-tuning runs through the core run
object (:mod:`metadl.apps.text.run`), so ``--time-limit`` and SIGTERM stop it checkpointed and
``metadl train CONFIG --resume RUN`` (the same config and ``--set`` values) continues it exactly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from metadl.apps.appconfig import config_section, find_app_config, shipped_configs, yaml_scalar
from metadl.apps.text.finetune import FinetuneSettings
from metadl.apps.text.run import text_run
from metadl.apps.text.sentiment import (
    arsc_domains,
    held_out_domains,
    meta_training_source,
    validation_domains,
)
from metadl.config import ConfigError, apply_overrides, read_yaml
from metadl.data.text import TextDataset, clinc150
from metadl.fileio import atomic_write_bytes
from metadl.models.text.layers import LowerLayerEncoder
from metadl.models.text.sentence import MINILM
from metadl.tasks.file_source import TaskFileSource
from metadl.training.run import TrainResult
from metadl.training.runfolder import LOCK_FILE, RunFolder, RunFolderError

CONFIG_FOLDER = Path(__file__).parent / "configs"
DATASETS = ("clinc150", "arsc")


@dataclass(frozen=True)
class EncoderSection:
    model: str = MINILM
    frozen_layers: int = 5
    max_length: int = 32


@dataclass(frozen=True)
class DatasetSection:
    name: str
    root: str
    exclude_domains: tuple[str, ...] = ()  # clinc150
    per_intent: int | None = None  # clinc150: rows of each intent (None: all)
    held_out: int = 4  # arsc: target domains kept out of meta-training
    validation: int = 0  # arsc: further domains kept out of meta-training to screen settings on
    seed: int = 0


@dataclass(frozen=True)
class TextTrainConfig:
    encoder: EncoderSection
    dataset: DatasetSection
    learner: dict[str, Any]
    train: FinetuneSettings
    raw: dict[str, Any] = field(compare=False)


def list_text_configs() -> list[str]:
    """Names of the shipped text configs."""
    return shipped_configs(CONFIG_FOLDER)


def find_text_config(name: str) -> Path | None:
    """The shipped text config ``name``, or the YAML file ``name`` when its ``app`` is ``text``; else None."""
    return find_app_config(name, CONFIG_FOLDER, "text")


def load_text_config(path: str | Path, overrides: tuple[str, ...] | list[str] = ()) -> TextTrainConfig:
    """Read, override and validate a text config (see the module docstring)."""
    raw = read_yaml(Path(path).read_text(encoding="utf-8"))
    if not isinstance(raw, dict) or raw.get("app") != "text":
        raise ConfigError(f"{path}: a text config starts with 'app: text'")
    raw = apply_overrides(raw, overrides)
    raw = {
        k: {kk: yaml_scalar(vv) for kk, vv in v.items()} if isinstance(v, dict) else v for k, v in raw.items()
    }
    unknown = sorted(set(raw) - {"app", "encoder", "dataset", "learner", "train"})
    if unknown:
        raise ConfigError(
            f"{path}: unknown sections {unknown}; allowed: app, encoder, dataset, learner, train"
        )
    learner = dict(raw.get("learner") or {"name": "protonet"})
    if not isinstance(learner.get("name"), str):
        raise ConfigError(f"{path}: learner.name is missing (e.g. protonet, svm, anil)")
    dataset = config_section(DatasetSection, raw.get("dataset"), "dataset")
    if dataset.name not in DATASETS:
        raise ConfigError(f"dataset.name={dataset.name!r}; choose one of {list(DATASETS)}")
    return TextTrainConfig(
        config_section(EncoderSection, raw.get("encoder") or {}, "encoder"),
        dataset,
        learner,
        config_section(FinetuneSettings, raw.get("train") or {}, "train"),
        raw,
    )


def clinc_training_data(section: DatasetSection) -> TextDataset:
    """CLINC150's training split without ``exclude_domains``, ``per_intent`` rows of each intent (seeded)."""
    kept: tuple[str, ...] = ()
    if section.exclude_domains:
        domains = read_yaml((Path(section.root) / "domains.json").read_text(encoding="utf-8"))
        kept = tuple(sorted(set(domains) - set(section.exclude_domains)))
    data = clinc150(section.root, "train", domains=kept)
    if section.per_intent is None:
        return data
    g = torch.Generator().manual_seed(section.seed)
    keep = torch.zeros(len(data), dtype=torch.bool)
    for c in range(len(data.class_names)):
        members = (data.labels == c).nonzero().flatten()
        keep[members[torch.randperm(len(members), generator=g)[: section.per_intent]]] = True
    kept_data = data.subset(keep)
    return TextDataset.from_names(list(kept_data.texts), kept_data.label_names(), name=data.name)


def config_diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two nested mappings.

    Example:
        >>> config_diff({"train": {"lr": 1, "seed": 0}, "app": "text"}, {"train": {"lr": 2, "seed": 0}, "app": "text"})
        ['train.lr']
    """
    if not isinstance(a, dict) or not isinstance(b, dict):
        return [] if a == b else [prefix or "(root)"]
    out = []
    for key in sorted(set(a) | set(b), key=str):
        name = f"{prefix}.{key}" if prefix else str(key)
        out += config_diff(a.get(key), b.get(key), name) if key in a and key in b else [name]
    return out


def train_text(
    cfg: TextTrainConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    time_limit: float | None = None,
    progress: bool = True,
) -> TrainResult:
    """Fine-tune as ``cfg`` says into the new run folder ``run_dir``, or continue the run there (``resume``:
    ``cfg`` must be the config it was started with). ``time_limit`` (seconds of this session), SIGTERM and
    SIGINT stop it after the episode in progress, checkpointed and resumable (:mod:`metadl.apps.text.run`)."""
    folder = RunFolder(Path(run_dir))
    if resume and not folder.config.is_file():
        raise RunFolderError(
            f"cannot resume: {folder.config} does not exist (is {folder.path} a run folder?)"
        )
    if not resume and folder.path.exists() and any(p.name != LOCK_FILE for p in folder.path.iterdir()):
        raise ConfigError(
            f"run folder {folder.path} exists and is not empty; give a new --out folder, "
            f"or continue its run with --resume {folder.path}"
        )
    created = not folder.path.exists()
    with folder.lock():
        try:
            return _train_locked(cfg, folder, resume=resume, time_limit=time_limit, progress=progress)
        except BaseException:
            if created and not folder.config.is_file():  # nothing was written: leave no folder behind
                (folder.path / LOCK_FILE).unlink(missing_ok=True)
                folder.path.rmdir()
            raise


def _train_locked(
    cfg: TextTrainConfig, folder: RunFolder, *, resume: bool, time_limit: float | None, progress: bool
) -> TrainResult:
    if resume:
        differs = config_diff(cfg.raw, load_text_config(folder.config).raw)
        if differs:
            raise RunFolderError(
                f"the config differs from the one {folder.path} was started with ({', '.join(differs[:5])}); "
                "resume with the same config and --set values, or start a new run with another --out"
            )
        if folder.history() and not folder.last.exists():
            raise RunFolderError(
                f"cannot resume {folder.path}: it has {', '.join(folder.history())} but no last.ckpt"
            )
    e, d, s = cfg.encoder, cfg.dataset, cfg.train
    encoder = LowerLayerEncoder(model=e.model, frozen_layers=e.frozen_layers, max_length=e.max_length)
    data: TextDataset | TaskFileSource
    held: tuple[str, ...] = ()
    validation: tuple[str, ...] = ()
    if d.name == "clinc150":
        data = clinc_training_data(d)
    else:
        domains = arsc_domains(d.root)
        held = held_out_domains(domains, d.held_out, seed=d.seed)
        validation = validation_domains(domains, held, d.validation, seed=d.seed)
        excluded = held + validation
        data = meta_training_source(d.root, excluded, k_shot=s.k_shot, n_query=s.n_query, seed=s.seed)
    run = text_run(
        cfg.raw, encoder, cfg.learner, data, s, folder, resume=resume, held_out=held,
        validation=validation, time_limit=time_limit, progress=progress,
    )  # fmt: skip
    if not folder.config.is_file():  # only now that the data and the model could be built
        atomic_write_bytes(folder.config, yaml.safe_dump(cfg.raw, sort_keys=False).encode("utf-8"))
    return run.run()


def train_text_from_cli(
    path: Path, overrides: list[str], out: str | None, resume: str | None, time_limit: float | None
) -> TrainResult:
    """``metadl train TEXT_CONFIG [--set ...] [--out RUN | --resume RUN] [--time-limit T]``: the session's
    :class:`TrainResult` (``model_dir``; ``exit_code`` non-zero when a signal stopped it). A resumed run is
    given the config (and ``--set`` values) it was started with."""
    if resume is not None and out is not None:
        raise ConfigError(
            "--out names a new run folder; --resume continues the one it names: use one of them"
        )
    cfg = load_text_config(path, overrides)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = resume or out or Path("runs") / f"{path.stem}-{stamp}"
    return train_text(cfg, run_dir, resume=resume is not None, time_limit=time_limit)
