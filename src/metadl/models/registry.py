"""The backbone registry: one visible dict, filled here, and the two functions that read it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from metadl.models.attention import SelfAttentionEncoder
from metadl.models.base import Backbone
from metadl.models.bert_top import BertTop
from metadl.models.conv4 import Conv4
from metadl.models.identity import Identity
from metadl.models.mlp import MLP
from metadl.models.resnet12 import ResNet12
from metadl.models.rnn import gru_encoder, lstm_encoder
from metadl.models.transformer import TransformerEncoder

# name -> a Backbone class or a function building one (lstm/gru: RNNEncoder with the cell preset)
BACKBONES: dict[str, Callable[..., Backbone]] = {
    "mlp": MLP,
    "identity": Identity,
    "conv4": Conv4,
    "resnet12": ResNet12,
    "lstm": lstm_encoder,
    "gru": gru_encoder,
    "attention": SelfAttentionEncoder,
    "transformer": TransformerEncoder,
    "bert_top": BertTop,  # top blocks of a pretrained text encoder, fed by cached lower-layer states
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
