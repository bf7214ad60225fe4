"""The ``augment`` section of a config: what generated data the training tasks get, checked at load time.

::

    augment:
      train:                       # per-image transforms of training support and query images, in order
        - {name: affine, degrees: 15, translate: 0.1, scale: [0.9, 1.1], shear: 10}
        - {name: elastic, alpha: 1.5, sigma: 3}
      classes: {rotations: [0, 90, 180, 270], flip: 0.0, p: 0.5}   # rotated / mirrored classes as new classes
      mix: {alpha: 0.5, p: 0.5}                                    # MLTI interpolation of tasks
      unsupervised: {name: umtra, transforms: [{name: affine, translate: 0.1}]}   # or {name: cactus, ...}

Every part is optional. ``unsupervised`` replaces the labelled training episodes by tasks built from the
training split's images alone (its labels unused): ``umtra`` or ``cactus`` with their arguments
(:class:`~metadl.tasks.umtra.UMTRASource`, :class:`~metadl.tasks.cactus.CACTUsSource`), the task shape
coming from the ``sampler`` section. Nothing here touches validation or test episodes.

Checks build every transform once, so a bad value fails with its key (``augment.train[0]: degrees = -3
is not allowed: ...``) before any data is read.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from dataclasses import dataclass, field
from typing import Any

import torch

from metadl.augment.checks import AugmentError
from metadl.augment.registry import check_arguments, compose
from metadl.augment.source import AugmentedSource
from metadl.augment.tasks import ClassRotation, TaskMix
from metadl.tasks.cactus import CACTUsSource
from metadl.tasks.source import TaskSource
from metadl.tasks.umtra import UMTRASource

UNSUPERVISED_SOURCES: dict[str, type[UMTRASource] | type[CACTUsSource]] = {
    "umtra": UMTRASource,
    "cactus": CACTUsSource,
}
# Arguments of an unsupervised source that the engine fills in (the pool and the task shape from `sampler`).
ENGINE_SET = ("dataset", "n_way", "k_shot", "n_query", "seed", "embeddings")


@dataclass(frozen=True)
class AugmentConfig:
    """The validated ``augment`` section (see the module docstring); the default changes nothing."""

    train: list[dict[str, Any]] = field(default_factory=list)
    classes: dict[str, Any] | None = None
    mix: dict[str, Any] | None = None
    unsupervised: dict[str, Any] | None = None

    @property
    def augments(self) -> bool:
        """True when the training tasks are transformed (not only built from unlabelled data)."""
        return bool(self.train) or self.classes is not None or self.mix is not None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v}


def _mapping(key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise AugmentError(f"{key} = {value!r} is not allowed: expected a mapping of keys to values")
    return dict(value)


def parse_augment(raw: Any) -> AugmentConfig:
    """Validate the raw ``augment`` mapping (None: no augmentation).

    Example:
        >>> parse_augment({"train": [{"name": "affine", "degrees": 10}], "mix": {"alpha": 0.5}}).augments
        True
        >>> parse_augment({"train": [{"name": "affine", "degree": 10}]})
        Traceback (most recent call last):
        ...
        metadl.augment.checks.AugmentError: augment.train[0] transform 'affine': unknown key 'degree' (did you mean 'degrees'?); allowed keys: degrees, p, padding, scale, shear, translate
    """
    if raw is None:
        return AugmentConfig()
    section = _mapping("augment", raw)
    allowed = [f.name for f in dataclasses.fields(AugmentConfig)]
    for key in section:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise AugmentError(f"unknown key 'augment.{key}'{hint}; allowed keys here: {', '.join(allowed)}")
    train = section.get("train") or []
    if not isinstance(train, list):
        raise AugmentError(
            f"augment.train = {train!r} is not allowed: give a list of {{name: ..., ...}} transforms"
        )
    try:
        compose(train)
    except AugmentError as err:
        raise AugmentError(f"augment.train{err}") from None
    parts: dict[str, dict[str, Any] | None] = {}
    for key, build in (("classes", ClassRotation), ("mix", TaskMix)):
        parts[key] = None
        if section.get(key) is not None:
            parts[key] = kwargs = _mapping(f"augment.{key}", section[key])
            _build(f"augment.{key}", build, kwargs)
    out = AugmentConfig(train=[dict(t) for t in train], classes=parts["classes"], mix=parts["mix"])
    if section.get("unsupervised") is not None:
        out = dataclasses.replace(out, unsupervised=_check_unsupervised(section["unsupervised"]))
    return out


def _build(key: str, build: Any, kwargs: dict[str, Any]) -> Any:
    check_arguments(key, build, kwargs)
    try:
        return build(**kwargs)
    except AugmentError as err:
        raise AugmentError(f"{key}: {err}") from None


def _check_unsupervised(raw: Any) -> dict[str, Any]:
    spec = _mapping("augment.unsupervised", raw)
    name = spec.pop("name", None)
    if name not in UNSUPERVISED_SOURCES:
        raise AugmentError(
            f"augment.unsupervised.name = {name!r} is not allowed: choose one of {sorted(UNSUPERVISED_SOURCES)}"
        )
    params = inspect.signature(UNSUPERVISED_SOURCES[name]).parameters
    allowed = sorted(p for p in params if p not in ENGINE_SET)
    for key, value in spec.items():
        if key in ENGINE_SET:
            raise AugmentError(
                f"augment.unsupervised.{key} is set by the engine (from the data or the sampler); remove it"
            )
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise AugmentError(
                f"unknown key 'augment.unsupervised.{key}'{hint}; allowed keys here: {', '.join(allowed)}"
            )
        if key == "transforms":
            try:
                compose(value)
            except AugmentError as err:
                raise AugmentError(f"augment.unsupervised.transforms{err}") from None
        elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise AugmentError(f"augment.unsupervised.{key} = {value!r} is not allowed: must be an int >= 1")
    return {"name": name, **spec}


def augmented(source: TaskSource, cfg: AugmentConfig, seed: int | torch.Generator) -> TaskSource:
    """``source`` wrapped in the configured augmentation, or ``source`` itself when there is none.

    Example:
        >>> from metadl.tasks import SinusoidSampler
        >>> s = SinusoidSampler(k_shot=2, n_query=2)
        >>> augmented(s, AugmentConfig(), seed=0) is s
        True
    """
    if not cfg.augments:
        return source
    return AugmentedSource(
        source,
        transforms=compose(cfg.train) if cfg.train else None,
        classes=ClassRotation(**cfg.classes) if cfg.classes is not None else None,
        mix=TaskMix(**cfg.mix) if cfg.mix is not None else None,
        seed=seed,
    )


def unsupervised_source(
    cfg: AugmentConfig, dataset: Any, *, n_way: int, k_shot: int, n_query: int, seed: int
) -> TaskSource:
    """The configured unsupervised task source over ``dataset`` (the training split's images)."""
    if cfg.unsupervised is None:
        raise AugmentError("no augment.unsupervised section: the training tasks come from labelled episodes")
    kwargs = {k: v for k, v in cfg.unsupervised.items() if k != "name"}
    build = UNSUPERVISED_SOURCES[cfg.unsupervised["name"]]
    return build(dataset, n_way=n_way, k_shot=k_shot, n_query=n_query, seed=seed, **kwargs)
