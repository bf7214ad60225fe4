"""An untrained text model for CLI tests: close to a bag of words, so keyword sentences separate."""

from __future__ import annotations

import torch

from metadl.apps.text import TextModel
from metadl.models.text import TokenEncoder


def bag_of_words_model(texts: list[str]) -> TextModel:
    """ProtoNet on an untrained one-layer attention backbone over whole-word tokens of ``texts`` (seed 0).

    Whole words, not BPE pieces: an untrained model's mean-pooled embedding is then close to a bag of
    words, where over character pieces it would compare spellings.
    """
    torch.manual_seed(0)
    return TextModel.build(
        TokenEncoder(texts=texts, tokenizer="word"),
        "protonet",
        backbone="attention",
        d_model=16,
        num_heads=2,
        num_layers=1,
    )
