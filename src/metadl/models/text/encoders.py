"""Text encoders: what turns sentences into the tensors a backbone consumes.

Two kinds, one interface (:class:`TextEncoder`): ``encode(texts)`` and ``backbone_spec()``, the backbone
(an entry of :func:`metadl.models.create_backbone`) that reads what ``encode`` returns.

- **Frozen** pretrained encoders (:class:`FrozenTextEncoder`: MiniLM, WordLlama) return ``(N, D)``
  float32 sentence embeddings and are read by the ``identity`` backbone, so a learner (ProtoNet, the
  SVM/ridge/logreg heads, ANIL/MAML on their head) works on the embeddings directly. Their output
  depends only on the text and on the model's files, whose sha256 (``fingerprint``) keys the
  :class:`~metadl.models.text.cache.EmbeddingCache`: an episode never re-encodes a sentence.
- **From scratch** (:class:`TokenEncoder`): a tokenizer fitted on the training texts (subword
  :class:`~metadl.models.text.bpe.BPETokenizer` by default, or the whole-word
  :class:`~metadl.models.text.tokenizer.WordTokenizer` with ``tokenizer="word"``) whose ``encode``
  returns int64 token ids ``(N, L)`` for the ``lstm``/``gru``/``transformer``/``attention`` backbones
  (built with ``vocab_size=``), which embed them: no pretrained file at all.

``config()`` is JSON that rebuilds the encoder through :func:`create_text_encoder
<metadl.models.text.registry.create_text_encoder>`, so a saved text model records its encoder.

Example:
    >>> enc = TokenEncoder(texts=["play jazz", "play rock", "stop the music"], max_length=8)
    >>> enc.tokenizer.tokens("play music")  # "play" occurs twice: one subword; "music" once: characters
    ['play</w>', 'm', 'u', 's', 'i', 'c</w>']
    >>> enc.encode(["play music"]).tolist(), enc.backbone_spec("gru", hidden_size=4)
    ([[25, 9, 15, 13, 6, 17]], {'name': 'gru', 'hidden_size': 4, 'vocab_size': 26})
    >>> words = TokenEncoder(texts=["play jazz", "stop the music"], tokenizer="word")
    >>> words.encode(["play music"]).tolist(), words.config()["vocab"]
    ([[4, 3]], ['[PAD]', '[UNK]', 'jazz', 'music', 'play', 'stop', 'the'])
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from metadl.models.text.bpe import NORMALIZATION, BPETokenizer
from metadl.models.text.cache import EmbeddingCache
from metadl.models.text.tokenizer import WordTokenizer
from metadl.models.text.tokenizers import Tokenizer, fit_tokenizer


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
    """A tokenizer feeding a sequence backbone trained from scratch.

    Args:
        texts: fit a tokenizer on these (the training texts): ``tokenizer`` names which
            (:func:`~metadl.models.text.tokenizers.list_tokenizers`; ``"bpe"`` when None), with at most
            ``max_vocab`` entries (the tokenizer's default when None); or rebuild a saved one
            (``config()``): a word tokenizer from ``vocab`` (``["[PAD]", "[UNK]", ...]``), a BPE
            tokenizer from ``alphabet``, ``merges`` and ``normalization`` (the only one there is:
            ``"nfkc+lowercase"``).
        max_length: tokens kept per text.
    """

    name = "tokens"
    frozen = False

    def __init__(
        self,
        *,
        texts: Sequence[str] | None = None,
        tokenizer: str | None = None,
        max_length: int = 32,
        max_vocab: int | None = None,
        vocab: Sequence[str] | None = None,
        alphabet: Sequence[str] | None = None,
        merges: Sequence[Sequence[str]] | None = None,
        normalization: str = NORMALIZATION,
    ) -> None:
        saved_word, saved_bpe = vocab is not None, alphabet is not None or merges is not None
        if [texts is not None, saved_word, saved_bpe].count(True) != 1:
            raise EncoderError(
                "TokenEncoder needs exactly one of texts= (to fit a tokenizer), vocab= (a word tokenizer) "
                "or alphabet= and merges= (a BPE tokenizer)"
            )
        kind = "word" if saved_word else "bpe" if saved_bpe else tokenizer or "bpe"
        if tokenizer is not None and tokenizer != kind:
            raise EncoderError(f"tokenizer={tokenizer!r} but the saved tokenizer is a {kind} tokenizer")
        self.tokenizer: Tokenizer
        try:
            if texts is not None:
                self.tokenizer = fit_tokenizer(kind, texts, max_vocab=max_vocab, max_length=max_length)
            elif vocab is not None:
                self.tokenizer = WordTokenizer(vocab, max_length=max_length)
            else:
                state = {"kind": "bpe", "normalization": normalization, "max_length": max_length}
                state |= {"alphabet": list(alphabet or ()), "merges": [list(m) for m in merges or ()]}
                self.tokenizer = BPETokenizer.from_dict(state)
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
        state = self.tokenizer.to_dict()
        return {"name": self.name, "tokenizer": state.pop("kind", self.tokenizer.kind), **state}


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
