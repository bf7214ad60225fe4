"""Backbones (feature extractors) behind one contract, created by name."""

from metadl.models.attention import SelfAttentionEncoder
from metadl.models.base import Backbone
from metadl.models.conv4 import Conv4
from metadl.models.layers import BatchNorm
from metadl.models.mlp import MLP
from metadl.models.registry import BACKBONES, create_backbone, list_backbones
from metadl.models.resnet12 import ResNet12
from metadl.models.rnn import RNNEncoder
from metadl.models.transformer import TransformerEncoder

__all__ = [
    "BACKBONES",
    "MLP",
    "Backbone",
    "BatchNorm",
    "Conv4",
    "RNNEncoder",
    "ResNet12",
    "SelfAttentionEncoder",
    "TransformerEncoder",
    "create_backbone",
    "list_backbones",
]
