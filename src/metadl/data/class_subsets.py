"""Few-shot datasets carved out of real data by class: Omniglot alphabet subsets and sentence-embedded intents.

Each builder takes a pool of classes (the characters of some alphabets; the intents of some CLINC150
domains, or all of BANKING77), shuffles it with ``seed`` and splits it **by class** into ``train``
(60%), ``val`` (20%) and ``test`` (20%), so that validation and test classes are never trained on. The
config that names a builder and its options rebuilds exactly the same split. The generated task
distributions of :mod:`metadl.tune.real_distributions` are made of these.

- :func:`omniglot_alphabets`: all 20 drawings of each character, at ``image_size`` pixels.
- :func:`sentence_embeddings`: every utterance of each intent (a corpus's own train/val/test example
  splits are pooled; they share intents), as a frozen sentence embedding (``encoder``, e.g. WordLlama).

Example:
    >>> split_classes(["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"], "val", seed=0)
    ['a', 'c']
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from metadl.data.base import FewShotDataset
from metadl.data.omniglot import DRAWINGS, load_omniglot_characters
from metadl.data.text import TextDataset, banking77, clinc150

if TYPE_CHECKING:
    from metadl.models.text.encoders import TextEncoder

FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}
CORPORA = ("clinc150", "banking77")


def split_classes(classes: Sequence[str], split: str, *, seed: int) -> list[str]:
    """The classes of ``split`` (``train``/``val``/``test``): a seeded shuffle of ``classes`` cut 60/20/20."""
    if split not in FRACTIONS:
        raise ValueError(f"split={split!r}; choose one of {list(FRACTIONS)}")
    order = sorted(classes)
    random.Random(seed).shuffle(order)
    n_train = round(FRACTIONS["train"] * len(order))
    n_val = round(FRACTIONS["val"] * len(order))
    bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val), "test": (n_train + n_val, len(order))}
    start, stop = bounds[split]
    return sorted(order[start:stop])


def omniglot_alphabets(
    root: str | os.PathLike[str],
    split: str = "train",
    *,
    alphabets: Sequence[str],
    image_size: int = 28,
    seed: int = 0,
    cache_dir: str | os.PathLike[str] | None = None,
) -> FewShotDataset:
    """The characters of ``alphabets`` that fall in ``split`` (see the module docstring), drawings as drawn.

    Example:
        >>> ds = omniglot_alphabets("data/omniglot", "val", alphabets=["Greek", "Korean"])  # doctest: +SKIP
        >>> ds.num_classes, ds.x_shape, ds.class_names[0]  # doctest: +SKIP
        (13, (1, 28, 28), 'Greek/character07')
    """
    chars = load_omniglot_characters(root, image_size=image_size, cache_dir=cache_dir, progress=False)
    known = {n.partition("/")[0] for n in chars.names}
    unknown = sorted(set(alphabets) - known)
    if unknown or not alphabets:
        raise ValueError(
            f"alphabets must name Omniglot alphabets (e.g. {sorted(known)[:2]}), got {unknown or []}"
        )
    wanted = set(alphabets)
    pool = [n for n in chars.names if n.partition("/")[0] in wanted]
    keep = split_classes(pool, split, seed=seed)
    index = {n: i for i, n in enumerate(chars.names)}
    images = chars.images[[index[n] for n in keep]]  # (C, 20, S, S)
    labels = torch.arange(len(keep)).repeat_interleave(DRAWINGS)
    data = torch.from_numpy(np.ascontiguousarray(images.reshape(-1, 1, image_size, image_size)))
    return FewShotDataset(data, labels, keep, name=f"omniglot-alphabets-{split}")


def sentence_embeddings(
    root: str | os.PathLike[str],
    split: str = "train",
    *,
    corpus: str = "clinc150",
    domains: Sequence[str] = (),
    encoder: str = "wordllama",
    seed: int = 0,
) -> FewShotDataset:
    """The intents of ``corpus`` (CLINC150 restricted to ``domains``, or BANKING77) in ``split``, embedded.

    Example:
        >>> ds = sentence_embeddings("data/clinc150", "train", domains=["banking", "travel"])  # doctest: +SKIP
        >>> ds.num_classes, ds.x_shape, len(ds)  # 150 utterances per intent  # doctest: +SKIP
        (18, (256,), 2700)
    """
    texts = corpus_texts(root, corpus, domains)
    keep = split_classes(texts.class_names, split, seed=seed)
    wanted = {texts.class_names.index(c): i for i, c in enumerate(keep)}
    rows = [i for i, y in enumerate(texts.labels.tolist()) if y in wanted]
    features = text_encoder(encoder).encode([texts.texts[i] for i in rows]).float()
    labels = torch.tensor([wanted[int(texts.labels[i])] for i in rows], dtype=torch.long)
    return FewShotDataset(features, labels, keep, name=f"{corpus}-intents-{split}")


def text_encoder(name: str) -> TextEncoder:
    """The frozen sentence encoder ``name``. Imported on use: the encoders' modules need ``metadl[text]``'s
    packages, and ``import metadl.data`` must work without them."""
    from metadl.models.text.registry import create_text_encoder

    return create_text_encoder(name)


def corpus_texts(root: str | os.PathLike[str], corpus: str, domains: Sequence[str] = ()) -> TextDataset:
    """Every labelled utterance of ``corpus`` (its example splits pooled), out-of-scope queries left out."""
    base = Path(root)
    if corpus == "clinc150":
        parts = [clinc150(base, s, domains=domains) for s in ("train", "val", "test")]
    elif corpus == "banking77":
        if domains:
            raise ValueError("banking77 has no domains; leave domains empty")
        parts = [banking77(base, s) for s in ("train", "test")]
    else:
        raise ValueError(f"corpus={corpus!r}; choose one of {list(CORPORA)}")
    texts = [t for p in parts for t in p.texts]
    labels = [p.class_names[y] for p in parts for y in p.labels.tolist()]
    return TextDataset.from_names(texts, labels, name=corpus)
