"""The transform registry: one visible dict, filled here, and the functions that read it."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from metadl.augment.checks import AugmentError
from metadl.augment.transforms import (
    Affine,
    ColorJitter,
    Compose,
    Elastic,
    PixelDropout,
    RandomResizedCrop,
    StrokeWidth,
    Transform,
)

TRANSFORMS: dict[str, Callable[..., Transform]] = {
    "affine": Affine,  # rotation, scale, shear, translation
    "elastic": Elastic,  # smooth random displacement field (stroke-like distortion)
    "crop": RandomResizedCrop,  # random crop resized back to the image size
    "color": ColorJitter,  # brightness and contrast
    "stroke_width": StrokeWidth,  # thicker or thinner strokes (grey-level dilation / erosion)
    "pixel_dropout": PixelDropout,  # random pixels set to 0 (UMTRA on Omniglot)
}


def list_transforms() -> list[str]:
    """Names accepted by :func:`create_transform`.

    Example:
        >>> list_transforms()
        ['affine', 'color', 'crop', 'elastic', 'pixel_dropout', 'stroke_width']
    """
    return sorted(TRANSFORMS)


def check_arguments(what: str, build: Callable[..., Any], kwargs: Mapping[str, Any]) -> None:
    """Every key of ``kwargs`` must be a keyword of ``build``; else one line naming the key and the allowed ones."""
    allowed = sorted(
        name for name, p in inspect.signature(build).parameters.items() if p.kind is p.KEYWORD_ONLY
    )
    for key in kwargs:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise AugmentError(f"{what}: unknown key {key!r}{hint}; allowed keys: {', '.join(allowed)}")


def create_transform(name: str, **kwargs: Any) -> Transform:
    """Build a transform by name with its keyword arguments.

    Example:
        >>> create_transform("affine", degrees=10).degrees
        10.0
        >>> create_transform("afine")
        Traceback (most recent call last):
        ...
        metadl.augment.checks.AugmentError: unknown transform 'afine' (did you mean 'affine'?); choose one of ['affine', 'color', 'crop', 'elastic', 'pixel_dropout', 'stroke_width']
    """
    if name not in TRANSFORMS:
        close = difflib.get_close_matches(str(name), list(TRANSFORMS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise AugmentError(f"unknown transform {name!r}{hint}; choose one of {list_transforms()}")
    check_arguments(f"transform {name!r}", TRANSFORMS[name], kwargs)
    return TRANSFORMS[name](**kwargs)


def compose(specs: Sequence[Mapping[str, Any]] | Transform) -> Transform:
    """A transform from a list of ``{name: ..., **kwargs}`` mappings (or a transform, returned as is).

    Example:
        >>> len(compose([{"name": "affine", "degrees": 5}, {"name": "elastic"}]))
        2
    """
    if not isinstance(specs, Sequence):
        return specs
    transforms = []
    for i, spec in enumerate(specs):
        if not isinstance(spec, Mapping) or "name" not in spec:
            raise AugmentError(
                f"[{i}] = {spec!r}: a transform is a mapping with a name, e.g. {{name: affine}}"
            )
        try:
            transforms.append(
                create_transform(spec["name"], **{k: v for k, v in spec.items() if k != "name"})
            )
        except AugmentError as err:
            raise AugmentError(f"[{i}] {err}") from None
    return Compose(transforms)
