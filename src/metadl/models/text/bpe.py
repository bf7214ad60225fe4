"""A byte-pair-encoding (BPE) tokenizer of our own, trained on the training texts (Sennrich et al., 2016).

What it does, step by step:

1. **Normalise**: Unicode NFKC, then lower-case (``"ＡＢＣ"`` and ``"abc"`` are the same text).
2. **Pre-tokenise** into words and punctuation marks (``\\w+|[^\\w\\s]``, as the word tokenizer does);
   a word never merges with its neighbours, so whitespace is not a symbol.
3. **Symbols**: a word is its characters, the last one carrying the end-of-word mark ``</w>``
   (``"low"`` -> ``l o w</w>``), so ``est</w>`` (a word's end) differs from ``est`` (inside a word)
   and decoding knows where words end. This is the ``end_of_word_suffix`` convention of HF ``tokenizers``.
4. **Training** (:meth:`BPETokenizer.fit`): the alphabet is every symbol of the texts (the most frequent
   ones when ``max_vocab`` cannot hold them all; the rest are unknown). Then, repeatedly, the pair of
   adjacent symbols with the highest count over the corpus (each word counted as often as it occurs)
   is merged everywhere into one new symbol, until the vocabulary holds ``max_vocab`` entries or no pair
   occurs ``min_frequency`` times. **Ties** go to the pair of older symbols, the lowest
   ``(id(left), id(right))`` with the ids below (HF ``tokenizers``' rule), so training is deterministic:
   no randomness, no dependence on the order of the texts. Counts are updated incrementally, touching
   only the words that hold the merged pair; a heap finds the best pair.
5. **Encoding** applies the merges to each word in their training order (lowest rank first), which gives
   the segmentation training reached for training words and known pieces for new words
   (``lowest`` -> ``lo w est</w>``). An unknown character becomes ``[UNK]``; a word-final character
   known only inside words keeps its character and takes a separate ``</w>`` token.

Ids: 0 ``[PAD]`` (the sequence backbones' ``padding_idx``), 1 ``[UNK]``, 2 ``</w>``, then the alphabet
(the characters in code-point order, then the word-final ones in code-point order), then each merge's
new symbol in merge order; ``vocab_size <= max_vocab`` always.
``encode`` returns int64 ids ``(N, L)`` right-padded with 0 and cut at ``max_length`` tokens; a text
without words becomes one ``[UNK]``. ``decode`` inverts ``encode`` up to normalisation and spacing:
words come back separated by single spaces (``"Hi, you"`` -> ``"hi , you"``).

Saved as JSON (:meth:`to_dict`, :meth:`save`): the alphabet and the merge list, nothing executable;
:meth:`from_dict` / :meth:`load` check sizes and consistency before building anything.

Example:
    >>> tok = BPETokenizer.fit(["low"] * 5 + ["lower"] * 2 + ["newest"] * 6 + ["widest"] * 3, max_vocab=19)
    >>> tok.merges[:4]
    [('e', 's'), ('es', 't</w>'), ('l', 'o'), ('e', 'w')]
    >>> tok.tokens("lowest newer")
    ['lo', 'w', 'est</w>', 'new', 'e', 'r</w>']
    >>> tok.decode(tok.encode(["Newest? LOWEST"])[0].tolist())  # '?' was never seen
    'newest [UNK] lowest'
"""

from __future__ import annotations

import heapq
import json
import os
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from metadl.fileio import atomic_write_bytes
from metadl.models.text.tokenizer import PAD, UNK, split_words
from metadl.validation import read_json

END = "</w>"
NORMALIZATION = "nfkc+lowercase"
SPECIALS = ("[PAD]", "[UNK]", END)
MAX_VOCAB = 1 << 20  # entries of a loaded tokenizer (alphabet + merges)
MAX_SYMBOL_CHARS = 256  # characters of one symbol in a loaded tokenizer
MAX_LENGTH = 1 << 16  # max_length of a loaded tokenizer
MAX_FILE_BYTES = 64 << 20  # a tokenizer JSON file
Pair = tuple[str, str]


class TokenizerError(ValueError):
    """A tokenizer cannot be built or loaded (the message names the value or file and the fix)."""


def normalize(text: str) -> str:
    """NFKC, then lower-case."""
    return unicodedata.normalize("NFKC", text).lower()


def pre_tokenize(text: str) -> list[str]:
    """The normalised words and punctuation marks of ``text``."""
    return split_words(normalize(text))


def word_symbols(word: str) -> list[str]:
    """``"low"`` -> ``["l", "o", "w</w>"]``."""
    return [*word[:-1], word[-1] + END]


def merge_pair(symbols: list[str], pair: Pair) -> list[str]:
    """``symbols`` with every occurrence of ``pair`` (left to right, not overlapping) joined into one."""
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and symbols[i] == pair[0] and symbols[i + 1] == pair[1]:
            out.append(pair[0] + pair[1])
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


class BPETokenizer:
    """Byte-pair encoding over characters (see the module docstring).

    Args:
        alphabet: the base symbols (single characters, possibly followed by ``</w>``).
        merges: the merges in training order, each ``(left, right)`` of symbols known before it.
        max_length: tokens kept per text.
    """

    kind = "bpe"

    def __init__(self, alphabet: Sequence[str], merges: Sequence[Pair], *, max_length: int = 32) -> None:
        if not 1 <= max_length <= MAX_LENGTH:
            raise TokenizerError(f"max_length={max_length} must be in [1, {MAX_LENGTH}]")
        vocab, known = list(SPECIALS), set(SPECIALS)
        for symbol in alphabet:
            body = symbol.removesuffix(END)
            if len(body) != 1 or symbol in known:
                raise TokenizerError(
                    f"alphabet entry {symbol[:40]!r} is not one new character (optionally followed by {END})"
                )
            vocab.append(symbol)
            known.add(symbol)
        ranks: dict[Pair, int] = {}
        for rank, (left, right) in enumerate(merges):
            if left not in known or right not in known or left in SPECIALS[:2] or right in SPECIALS:
                raise TokenizerError(f"merge {rank} ({left[:40]!r}, {right[:40]!r}) joins an unknown symbol")
            if left.endswith(END):
                raise TokenizerError(f"merge {rank} ({left[:40]!r}, {right[:40]!r}) follows a word's end")
            if (left, right) in ranks:
                raise TokenizerError(f"merge {rank} ({left[:40]!r}, {right[:40]!r}) is listed twice")
            if len(left) + len(right) > MAX_SYMBOL_CHARS:
                raise TokenizerError(f"merge {rank} makes a symbol longer than {MAX_SYMBOL_CHARS} characters")
            ranks[(left, right)] = rank
            if left + right not in known:
                vocab.append(left + right)
                known.add(left + right)
        self.alphabet, self.merges, self.max_length = tuple(alphabet), list(ranks), max_length
        self.vocab = tuple(vocab)
        self._ids = {s: i for i, s in enumerate(self.vocab)}
        self._ranks = ranks
        self._cache: dict[str, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    # -- training ----------------------------------------------------------------------------------

    @classmethod
    def fit(
        cls, texts: Sequence[str], *, max_vocab: int = 8192, min_frequency: int = 2, max_length: int = 32
    ) -> BPETokenizer:
        """Learn merges on ``texts`` until ``max_vocab`` entries (specials included) or no pair occurs
        ``min_frequency`` times."""
        if not len(SPECIALS) < max_vocab <= MAX_VOCAB:
            raise TokenizerError(f"max_vocab={max_vocab} must be in [{len(SPECIALS) + 1}, {MAX_VOCAB}]")
        if min_frequency < 1:
            raise TokenizerError(f"min_frequency={min_frequency} must be >= 1")
        counts = Counter(w for t in texts for w in pre_tokenize(t))
        symbol_counts: Counter[str] = Counter()
        for word, n in counts.items():
            for s in word_symbols(word):
                symbol_counts[s] += n
        budget = max_vocab - len(SPECIALS)
        kept = sorted(symbol_counts, key=lambda s: (-symbol_counts[s], s))[:budget]
        alphabet = sorted(kept, key=lambda s: (s.endswith(END), s))  # characters, then word-final ones
        known = set(kept)
        words = [[s if s in known else SPECIALS[1] for s in word_symbols(w)] for w in counts]
        merges = _learn_merges(words, list(counts.values()), alphabet, budget - len(alphabet), min_frequency)
        return cls(alphabet, merges, max_length=max_length)

    # -- encoding ----------------------------------------------------------------------------------

    def _word_ids(self, word: str) -> list[int]:
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        symbols = word_symbols(word)
        last = symbols[-1]
        if last not in self._ids:  # a word-final character known only inside words, or not at all
            symbols[-1:] = [last.removesuffix(END), END]
        while len(symbols) > 1:
            rank, i = min((self._ranks.get(p, MAX_VOCAB), i) for i, p in enumerate(pairwise(symbols)))
            if rank == MAX_VOCAB:
                break
            symbols = merge_pair(symbols, (symbols[i], symbols[i + 1]))
        ids = [self._ids.get(s, UNK) for s in symbols]
        if len(self._cache) >= 100_000:
            self._cache.clear()
        self._cache[word] = ids
        return ids

    def tokens(self, text: str) -> list[str]:
        """The symbols of ``text`` (no truncation)."""
        return [self.vocab[i] for w in pre_tokenize(text) for i in self._word_ids(w)]

    def encode(self, texts: Sequence[str]) -> Tensor:
        """``(N, L)`` int64 ids, right-padded with 0, at most ``max_length`` per text."""
        rows = [
            [i for w in pre_tokenize(t) for i in self._word_ids(w)][: self.max_length] or [UNK] for t in texts
        ]
        out = torch.full((len(rows), max((len(r) for r in rows), default=1)), PAD, dtype=torch.long)
        for i, row in enumerate(rows):
            out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        return out

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids`` (padding skipped): normalised words separated by single spaces."""
        return "".join(self.vocab[i] for i in ids if i != PAD).replace(END, " ").strip()

    # -- saving ------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON: ``{"kind", "normalization", "alphabet", "merges", "max_length"}``."""
        return {
            "kind": self.kind,
            "normalization": NORMALIZATION,
            "alphabet": list(self.alphabet),
            "merges": [list(p) for p in self.merges],
            "max_length": self.max_length,
        }

    @classmethod
    def from_dict(cls, d: Any) -> BPETokenizer:
        """The tokenizer of :meth:`to_dict`, after checking every field's type and size."""
        expected = {"kind", "normalization", "alphabet", "merges", "max_length"}
        if not isinstance(d, dict) or set(d) != expected:
            found = sorted(d) if isinstance(d, dict) else type(d).__name__
            raise TokenizerError(f"a BPE tokenizer holds the keys {sorted(expected)}, found {found}")
        if d["kind"] != cls.kind or d["normalization"] != NORMALIZATION:
            raise TokenizerError(
                f"not a metadl BPE tokenizer (kind {d['kind']!r}, normalization {d['normalization']!r})"
            )
        alphabet, merges, max_length = d["alphabet"], d["merges"], d["max_length"]
        if (
            not isinstance(alphabet, list)
            or not isinstance(merges, list)
            or len(alphabet) + len(merges) > MAX_VOCAB
        ):
            raise TokenizerError(f"a BPE tokenizer holds two lists of at most {MAX_VOCAB} entries together")
        if not all(isinstance(s, str) and len(s) <= MAX_SYMBOL_CHARS for s in alphabet):
            raise TokenizerError(
                f"every alphabet entry must be a string of at most {MAX_SYMBOL_CHARS} characters"
            )
        if not all(
            isinstance(m, list) and len(m) == 2 and all(isinstance(s, str) for s in m) for m in merges
        ):
            raise TokenizerError("every merge must be a list of two strings")
        if not isinstance(max_length, int) or isinstance(max_length, bool):
            raise TokenizerError(f"max_length must be an integer, got {max_length!r}")
        return cls(alphabet, [(a, b) for a, b in merges], max_length=max_length)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_dict` to ``path`` as JSON, atomically."""
        atomic_write_bytes(path, json.dumps(self.to_dict(), ensure_ascii=False).encode("utf-8"))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> BPETokenizer:
        """Read a tokenizer JSON file of at most 64 MiB (JSON only: nothing is executed)."""
        try:
            return cls.from_dict(read_json(Path(path), max_bytes=MAX_FILE_BYTES, max_depth=4))
        except (ValueError, OSError) as err:
            raise TokenizerError(f"tokenizer file {path}: {err}".replace("\n", " ")) from None


def _learn_merges(
    words: list[list[str]], freqs: list[int], alphabet: list[str], budget: int, min_frequency: int
) -> list[Pair]:
    """Merges on ``words`` (symbol lists, each occurring ``freqs[i]`` times) adding at most ``budget`` new
    symbols; ties go to the lowest ``(id(left), id(right))``, ids numbering ``alphabet`` then new symbols."""
    unk = SPECIALS[1]
    ids = {s: i for i, s in enumerate(alphabet)}
    counts: Counter[Pair] = Counter()
    where: defaultdict[Pair, set[int]] = defaultdict(set)
    for i, symbols in enumerate(words):
        for pair in pairwise(symbols):
            if unk not in pair:
                counts[pair] += freqs[i]
                where[pair].add(i)
    heap = [(-n, ids[a], ids[b], (a, b)) for (a, b), n in counts.items()]
    heapq.heapify(heap)
    merges: list[Pair] = []
    while heap and budget > 0:
        negative, _, _, best = heapq.heappop(heap)
        if counts.get(best) != -negative:
            continue  # stale: the pair's count changed since this entry was pushed
        if -negative < min_frequency:
            break
        merges.append(best)
        joined = best[0] + best[1]
        if joined not in ids:
            ids[joined] = len(ids)
            budget -= 1
        changed: set[Pair] = set()
        for i in sorted(where.pop(best)):
            old, new = words[i], merge_pair(words[i], best)
            for sign, symbols in ((-1, old), (1, new)):
                for pair in pairwise(symbols):
                    if unk not in pair:
                        counts[pair] += sign * freqs[i]
                        changed.add(pair)
            for pair in set(pairwise(old)) - set(pairwise(new)):
                where[pair].discard(i)
            for pair in pairwise(new):
                if unk not in pair:
                    where[pair].add(i)
            words[i] = new
        for pair in changed:
            if counts[pair] > 0:
                heapq.heappush(heap, (-counts[pair], ids[pair[0]], ids[pair[1]], pair))
            else:
                del counts[pair]
    return merges
