"""The backbone registry: one visible dict, filled here, and the two functions that read it."""

from __future__ import annotations

from typing import Any

from metadl.models.base import Backbone
from metadl.models.conv4 import Conv4
from metadl.models.mlp import MLP

BACKBONES: dict[str, type[Backbone]] = {
    "mlp": MLP,
    "conv4": Conv4,
}


def list_backbones() -> list[str]:
    """Names accepted by :func:`create_backbone`."""
    return sorted(BACKBONES)


def create_backbone(name: str, **kwargs: Any) -> Backbone:
    """Build a backbone by name with its keyword arguments.

    Example:
        >>> create_backbone("conv4", in_channels=1).out_features
        64
    """
    try:
        cls = BACKBONES[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; choose one of {list_backbones()}") from None
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise TypeError(f"create_backbone({name!r}): {err}") from None
