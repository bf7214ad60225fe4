"""Text encoders: what turns sentences into the tensors a backbone consumes.

Two kinds, one interface (:class:`TextEncoder`): ``encode(texts)`` and ``backbone_spec()``, the backbone
(an entry of :func:`metadl.models.create_backbone`) that reads what ``encode`` returns.

- **Frozen** pretrained encoders (:class:`FrozenTextEncoder`: MiniLM, WordLlama) return ``(N, D)``
  float32 sentence embeddings and are read by the ``identity`` backbone, so a learner (ProtoNet, the
  SVM/ridge/logreg heads, ANIL/MAML on their head) works on the embeddings directly. Their output
  depends only on the text and on the model's files, whose sha256 (``fingerprint``) keys the
  :class:`~metadl.models.text.cache.EmbeddingCache`: an episode never re-encodes a sentence.
- **From scratch** (:class:`TokenEncoder`): a :class:`~metadl.models.text.tokenizer.WordTokenizer`
  whose ``encode`` returns int64 token ids ``(N, L)`` for the ``lstm``/``gru``/``transformer``/
  ``attention`` backbones (built with ``vocab_size=``), which embed them: no pretrained file at all.

``config()`` is JSON that rebuilds the encoder through :func:`create_text_encoder
<metadl.models.text.registry.create_text_encoder>`, so a saved text model records its encoder.

Example:
    >>> enc = TokenEncoder(texts=["play jazz", "stop the music"], max_length=8)
    >>> enc.encode(["play music"]).tolist(), enc.backbone_spec("gru", hidden_size=4)
    ([[4, 3]], {'name': 'gru', 'hidden_size': 4, 'vocab_size': 7})
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from metadl.models.text.cache import EmbeddingCache
from metadl.models.text.tokenizer import WordTokenizer


class EncoderError(ValueError):
    """A text encoder cannot be built or loaded (the message names the file or value and the fix)."""


class TextEncoder(ABC):
    """Sentences -> the input of ``backbone_spec()``'s backbone (see the module docstring)."""

    name: ClassVar[str]
    frozen: ClassVar[bool]

    @abstractmethod
    def encode(self, texts: Sequence[str]) -> Tensor:
        """``(N, D)`` float32 embeddings (frozen encoders) or ``(N, L)`` int64 token ids."""

    @abstractmethod
    def backbone_spec(self, backbone: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """``{"name": ..., **kwargs}`` of the backbone that reads ``encode``'s output."""

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON keyword arguments (with ``"name"``) that rebuild this encoder by name."""


class TokenEncoder(TextEncoder):
    """A word tokenizer feeding a sequence backbone trained from scratch.

    Args:
        texts: fit the vocabulary on these (the training texts), or
        vocab: use this vocabulary (``["[PAD]", "[UNK]", ...]``, as saved by ``config()``).
        max_length: tokens kept per text; max_vocab: vocabulary size when fitting.
    """

    name = "tokens"
    frozen = False

    def __init__(
        self,
        *,
        texts: Sequence[str] | None = None,
        vocab: Sequence[str] | None = None,
        max_length: int = 32,
        max_vocab: int = 20_000,
    ) -> None:
        if (texts is None) == (vocab is None):
            raise EncoderError("TokenEncoder needs exactly one of texts= (to fit a vocabulary) or vocab=")
        try:
            self.tokenizer = (
                WordTokenizer(vocab, max_length=max_length)
                if vocab is not None
                else WordTokenizer.fit(texts or (), max_vocab=max_vocab, max_length=max_length)
            )
        except ValueError as err:
            raise EncoderError(f"TokenEncoder: {err}") from None

    def encode(self, texts: Sequence[str]) -> Tensor:
        return self.tokenizer.encode(texts)

    def backbone_spec(self, backbone: str | None = None, **kwargs: Any) -> dict[str, Any]:
        if backbone not in ("lstm", "gru", "transformer", "attention"):
            raise EncoderError(
                f"token ids are read by a sequence backbone; choose backbone= from "
                f"['attention', 'gru', 'lstm', 'transformer'], got {backbone!r}"
            )
        return {"name": backbone, **kwargs, "vocab_size": self.tokenizer.vocab_size}

    def config(self) -> dict[str, Any]:
        return {"name": self.name, **self.tokenizer.to_dict()}


class FrozenTextEncoder(TextEncoder):
    """A pretrained encoder whose output depends only on the text and its files (``fingerprint``).

    Subclasses set ``fingerprint`` (sha256 over every output-relevant file) and ``dim`` and implement
    ``_embed``; ``encode`` adds de-duplication, batching and the on-disk cache.
    """

    frozen = True
    fingerprint: str
    dim: int

    def __init__(self, *, cache: EmbeddingCache | None = None, batch_size: int = 64) -> None:
        if batch_size < 1:
            raise EncoderError(f"batch_size={batch_size} must be >= 1")
        self.cache, self.batch_size = cache, batch_size

    @abstractmethod
    def _embed(self, texts: Sequence[str]) -> Tensor:
        """``(N, dim)`` float32 embeddings of ``texts``, computed (no cache)."""

    def encode(self, texts: Sequence[str]) -> Tensor:
        unique = list(dict.fromkeys(texts))
        cached = (
            self.cache.get(self.fingerprint, unique, dim=self.dim) if self.cache else [None] * len(unique)
        )
        missing = [t for t, v in zip(unique, cached, strict=True) if v is None]
        fresh: dict[str, Tensor] = {}
        for start in range(0, len(missing), self.batch_size):
            chunk = missing[start : start + self.batch_size]
            vectors = self._embed(chunk).detach().to("cpu", torch.float32)
            if self.cache is not None:
                self.cache.put(self.fingerprint, chunk, vectors)
            fresh.update(zip(chunk, vectors, strict=True))
        table = {t: v if v is not None else fresh[t] for t, v in zip(unique, cached, strict=True)}
        if not texts:
            return torch.zeros(0, self.dim)
        return torch.stack([table[t] for t in texts])

    def backbone_spec(self, backbone: str | None = None, **kwargs: Any) -> dict[str, Any]:
        if backbone not in (None, "identity", "mlp"):
            raise EncoderError(
                f"sentence embeddings are read by 'identity' or 'mlp', got backbone={backbone!r}"
            )
        return {"name": backbone or "identity", **kwargs, "in_features": self.dim}
