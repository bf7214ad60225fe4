"""Backbones (feature extractors) behind one contract, created by name."""

from metadl.models.base import Backbone
from metadl.models.layers import BatchNorm
from metadl.models.registry import BACKBONES, create_backbone, list_backbones

__all__ = ["BACKBONES", "Backbone", "BatchNorm", "create_backbone", "list_backbones"]
