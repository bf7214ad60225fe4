"""The frozen lower layers of a pretrained sentence encoder, whose token states feed a trainable top.

:class:`LowerLayerEncoder` runs the embeddings and the first ``frozen_layers`` blocks of a
sentence-transformers BERT-style model (all-MiniLM-L6-v2: 6 blocks of width 384) and returns, per
sentence, the token states after them padded or truncated to ``max_length`` tokens, each followed by its
attention-mask value, flattened to one ``(max_length * (hidden + 1),)`` vector: the input of the
``bert_top`` backbone (:class:`metadl.models.bert_top.BertTop`), which holds the remaining blocks and
the pooling and is what episodic fine-tuning trains (:mod:`metadl.apps.text.finetune`).

Its output depends only on the text, the model's files, ``frozen_layers`` and ``max_length``, so it is a
:class:`~metadl.models.text.encoders.FrozenTextEncoder`: each sentence is computed once and cached on
disk (:class:`~metadl.models.text.cache.EmbeddingCache` under ``cache_dir/layers``, atomic and bounded by
``cache_max_bytes``) with the key ``sha256(model hash, layer, max_length, text)``; every later episode,
draw and process reads it back. The lower blocks run as :class:`~metadl.models.bert_top.BertBlock` with
the model's weights (the same code as the trainable top), after the model's own embedding module.

``top_state()`` gives the pretrained weights of the blocks above ``frozen_layers`` for a ``bert_top``
backbone built from ``backbone_spec()``; before any training, encoder + top reproduce the model's
sentence embeddings (for sentences within ``max_length`` tokens).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from metadl.models.bert_top import BertBlock, bert_layer_state
from metadl.models.text.cache import EmbeddingCache, default_cache_dir
from metadl.models.text.encoders import EncoderError, FrozenTextEncoder
from metadl.models.text.sentence import MINILM, SentenceTransformerEncoder

DEFAULT_LAYER_CACHE_BYTES = 8 * 2**30  # token states are ~40 KB a sentence at max_length 24


class LowerLayerEncoder(FrozenTextEncoder):
    """Token states after the first ``frozen_layers`` blocks of ``model`` (see the module docstring).

    Args:
        model: a sentence-transformers folder, ``"all-MiniLM-L6-v2"`` or a hub name.
        frozen_layers: blocks computed here (0: the embedding layer's output only).
        max_length: tokens kept per sentence, [CLS] and [SEP] included (choose it with
            :meth:`length_quantile` on the training texts).
        cache, cache_dir, cache_max_bytes: the on-disk cache of token states.
        batch_size: sentences per forward pass when computing.
    """

    name = "sentence_transformer_layers"

    def __init__(
        self,
        *,
        model: str = MINILM,
        frozen_layers: int = 4,
        max_length: int = 32,
        cache: bool = True,
        cache_dir: str | None = None,
        cache_max_bytes: int = DEFAULT_LAYER_CACHE_BYTES,
        batch_size: int = 64,
    ) -> None:
        root = default_cache_dir() if cache_dir is None else cache_dir
        store = EmbeddingCache(f"{root}/layers", max_bytes=cache_max_bytes) if cache else None
        super().__init__(cache=store, batch_size=batch_size)
        if max_length < 3:
            raise EncoderError(f"max_length={max_length} must be >= 3 ([CLS], a token, [SEP])")
        self.base = SentenceTransformerEncoder(
            model=model, cache=False, cache_dir=cache_dir, batch_size=batch_size
        )
        transformer: Any = self.base.net[0]  # sentence-transformers' Transformer module
        self.tokenizer: Any = transformer.tokenizer  # a transformers tokenizer
        self.bert: Any = transformer.auto_model  # a transformers BertModel
        config = self.bert.config
        if config.model_type != "bert":
            raise EncoderError(
                f"{model}: a {config.model_type} model; only BERT-style encoders are supported"
            )
        total = int(config.num_hidden_layers)
        if not 0 <= frozen_layers <= total:
            raise EncoderError(
                f"frozen_layers={frozen_layers}; {model} has {total} layers (choose 0..{total})"
            )
        self.pooling, self.normalize = _pooling(self.base)
        self.frozen_layers, self.max_length, self.total_layers = frozen_layers, max_length, total
        self.hidden = int(config.hidden_size)
        self._block_kwargs: dict[str, Any] = {
            "hidden_size": self.hidden,
            "num_heads": int(config.num_attention_heads),
            "intermediate_size": int(config.intermediate_size),
            "layer_norm_eps": float(config.layer_norm_eps),
        }
        state = self.bert.state_dict()
        self.lower = nn.ModuleList()
        for i in range(frozen_layers):
            block = BertBlock(**self._block_kwargs, dropout=0.0)
            block.load_state_dict(bert_layer_state(state, f"encoder.layer.{i}."))
            self.lower.append(block)
        self.lower.eval().requires_grad_(False)
        self.bert.eval().requires_grad_(False)
        self.dim = max_length * (self.hidden + 1)
        self.fingerprint = hashlib.sha256(
            f"{self.base.fingerprint}\0layer={frozen_layers}\0max_length={max_length}".encode()
        ).hexdigest()
        self.model = model
        self._options = {
            "cache": cache,
            "cache_dir": cache_dir,
            "cache_max_bytes": cache_max_bytes,
            "batch_size": batch_size,
        }

    def length_quantile(self, texts: Sequence[str], q: float = 0.95) -> int:
        """The ``q`` quantile of the token counts of ``texts`` ([CLS] and [SEP] included): a ``max_length``."""
        lengths = [len(ids) for ids in self.tokenizer(list(texts), truncation=False)["input_ids"]]
        return int(np.ceil(np.quantile(lengths, q)))

    @torch.no_grad()
    def _embed(self, texts: Sequence[str]) -> Tensor:
        tok = self.tokenizer(
            list(texts),
            padding="max_length",
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        mask = tok["attention_mask"].float()  # (N, L)
        h = self.bert.embeddings(input_ids=tok["input_ids"], token_type_ids=tok["token_type_ids"])
        bias = (1.0 - mask)[:, None, None, :] * torch.finfo(h.dtype).min
        for block in self.lower:
            h = block(h, bias)
        return torch.cat([h, mask[..., None]], -1).flatten(1)  # (N, L * (H + 1))

    def backbone_spec(self, backbone: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """The ``bert_top`` backbone holding the blocks above ``frozen_layers`` (``kwargs``: e.g. ``dropout``)."""
        if backbone not in (None, "bert_top"):
            raise EncoderError(f"lower-layer token states are read by 'bert_top', got backbone={backbone!r}")
        return {
            "name": "bert_top",
            "max_length": self.max_length,
            "num_layers": self.total_layers - self.frozen_layers,
            "normalize": self.normalize,
            **self._block_kwargs,
            **kwargs,
        }

    def top_state(self) -> dict[str, Tensor]:
        """The pretrained weights of the blocks above ``frozen_layers``, keyed as a ``bert_top``'s state dict."""
        state = self.bert.state_dict()
        out = {}
        for j, i in enumerate(range(self.frozen_layers, self.total_layers)):
            for key, value in bert_layer_state(state, f"encoder.layer.{i}.").items():
                out[f"layers.{j}.{key}"] = value.clone()
        return out

    def config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": self.model,
            "frozen_layers": self.frozen_layers,
            "max_length": self.max_length,
            **self._options,
        }


def _pooling(encoder: SentenceTransformerEncoder) -> tuple[str, bool]:
    """("mean", normalize?) from the model's module list; other poolings are refused."""
    kinds = [type(module).__name__ for module in encoder.net]
    if kinds[:2] != ["Transformer", "Pooling"] or not set(kinds[2:]) <= {"Normalize"}:
        raise EncoderError(f"{encoder.model}: modules {kinds}; expected Transformer, Pooling[, Normalize]")
    pooling: Any = encoder.net[1]
    config = pooling.get_config_dict()
    modes = {k for k, v in config.items() if k.startswith("pooling_mode_") and v is True}  # before v5
    if config.get("pooling_mode", "mean") != "mean" or not modes <= {"pooling_mode_mean_tokens"}:
        raise EncoderError(f"{encoder.model}: pooling {config}; only mean pooling is supported")
    return "mean", "Normalize" in kinds
