"""Recommendation configs: ``metadl train recsys_movielens100k_coldstart --set dataset.root=FOLDER``.

A recommendation config is a YAML file whose first key is ``app: recsys`` (the shipped one lives in
``metadl/apps/recsys/configs/``)::

    app: recsys
    dataset: {root: data/ml-100k, format: auto, name: ml-100k}
    protocol: {min_ratings: 13, max_ratings: 100, fractions: [0.8, 0.1, 0.1], n_query: 10,
               query_order: random, split_seed: 0}
    model: {dim: 4, implicit_dim: 32, ...}          # the two-head learner (metadl.apps.recsys.twohead)
    train: {steps: 3000, meta_batch: 32, lr: 0.003, ...}   # EpisodeSettings (metadl.apps.recsys.meta)

``dataset.format`` is ``auto`` (from the files in ``root``: ``NAME.inter`` RecBole atomic files,
``u.data`` GroupLens ML-100K, ``ratings.dat`` ML-1M, or ``root`` a ``.csv`` file), or one of
``recbole``, ``movielens-100k``, ``movielens-1m``, ``csv`` (``user,item,rating[,timestamp]``, with
optional ``user_features`` / ``item_features`` CSVs). ``protocol`` holds the fields of
:class:`~metadl.apps.recsys.protocol.ColdStartProtocol` and ``split_seed``, the seed of the user split
(the benchmark's splits are seeds 0-4). ``--set SECTION.KEY=VALUE`` overrides any value; unknown keys
fail naming the allowed ones.

Example:
    >>> cfg = load_recsys_config(find_config("recsys_movielens100k_coldstart"), ["protocol.query_order=last"])
    >>> cfg.protocol.query_order, cfg.split_seed, cfg.train.steps, cfg.model.dim
    ('last', 0, 3000, 4)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from metadl.apps.appconfig import config_section, declares_app, find_app_config, shipped_configs, yaml_scalar
from metadl.apps.recsys.meta import EpisodeSettings
from metadl.apps.recsys.protocol import ColdStartProtocol
from metadl.config import ConfigError, apply_overrides, read_yaml
from metadl.data.movielens import read_movielens_1m, read_movielens_100k, read_recbole_atomic
from metadl.data.ratings import Ratings, read_ratings_csv

APP = "recsys"
CONFIG_FOLDER = Path(__file__).parent / "configs"
FORMATS = ("auto", "recbole", "movielens-100k", "movielens-1m", "csv")
SECTIONS = ("app", "dataset", "protocol", "model", "train")


@dataclass(frozen=True)
class DatasetSection:
    """Where the ratings are: a folder (or a CSV file) and its format."""

    root: str
    format: str = "auto"
    name: str = "ml-100k"  # recbole: the file stem of NAME.inter / NAME.user / NAME.item
    user_features: str | None = None  # csv only
    item_features: str | None = None  # csv only


@dataclass(frozen=True)
class ModelSection:
    """The two-head learner's hyperparameters (``metadl.apps.recsys.meta.twohead_builder``)."""

    dim: int = 4
    implicit_dim: int = 32
    user_damping: float = 3.0
    inner_lr: float = 0.1
    inner_steps: int = 1
    eval_inner_steps: int | None = 3
    implicit_weight: float = 0.1
    rating_loss: Literal["mse", "l1"] = "l1"


@dataclass(frozen=True)
class RecsysConfig:
    """A validated recommendation config (see the module docstring); ``raw`` is the YAML as run."""

    dataset: DatasetSection
    protocol: ColdStartProtocol
    split_seed: int
    model: ModelSection
    train: EpisodeSettings
    raw: dict[str, Any] = field(compare=False)


def list_recsys_configs() -> list[str]:
    """Names of the shipped recommendation configs."""
    return shipped_configs(CONFIG_FOLDER)


def find_config(name: str) -> Path | None:
    """The shipped config ``name``, or the YAML file ``name`` when its ``app`` is ``recsys``; else None."""
    return find_app_config(name, CONFIG_FOLDER, APP)


def is_recsys_config(path: Path) -> bool:
    """Whether ``path`` is a readable YAML mapping with ``app: recsys`` (False for anything else)."""
    return declares_app(path, APP)


def _check_types(section: Any, key: str) -> None:
    """Integers and floats where the section's field says so (YAML's ``1.5`` is no step count)."""
    values = dataclasses.asdict(section)
    for f in dataclasses.fields(section):
        value, kind = values[f.name], str(f.type)
        if value is None and "None" in kind:
            continue
        number = isinstance(value, int | float) and not isinstance(value, bool)
        wrong_int = kind.startswith("int") and not (number and isinstance(value, int))
        if wrong_int or (kind == "float" and not number):
            raise ConfigError(f"{key}.{f.name} = {value!r}; expected {kind}")


def load_recsys_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> RecsysConfig:
    """Read, override and validate a recommendation config (see the module docstring)."""
    raw = read_yaml(Path(path).read_text(encoding="utf-8"))
    if not isinstance(raw, dict) or raw.get("app") != APP:
        raise ConfigError(f"{path}: a recommendation config starts with 'app: {APP}'")
    raw = apply_overrides(raw, overrides)
    raw = {
        k: {kk: yaml_scalar(vv) for kk, vv in v.items()} if isinstance(v, dict) else v for k, v in raw.items()
    }
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{path}: unknown sections {unknown}; allowed: {', '.join(SECTIONS)}")
    dataset = config_section(DatasetSection, raw.get("dataset"), "dataset")
    if dataset.format not in FORMATS:
        raise ConfigError(f"dataset.format={dataset.format!r}; choose one of {list(FORMATS)}")
    protocol_raw = dict(raw.get("protocol") or {})
    split_seed = protocol_raw.pop("split_seed", 0)
    if isinstance(split_seed, bool) or not isinstance(split_seed, int) or split_seed < 0:
        raise ConfigError(f"protocol.split_seed = {split_seed!r}; expected an integer >= 0")
    protocol = config_section(ColdStartProtocol, protocol_raw, "protocol")
    model = config_section(ModelSection, raw.get("model") or {}, "model")
    if model.rating_loss not in ("mse", "l1"):
        raise ConfigError(f"model.rating_loss={model.rating_loss!r}; choose 'l1' or 'mse'")
    train = config_section(EpisodeSettings, raw.get("train") or {}, "train")
    for section, key in ((protocol, "protocol"), (model, "model"), (train, "train")):
        _check_types(section, key)
    return RecsysConfig(dataset, protocol, split_seed, model, train, raw)


def _format(root: Path, name: str) -> str:
    """The format of the ratings at ``root``, an existing path (``dataset.format: auto``)."""
    if root.is_file():
        if root.suffix == ".csv":
            return "csv"
        raise ConfigError(f"dataset.root={root} is a file but not a .csv; give a folder or a ratings CSV")
    for fmt, file in (
        ("recbole", f"{name}.inter"),
        ("movielens-100k", "u.data"),
        ("movielens-1m", "ratings.dat"),
    ):
        if (root / file).is_file():
            return fmt
    raise ConfigError(f"dataset.root={root} holds none of {name}.inter (RecBole), u.data (ML-100K), ratings.dat "
                      "(ML-1M); give the folder that does, or dataset.format=csv with a ratings CSV")  # fmt: skip


def read_dataset(section: DatasetSection) -> Ratings:
    """The ratings the ``dataset`` section names (readers of :mod:`metadl.data.movielens` / ``ratings``)."""
    root = Path(section.root)
    if not root.exists():
        raise ConfigError(
            f"dataset.root={root} does not exist; --set dataset.root=FOLDER (see docs/recsys.md)"
        )
    fmt = _format(root, section.name) if section.format == "auto" else section.format
    if fmt == "recbole":
        return read_recbole_atomic(root, section.name)
    if fmt == "movielens-100k":
        return read_movielens_100k(root)
    if fmt == "movielens-1m":
        return read_movielens_1m(root)
    return read_ratings_csv(root, user_features=section.user_features, item_features=section.item_features)
