"""Experiments as YAML files mapped onto typed, validated dataclasses.

A config names everything a run needs: the dataset and its splits, the episode shape, the backbone and
the learner with their hyperparameters, the optimiser and its schedule, the training budget, the
evaluation protocol, the seed and the device. ::

    seed: 0
    dataset: {name: omniglot, root: data/omniglot, image_size: 28, protocol: vinyals}
    sampler: {ways: 5, shots: 1, queries: 15, meta_batch: 32}
    backbone: {name: conv4, hidden: 64}
    learner: {name: maml, inner_lr: 0.4}
    optimizer: {name: adam, lr: 0.001, schedule: cosine, warmup: 100}
    train: {iterations: 60000, val_every: 1000}
    eval: {episodes: 1000, split: test}

Everything is checked when the file is loaded, not an hour into training: an unknown key, a value of
the wrong type or out of range, a registry name that does not exist, or a backbone / learner / dataset
argument that the constructor does not take (read from its signature with :mod:`inspect`, as torchtune
does) raises :class:`ConfigError` naming the key, the value and what is allowed. Keys of the
``dataset``, ``backbone`` and ``learner`` sections other than the fixed ones are passed to the builder
as keyword arguments. ``dataset.name`` is a dataset or a task source (``{name: fertility}``,
``{name: step_functions, max_steps: 5}``); a source's episode shape, split and seed come from the engine
(:data:`SOURCE_DERIVED`). Command-line overrides (``--set learner.inner_lr=0.1``) are typed by the field
they set.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import difflib
import inspect
import math
import re
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import yaml

from metadl.augment.checks import AugmentError
from metadl.augment.config import AugmentConfig, parse_augment
from metadl.data import DATASETS
from metadl.validation import MAX_IMAGE_SIDE, check_spec_limits

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("none", "cosine", "step")
_MAX_INT = 2**63 - 1  # what torch and numpy can hold; larger integers overflow deep inside them
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
# Learner arguments the engine fills in itself, from the backbone and the episode shape.
LEARNER_DERIVED = ("backbone", "n_way", "out_features")
# Task-source arguments the engine fills in: the episode shape from the sampler (or eval) section, the
# split being built and its seed (derived from the run's seed and the split name).
SOURCE_DERIVED = ("k_shot", "n_query", "n_way", "split", "seed")
# Task sources that draw episodes from a dataset's split (``sampler.source``, ``eval.source``):
# random N-way K-shot, or within one alphabet with support and query by different drawers (Lake et al.).
EPISODE_SOURCES = ("episodes", "alphabet_episodes")


class ConfigError(ValueError):
    """A config key or value is not allowed; the message names the key, the value and the fix."""


@dataclass(frozen=True)
class DatasetConfig:
    """Which data, and which splits for training, validation (held-out classes) and testing (``eval.split``).

    ``name`` is a dataset (:func:`metadl.data.list_datasets`, drawn as N-way K-shot episodes) or a task
    source (:func:`metadl.tasks.config_task_sources`: generated functions, countries, task files, ...).
    ``options`` holds the builder's other keyword arguments (e.g. omniglot's ``protocol``, step_functions'
    ``max_steps``). ``val_split: null`` turns validation off.
    """

    name: str
    root: str | None = None
    split: str = "train"
    val_split: str | None = "val"
    image_size: int | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SamplerConfig:
    """Training episodes: ``ways``-way ``shots``-shot with ``queries`` per class, ``meta_batch`` tasks per update,
    drawn by the task source ``source`` (one of :data:`EPISODE_SOURCES`)."""

    ways: int = 5
    shots: int = 1
    queries: int = 15
    meta_batch: int = 4
    source: str = "episodes"


@dataclass(frozen=True)
class ComponentConfig:
    """A registry entry by name plus its constructor's keyword arguments (backbone or learner)."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OptimizerConfig:
    """Outer-loop optimiser; ``schedule`` multiplies ``lr`` after ``warmup`` linear warm-up iterations.

    ``cosine`` decays to 0 at the last iteration; ``step`` multiplies by ``gamma`` every ``step_size``.
    """

    name: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.0
    schedule: str = "none"
    warmup: int = 0
    step_size: int = 1000
    gamma: float = 0.5


@dataclass(frozen=True)
class TrainConfig:
    """Budget and bookkeeping: validate every ``val_every`` iterations (0: never), checkpoint every
    ``checkpoint_every`` (and at the end), clip the gradient norm at ``grad_clip`` (null: no clipping)."""

    iterations: int = 1000
    val_every: int = 500
    checkpoint_every: int = 100
    grad_clip: float | None = None
    val_episodes: int = 100


@dataclass(frozen=True)
class EvalConfig:
    """Test episodes; ``ways``/``shots``/``queries`` default to the sampler's. Validation uses the same shape
    and the same task source ``source`` (one of :data:`EPISODE_SOURCES`).

    ``clusters`` applies to clustering learners only, which ``metadl eval`` scores by partitioning each
    group of classes of ``split`` (``metadl.evaluation.cluster_protocol``): ``"true"`` (each group's
    number of classes; quote it in YAML), a positive integer (e.g. 100), or ``"estimate"``.
    """

    episodes: int = 1000
    ways: int | None = None
    shots: int | None = None
    queries: int | None = None
    split: str = "test"
    seed: int = 0
    clusters: str = "true"
    source: str = "episodes"


@dataclass(frozen=True)
class Config:
    """A whole experiment (see the module docstring)."""

    dataset: DatasetConfig
    backbone: ComponentConfig
    learner: ComponentConfig
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    seed: int = 0
    device: str = "auto"
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # generated training data (metadl.augment)

    def eval_shape(self) -> tuple[int, int, int]:
        """``(ways, shots, queries)`` of validation and test episodes."""
        e, s = self.eval, self.sampler
        return (e.ways or s.ways, e.shots or s.shots, e.queries or s.queries)


class _Text(str):
    """A ``--set`` value as typed; parsed according to the field it lands in."""


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``1e6`` and ``1E-3`` as floats.

    PyYAML follows YAML 1.1, whose float pattern needs a dot (``1.0e6``), so ``lr: 1e6`` would arrive as
    the string ``"1e6"``; YAML 1.2 (and every other YAML library) reads it as a number.
    """


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def read_yaml(text: str) -> Any:
    """Parse YAML safely (no code runs), with ``1e6`` read as a float.

    Example:
        >>> read_yaml("lr: 1e6\\nname: adam")
        {'lr': 1000000.0, 'name': 'adam'}
    """
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader


# --------------------------------------------------------------------------------------------- checks


def _fail(key: str, value: Any, allowed: str) -> typing.NoReturn:
    raise ConfigError(f"{key} = {value!r} is not allowed: {allowed}")


def _unknown(key: str, allowed: list[str]) -> typing.NoReturn:
    name = key.rpartition(".")[2]
    close = difflib.get_close_matches(name, allowed, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(f"unknown key {key!r}{hint}; allowed keys here: {', '.join(sorted(allowed))}")


def _coerce(key: str, value: Any, kind: type | None, optional: bool) -> Any:
    """Check ``value`` against ``kind`` (bool, int, float, str; None: anything); ints pass as floats."""
    if isinstance(value, _Text):
        try:
            parsed = read_yaml(value) if value.strip() else None
        except yaml.YAMLError:
            _fail(key, str(value), "not a YAML value; quote strings, write lists as [1, 2]")
        value = str(value) if kind is str and parsed is not None else parsed
    _check_finite(key, value)
    if value is None:
        if optional or kind is None:
            return None
        _fail(key, value, f"a value of type {kind.__name__} is required")
    if kind is None:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _MAX_INT:
        _fail(key, value, f"must be at most {_MAX_INT} in size")
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is bool and not isinstance(value, bool) or kind is not bool and isinstance(value, bool):
        _fail(key, value, f"expected {kind.__name__}")
    if not isinstance(value, kind):
        _fail(key, value, f"expected {kind.__name__}, got {type(value).__name__}")
    return value


def _check_finite(key: str, value: Any) -> None:
    """NaN and infinities are refused in any number, also inside lists and mappings."""
    if isinstance(value, float) and not math.isfinite(value):
        _fail(key, value, "must be a finite number (NaN and infinity are not allowed)")
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_finite(f"{key}[{i}]", item)
    if isinstance(value, dict):
        for k, item in value.items():
            _check_finite(f"{key}.{k}", item)


def _check_range(key: str, value: Any, low: float, *, strict: bool = False) -> None:
    if value is not None and (value <= low if strict else value < low):
        _fail(key, value, f"must be {'>' if strict else '>='} {low}")


def _check_choice(key: str, value: str, choices: typing.Iterable[str]) -> None:
    choices = sorted(choices)
    if value not in choices:
        close = difflib.get_close_matches(str(value), choices, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        _fail(key, value, f"choose one of {choices}{hint}")


def _build_section(cls: type, raw: Any, prefix: str, extra: str | None = None) -> Any:
    """Dataclass ``cls`` from mapping ``raw``; unknown keys go to field ``extra`` if given, else fail."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        _fail(prefix, raw, "expected a mapping of keys to values")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.name != extra]
    values: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in names:
            if extra is None:
                _unknown(f"{prefix}.{key}", names)
            rest[key] = value
            continue
        args = typing.get_args(hints[key])
        kind = next((a for a in args if a is not type(None)), None) if args else hints[key]
        values[key] = _coerce(f"{prefix}.{key}", value, kind, optional=type(None) in args)
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.name not in values
        and f.name != extra
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"missing key {prefix}.{missing[0]}")
    if extra is not None:
        values[extra] = rest
    return cls(**values)


_SIMPLE = (bool, int, float, str)


def _param_kind(param: inspect.Parameter) -> tuple[type | None, bool]:
    """``(kind, optional)`` of a constructor argument from its annotation (``float | None`` -> float,
    optional), else from its default; ``kind`` is None when it is not a plain bool/int/float/str."""
    hint = param.annotation
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if hint in _SIMPLE:
        return hint, param.default is None
    if len(args) == 1 and args[0] in _SIMPLE and type(None) in typing.get_args(hint):
        return args[0], True
    if hint is inspect.Parameter.empty and isinstance(param.default, _SIMPLE):
        return type(param.default), False
    return None, param.default is None


def _signature(builder: Any) -> inspect.Signature:
    try:
        return inspect.signature(builder, eval_str=True)
    except (NameError, TypeError):  # an annotation that only exists for type checkers
        return inspect.signature(builder)


def _check_kwargs(
    prefix: str, builder: Any, kwargs: dict[str, Any], reserved: tuple[str, ...]
) -> dict[str, Any]:
    """Names in ``kwargs`` must be parameters of ``builder``; values must match their annotated types."""
    params = _signature(builder).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    allowed = [
        n for n, p in params.items() if p.kind is not inspect.Parameter.VAR_KEYWORD and n not in reserved
    ]
    out = {}
    for key, value in kwargs.items():
        if key in reserved:
            raise ConfigError(
                f"{prefix}.{key} is set by the engine (from the data or the sampler section); remove it"
            )
        if key not in params and not takes_any:
            _unknown(f"{prefix}.{key}", allowed)
        kind, optional = _param_kind(params[key]) if key in params else (None, True)
        out[key] = _coerce(f"{prefix}.{key}", value, kind, optional=optional)
        choices = _literal_choices(params[key].annotation) if key in params else ()
        if choices and out[key] is not None:
            _check_choice(f"{prefix}.{key}", out[key], choices)
        item = _sequence_item(params[key].annotation) if key in params else None
        if item is not None and out[key] is not None:
            _check_sequence(f"{prefix}.{key}", out[key], item)
    return out


def _literal_choices(hint: Any) -> tuple[str, ...]:
    """The values of a ``Literal["a", "b"]`` annotation (also inside ``| None``), else ``()``."""
    options = [hint, *typing.get_args(hint)] if typing.get_origin(hint) is not typing.Literal else [hint]
    for option in options:
        if typing.get_origin(option) is typing.Literal:
            return tuple(str(v) for v in typing.get_args(option))
    return ()


def _sequence_item(hint: Any) -> type | None:
    """``int`` for a ``Sequence[int]``, ``list[int]`` or ``tuple[int, ...]`` annotation, else None."""
    args = [a for a in typing.get_args(hint) if a is not Ellipsis]
    if typing.get_origin(hint) in (list, tuple, collections.abc.Sequence) and len(args) == 1:
        return args[0] if args[0] in _SIMPLE else None
    return None


def _check_sequence(key: str, value: Any, item: type) -> None:
    numbers = (int, float) if item is float else (item,)
    if not isinstance(value, list | tuple) or any(
        isinstance(v, bool) != (item is bool) or not isinstance(v, numbers) for v in value
    ):
        _fail(key, value, f"expected a list of {item.__name__}, e.g. [64, 64]")


def _check_component(
    prefix: str, raw: Any, registry: dict[str, Any], reserved: tuple[str, ...]
) -> ComponentConfig:
    comp = _build_section(ComponentConfig, raw, prefix, extra="kwargs")
    _check_choice(f"{prefix}.name", comp.name, registry)
    kwargs = _check_kwargs(prefix, registry[comp.name], comp.kwargs, reserved)
    try:
        check_spec_limits({prefix: kwargs}, root="")
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return ComponentConfig(comp.name, kwargs)


def _check_dataset(ds: DatasetConfig) -> DatasetConfig:
    from metadl.data import DATASETS
    from metadl.tasks import TASK_SOURCES, config_task_sources

    sources = config_task_sources()
    _check_choice("dataset.name", ds.name, [*DATASETS, *sources])
    _check_range("dataset.image_size", ds.image_size, 1)
    if ds.image_size is not None and ds.image_size > MAX_IMAGE_SIDE:
        _fail("dataset.image_size", ds.image_size, f"must be <= {MAX_IMAGE_SIDE}")
    if ds.name in sources:
        return dataclasses.replace(ds, options=_check_source(ds, TASK_SOURCES[ds.name]))
    fixed = {k: v for k, v in (("root", ds.root), ("image_size", ds.image_size)) if v is not None}
    builder = DATASETS[ds.name]
    if "split" not in inspect.signature(builder).parameters and ds.root is None:
        raise ConfigError(f"dataset.root is required for {ds.name}: a folder with one sub-folder per split")
    options = _check_kwargs("dataset", builder, {**fixed, **ds.options}, ("split",))
    options = {k: v for k, v in options.items() if k not in fixed}
    return dataclasses.replace(ds, options=options)


def _check_source(ds: DatasetConfig, builder: Any) -> dict[str, Any]:
    """A task source's options against its builder's signature; the engine sets :data:`SOURCE_DERIVED`."""
    params = _signature(builder).parameters
    if ds.image_size is not None:
        raise ConfigError(f"dataset.image_size does not apply to task source {ds.name!r}; remove it")
    if "root" in params:
        if ds.root is None and params["root"].default is inspect.Parameter.empty:
            raise ConfigError(f"dataset.root is required for task source {ds.name!r}: the folder it reads")
    elif ds.root is not None:
        raise ConfigError(f"dataset.root does not apply to task source {ds.name!r}; remove it")
    options = _check_kwargs("dataset", builder, ds.options, (*SOURCE_DERIVED, "root"))
    for name, param in params.items():
        required = param.default is inspect.Parameter.empty and param.kind is not param.VAR_KEYWORD
        if required and name not in options and name not in (*SOURCE_DERIVED, "root"):
            raise ConfigError(f"missing key dataset.{name} (task source {ds.name!r} needs it)")
    return options


def _check_source_splits(cfg: Config) -> None:
    """A source whose ``split`` argument is a ``Literal`` (``fertility``) takes only those split names."""
    from metadl.tasks import TASK_SOURCES

    if cfg.dataset.name not in TASK_SOURCES:
        return
    param = _signature(TASK_SOURCES[cfg.dataset.name]).parameters.get("split")
    choices = () if param is None else _literal_choices(param.annotation)
    if not choices:
        return
    for key, value in (
        ("dataset.split", cfg.dataset.split),
        ("dataset.val_split", cfg.dataset.val_split),
        ("eval.split", cfg.eval.split),
    ):
        if value is not None:
            _check_choice(key, value, choices)


def config_from_dict(raw: Any, *, source: str = "config") -> Config:
    """Validate a parsed YAML mapping into a :class:`Config`; ``source`` names the file in errors.

    Example:
        >>> cfg = config_from_dict({"dataset": {"name": "sinusoid"}, "backbone": {"name": "mlp", "hidden": [40, 40]},
        ...                         "learner": {"name": "protonet"}, "train": {"iterations": 10}})
        >>> cfg.train.iterations, cfg.backbone.kwargs
        (10, {'hidden': [40, 40]})
        >>> config_from_dict({"dataset": {"name": "sinusoid"}, "backbone": {"name": "mlp"},
        ...                   "learner": {"name": "protonet"}, "train": {"iteration": 10}})
        Traceback (most recent call last):
        ...
        metadl.config.ConfigError: config: unknown key 'train.iteration' (did you mean 'iterations'?); allowed keys here: checkpoint_every, grad_clip, iterations, val_episodes, val_every
    """
    from metadl.algorithms import LEARNERS
    from metadl.models import BACKBONES

    try:
        if not isinstance(raw, dict):
            _fail("(top level)", raw, "a config is a mapping with sections dataset, backbone, learner, ...")
        sections = {"dataset", "sampler", "backbone", "learner", "optimizer", "train", "eval", "augment"}
        for key in raw:
            if key not in {*sections, "seed", "device"}:
                _unknown(str(key), [*sections, "seed", "device"])
        for key in ("dataset", "backbone", "learner"):
            if key not in raw:
                raise ConfigError(f"missing section {key!r} (it needs at least a name)")
        cfg = Config(
            dataset=_check_dataset(_build_section(DatasetConfig, raw["dataset"], "dataset", extra="options")),
            backbone=_check_component("backbone", raw["backbone"], BACKBONES, ()),
            learner=_check_component("learner", raw["learner"], LEARNERS, LEARNER_DERIVED),
            sampler=_build_section(SamplerConfig, raw.get("sampler"), "sampler"),
            optimizer=_build_section(OptimizerConfig, raw.get("optimizer"), "optimizer"),
            train=_build_section(TrainConfig, raw.get("train"), "train"),
            eval=_build_section(EvalConfig, raw.get("eval"), "eval"),
            seed=_coerce("seed", raw.get("seed", 0), int, optional=False),
            device=_coerce("device", raw.get("device", "auto"), str, optional=False),
            augment=_check_augment(raw.get("augment")),
        )
        _check_values(cfg)
        _check_source_splits(cfg)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
    return cfg


def _check_augment(raw: Any) -> AugmentConfig:
    if isinstance(raw, dict):  # `--set augment.train=[{name: affine, degrees: 10}]` arrives as text
        raw = {k: _coerce(f"augment.{k}", v, None, True) for k, v in raw.items()}
    _check_finite("augment", raw)
    try:
        return parse_augment(raw)
    except AugmentError as err:
        raise ConfigError(str(err)) from None


def _check_values(cfg: Config) -> None:
    if cfg.augment.unsupervised is not None and cfg.dataset.name not in DATASETS:
        _fail(
            "augment.unsupervised",
            cfg.augment.unsupervised,
            "unsupervised tasks are built from a dataset's images",
        )
    for key in ("ways", "shots", "queries", "meta_batch"):
        _check_range(f"sampler.{key}", getattr(cfg.sampler, key), 1)
    for key in ("ways", "shots", "queries", "episodes"):
        _check_range(f"eval.{key}", getattr(cfg.eval, key), 1)
    if not re.fullmatch(r"true|True|estimate|[1-9][0-9]*", cfg.eval.clusters):  # --set gives True
        _fail("eval.clusters", cfg.eval.clusters, "write true, estimate or a positive integer such as 100")
    _check_choice("sampler.source", cfg.sampler.source, EPISODE_SOURCES)
    _check_choice("eval.source", cfg.eval.source, EPISODE_SOURCES)
    o, t = cfg.optimizer, cfg.train
    _check_choice("optimizer.name", o.name, OPTIMIZERS)
    _check_choice("optimizer.schedule", o.schedule, SCHEDULES)
    _check_range("optimizer.lr", o.lr, 0, strict=True)
    for key in ("weight_decay", "momentum", "warmup"):
        _check_range(f"optimizer.{key}", getattr(o, key), 0)
    _check_range("optimizer.step_size", o.step_size, 1)
    _check_range("optimizer.gamma", o.gamma, 0, strict=True)
    if o.momentum and o.name != "sgd":
        _fail(
            "optimizer.momentum", o.momentum, f"momentum applies to sgd only (optimizer.name is {o.name!r})"
        )
    _check_range("train.iterations", t.iterations, 1)
    for key in ("val_every", "checkpoint_every"):
        _check_range(f"train.{key}", getattr(t, key), 0)
    _check_range("train.val_episodes", t.val_episodes, 1)
    _check_range("train.grad_clip", t.grad_clip, 0, strict=True)
    if not _DEVICE.fullmatch(cfg.device):
        _fail("device", cfg.device, "choose auto, cpu, cuda, cuda:N or mps")


# --------------------------------------------------------------------------------------------- files


def parse_overrides(overrides: typing.Iterable[str]) -> list[tuple[list[str], _Text]]:
    """``["learner.inner_lr=0.1"]`` -> ``[(["learner", "inner_lr"], "0.1")]``; the value is typed later."""
    out = []
    for item in overrides:
        key, eq, value = item.partition("=")
        path = key.strip().split(".")
        if not eq or not all(path) or len(path) > 2:
            raise ConfigError(
                f"bad override {item!r}: write KEY=VALUE with KEY a top-level key or SECTION.KEY, "
                "e.g. --set learner.inner_lr=0.1 or --set seed=3"
            )
        out.append((path, _Text(value.strip())))
    return out


# Sections naming one component whose other keys are that component's arguments: a new name drops them.
COMPONENT_SECTIONS = ("backbone", "learner")


def apply_overrides(raw: dict[str, Any], overrides: typing.Iterable[str]) -> dict[str, Any]:
    """A copy of the raw mapping with ``KEY=VALUE`` overrides applied (validated afterwards).

    Overriding ``backbone.name`` or ``learner.name`` with another component starts that section afresh:
    the file's arguments belong to the old component (``--set backbone.name=resnet12`` would otherwise
    hand Conv-4's ``hidden`` to ResNet-12). Arguments given as overrides apply whatever their order.

    Example:
        >>> apply_overrides({"backbone": {"name": "conv4", "hidden": 64}},
        ...                 ["backbone.channels=[8, 8, 8, 8]", "backbone.name=resnet12"])["backbone"]
        {'channels': '[8, 8, 8, 8]', 'name': 'resnet12'}
    """
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    parsed = parse_overrides(overrides)
    for path, value in parsed:
        current = raw.get(path[0])
        renamed = isinstance(current, dict) and current.get("name") != str(value)
        if path[1:] == ["name"] and path[0] in COMPONENT_SECTIONS and renamed:
            raw[path[0]] = {}
    for path, value in parsed:
        if len(path) == 1:
            raw[path[0]] = value
            continue
        section = raw.setdefault(path[0], {})
        if not isinstance(section, dict):
            raise ConfigError(f"cannot set {'.'.join(path)}: {path[0]!r} is not a section")
        section[path[1]] = value
    return raw


def load_config(path: str | Path, overrides: typing.Iterable[str] = ()) -> Config:
    """Read, override and validate a YAML config (:func:`read_yaml`: no code runs from the file)."""
    path = Path(path)
    try:
        raw = read_yaml(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start})") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from None
    if isinstance(raw, dict):
        try:
            raw = apply_overrides(raw, overrides)
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from None
    return config_from_dict(raw, source=str(path))


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """The plain mapping that :func:`config_from_dict` reads back to an equal config."""
    out: dict[str, Any] = {"seed": cfg.seed, "device": cfg.device}
    ds = dataclasses.asdict(cfg.dataset)
    out["dataset"] = {**{k: v for k, v in ds.items() if k != "options"}, **ds["options"]}
    for key in ("sampler", "backbone", "learner", "optimizer", "train", "eval"):
        section = dataclasses.asdict(getattr(cfg, key))
        out[key] = {"name": section["name"], **section["kwargs"]} if "kwargs" in section else section
    if cfg.augment != AugmentConfig():
        out["augment"] = cfg.augment.to_dict()
    return out


def config_diff(a: Config, b: Config) -> list[str]:
    """Dotted keys whose values differ between two configs.

    Example:
        >>> a = config_from_dict({"dataset": {"name": "sinusoid"}, "backbone": {"name": "mlp"}, "learner": {"name": "protonet"}})
        >>> config_diff(a, dataclasses.replace(a, seed=1, train=dataclasses.replace(a.train, iterations=5)))
        ['seed', 'train.iterations']
    """
    da, db = config_to_dict(a), config_to_dict(b)
    out = []
    for key in {**da, **db}:
        if isinstance(da.get(key, {}), dict) and isinstance(db.get(key, {}), dict):
            a_part, b_part = da.get(key, {}), db.get(key, {})
            out += [f"{key}.{k}" for k in sorted(set(a_part) | set(b_part)) if a_part.get(k) != b_part.get(k)]
        elif da[key] != db[key]:
            out.append(key)
    return out


class _Dumper(yaml.SafeDumper):
    """Block-style mappings, lists on one line (``hidden: [64, 64]``)."""


_Dumper.add_representer(list, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved config (every default spelled out) as YAML."""
    Path(path).write_text(yaml.dump(config_to_dict(cfg), Dumper=_Dumper, sort_keys=False))


def _shipped_folder() -> Path:
    """The folder of the configs that ship inside the package (``metadl/configs/``, package data)."""
    folder = resources.files("metadl") / "configs"
    if not isinstance(folder, Path):  # imported from a zip archive: the YAML files have no path of their own
        raise ConfigError(
            f"metadl is imported from an archive ({folder}), so its shipped configs have no file path; "
            "install metadl from its wheel (pip install metadl) or pass the path of a YAML file"
        )
    return folder


def list_configs() -> list[str]:
    """The names of the configs shipped with metadl (``metadl train NAME`` runs one).

    Example:
        >>> {"demo", "maml_sinusoid"} <= set(list_configs())
        True
    """
    return sorted(p.stem for p in _shipped_folder().glob("*.yaml"))


def shipped_config(name: str) -> Path:
    """The path of a config shipped with metadl (``metadl/configs/``), by file name or stem.

    Example:
        >>> shipped_config("demo.yaml") == shipped_config("demo")
        True
    """
    path = _shipped_folder() / (name if name.endswith(".yaml") else f"{name}.yaml")
    if not path.is_file():
        raise ConfigError(
            f"no config file {name!r} and no shipped config of that name; shipped: {list_configs()}"
        )
    return path


def config_summary(name: str) -> str:
    """What a shipped config is: the first line of its header comment, up to the first ``(`` or ``:``.

    Example:
        >>> config_summary("maml_sinusoid")
        'MAML on sinusoid regression'
    """
    return header_summary(shipped_config(name))


def header_summary(path: Path) -> str:
    """The first line of a YAML file's header comment, up to the first ``(`` or ``:`` ("" without one)."""
    first = path.read_text().partition("\n")[0]
    if not first.startswith("#"):
        return ""
    return re.split(r"\s*[(:]", first.lstrip("# "), maxsplit=1)[0].strip()


def find_config(name_or_path: str | Path) -> Path:
    """A YAML file as given, else the shipped config of that name (``metadl train maml_sinusoid``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    if path.suffix in (".yaml", ".yml") and len(path.parts) > 1:
        raise ConfigError(f"config file {path} does not exist")
    return shipped_config(str(name_or_path))


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA if available, else CPU; an explicit device must exist here.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not _DEVICE.fullmatch(name):
        raise ConfigError(f"device = {name!r} is not allowed: choose auto, cpu, cuda, cuda:N or mps")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device = {name!r} but CUDA is not available here; use device: auto or cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device = {name!r} but only {torch.cuda.device_count()} CUDA device(s) exist")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device = 'mps' but MPS is not available here; use device: auto or cpu")
    return device
