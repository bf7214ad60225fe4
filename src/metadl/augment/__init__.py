"""Generated training data: seeded image transforms, class rotation, MLTI task mixing, and the wrapper
that applies them to a training task source (``docs/augment.md``)."""

from metadl.augment.checks import AugmentError
from metadl.augment.registry import TRANSFORMS, compose, create_transform, list_transforms
from metadl.augment.source import AugmentedSource
from metadl.augment.tasks import ClassRotation, TaskMix
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

__all__ = [
    "TRANSFORMS",
    "Affine",
    "AugmentError",
    "AugmentedSource",
    "ClassRotation",
    "ColorJitter",
    "Compose",
    "Elastic",
    "PixelDropout",
    "RandomResizedCrop",
    "StrokeWidth",
    "TaskMix",
    "Transform",
    "compose",
    "create_transform",
    "list_transforms",
]
