"""The tokenizer registry: how a from-scratch text backbone's texts become integer ids.

``bpe`` (:class:`~metadl.models.text.bpe.BPETokenizer`, the default) splits rare words into subwords
learnt on the training texts, so a new word of known pieces (``"rebooking"``) is not one ``[UNK]``;
``word`` (:class:`~metadl.models.text.tokenizer.WordTokenizer`) keeps whole words (the most frequent ones).
Both are fitted with ``fit(texts, max_vocab=..., max_length=...)``, give ``(N, L)`` int64 ids with 0 as
padding and 1 as ``[UNK]``, and save as JSON (``to_dict``).

Example:
    >>> list_tokenizers()
    ['bpe', 'word']
    >>> fit_tokenizer("word", ["play jazz", "play rock"], max_vocab=4).vocab
    ('[PAD]', '[UNK]', 'play', 'jazz')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from torch import Tensor

from metadl.models.text.bpe import BPETokenizer, TokenizerError
from metadl.models.text.tokenizer import WordTokenizer


class Tokenizer(Protocol):
    """Texts -> ``(N, L)`` int64 ids (0 padding, 1 unknown), at most ``max_length`` per text."""

    kind: str
    max_length: int
    vocab: tuple[str, ...]

    @property
    def vocab_size(self) -> int: ...

    def encode(self, texts: Sequence[str]) -> Tensor: ...

    def to_dict(self) -> dict[str, Any]: ...


TOKENIZERS: dict[str, type[BPETokenizer] | type[WordTokenizer]] = {
    "bpe": BPETokenizer,  # subwords (byte-pair encoding over characters), the default
    "word": WordTokenizer,  # whole words
}
DEFAULT_MAX_VOCAB = {"bpe": 8192, "word": 20_000}


def list_tokenizers() -> list[str]:
    """Names accepted by :func:`fit_tokenizer`."""
    return sorted(TOKENIZERS)


def fit_tokenizer(
    name: str, texts: Sequence[str], *, max_vocab: int | None = None, max_length: int = 32
) -> Tokenizer:
    """Fit tokenizer ``name`` on ``texts`` with at most ``max_vocab`` entries (its default when None)."""
    if name not in TOKENIZERS:
        raise TokenizerError(f"unknown tokenizer {name!r}; choose one of {list_tokenizers()}")
    size = DEFAULT_MAX_VOCAB[name] if max_vocab is None else max_vocab
    try:
        return TOKENIZERS[name].fit(texts, max_vocab=size, max_length=max_length)
    except TokenizerError:
        raise
    except ValueError as err:
        raise TokenizerError(f"{name} tokenizer: {err}") from None
