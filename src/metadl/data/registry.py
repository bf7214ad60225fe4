"""The dataset registry: one visible dict of builder functions, and the two functions that read it.

Each builder returns one split as a :class:`FewShotDataset`; its keyword arguments are the builder's own
(see ``omniglot`` and ``image_folder``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from metadl.data.base import FewShotDataset
from metadl.data.class_subsets import omniglot_alphabets, sentence_embeddings
from metadl.data.image_folder import image_folder
from metadl.data.omniglot import omniglot
from metadl.data.synthetic import synthetic_glyphs

DATASETS: dict[str, Callable[..., FewShotDataset]] = {
    "omniglot": omniglot,
    "image_folder": image_folder,
    "synthetic_glyphs": synthetic_glyphs,
    "omniglot_alphabets": omniglot_alphabets,  # characters of some alphabets, split by class
    "sentence_embeddings": sentence_embeddings,  # CLINC150/BANKING77 intents as frozen embeddings
}


def list_datasets() -> list[str]:
    """Names accepted by :func:`create_dataset`.

    Example:
        >>> "omniglot" in list_datasets()
        True
    """
    return sorted(DATASETS)


def create_dataset(name: str, **kwargs: Any) -> FewShotDataset:
    """Build one split of a dataset by name with the builder's keyword arguments.

    Example:
        >>> create_dataset("imagenet")
        Traceback (most recent call last):
        ...
        ValueError: unknown dataset 'imagenet'; choose one of [...]
    """
    try:
        build = DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; choose one of {list_datasets()}") from None
    try:
        inspect.signature(build).bind(**kwargs)  # a wrong keyword fails here, before any loading
    except TypeError as err:
        raise TypeError(f"create_dataset({name!r}): {err}") from None
    return build(**kwargs)
