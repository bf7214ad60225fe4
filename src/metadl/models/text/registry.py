"""The text-encoder registry: one visible dict, filled here, and the functions that read it.

Example:
    >>> list_text_encoders()
    ['sentence_transformer', 'sentence_transformer_layers', 'tokens', 'wordllama']
    >>> create_text_encoder("tokens", texts=["hello there"], tokenizer="word").encode(["hello"]).tolist()
    [[2]]
"""

from __future__ import annotations

from typing import Any

from metadl.models.text.encoders import EncoderError, TextEncoder, TokenEncoder
from metadl.models.text.layers import LowerLayerEncoder
from metadl.models.text.sentence import SentenceTransformerEncoder
from metadl.models.text.wordllama import WordLlamaEncoder

TEXT_ENCODERS: dict[str, type[TextEncoder]] = {
    "sentence_transformer": SentenceTransformerEncoder,  # all-MiniLM-L6-v2 by default (metadl[text])
    "sentence_transformer_layers": LowerLayerEncoder,  # frozen lower blocks for a trainable bert_top
    "wordllama": WordLlamaEncoder,  # static, fast (metadl[text])
    "tokens": TokenEncoder,  # a BPE (default) or word tokenizer for backbones trained from scratch (no extra)
}


def list_text_encoders() -> list[str]:
    """Names accepted by :func:`create_text_encoder`."""
    return sorted(TEXT_ENCODERS)


def create_text_encoder(name: str, **kwargs: Any) -> TextEncoder:
    """Build a text encoder by name (``encoder.config()`` gives back ``name`` and ``kwargs``)."""
    try:
        cls = TEXT_ENCODERS[name]
    except KeyError:
        raise EncoderError(f"unknown text encoder {name!r}; choose one of {list_text_encoders()}") from None
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise EncoderError(f"create_text_encoder({name!r}): {err}") from None
