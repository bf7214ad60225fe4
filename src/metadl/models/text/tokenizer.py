"""A word-level tokenizer fitted on training texts, so text backbones train from scratch with no pretrained files.

``text -> lower-case -> words and punctuation marks (regex) -> ids``. Id 0 is padding (what the
sequence backbones mask out, ``padding_idx=0``), id 1 is ``[UNK]`` (a word not in the vocabulary); the
vocabulary holds the ``max_vocab`` most frequent words of the fitting texts (ties broken by the word, so
fitting is deterministic). ``encode`` returns int64 ids ``(N, L)`` right-padded with 0 and cut at
``max_length``: the ids stay integers until the backbone's embedding layer.

Example:
    >>> tok = WordTokenizer.fit(["Play some jazz", "play rock!"], max_length=4)
    >>> tok.vocab
    ('[PAD]', '[UNK]', 'play', '!', 'jazz', 'rock', 'some')
    >>> tok.encode(["play jazz, now", "rock"]).tolist()
    [[2, 4, 1, 1], [5, 0, 0, 0]]
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

PAD, UNK = 0, 1
SPECIALS = ("[PAD]", "[UNK]")
_WORD = re.compile(r"\w+|[^\w\s]")


def split_words(text: str) -> list[str]:
    """The words and punctuation marks of ``text`` (no normalisation)."""
    return _WORD.findall(text)


class WordTokenizer:
    """Words to ids with a fixed vocabulary (``vocab[i]`` is the word of id ``i``; 0/1 are pad/unknown)."""

    kind = "word"

    def __init__(self, vocab: Sequence[str], *, max_length: int = 32) -> None:
        if tuple(vocab[:2]) != SPECIALS:
            raise ValueError(f"a vocabulary starts with {list(SPECIALS)}, got {list(vocab[:2])}")
        if len(set(vocab)) != len(vocab):
            raise ValueError("the vocabulary holds a word twice")
        if max_length < 1:
            raise ValueError(f"max_length={max_length} must be >= 1")
        self.vocab, self.max_length = tuple(vocab), max_length
        self._ids = {w: i for i, w in enumerate(self.vocab)}

    @staticmethod
    def split(text: str) -> list[str]:
        """Lower-cased words and punctuation marks."""
        return split_words(text.lower())

    @classmethod
    def fit(cls, texts: Sequence[str], *, max_vocab: int = 20_000, max_length: int = 32) -> WordTokenizer:
        """The ``max_vocab - 2`` most frequent words of ``texts`` (plus the two special ids)."""
        if max_vocab < 3:
            raise ValueError(f"max_vocab={max_vocab} must be >= 3 (two special ids and one word)")
        counts = Counter(w for t in texts for w in cls.split(t))
        words = sorted(counts, key=lambda w: (-counts[w], w))[: max_vocab - len(SPECIALS)]
        return cls([*SPECIALS, *words], max_length=max_length)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, texts: Sequence[str]) -> Tensor:
        """``(N, L)`` int64 ids, right-padded with 0; a text with no words becomes one ``[UNK]``."""
        rows = [[self._ids.get(w, UNK) for w in self.split(t)][: self.max_length] or [UNK] for t in texts]
        out = torch.full((len(rows), max((len(r) for r in rows), default=1)), PAD, dtype=torch.long)
        for i, row in enumerate(rows):
            out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"vocab": list(self.vocab), "max_length": self.max_length}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WordTokenizer:
        return cls(d["vocab"], max_length=d["max_length"])
