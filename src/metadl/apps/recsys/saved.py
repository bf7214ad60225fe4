"""A meta-trained cold-start recommender saved for ``metadl recommend RATINGS.csv --model MODEL``.

A saved recommender is a folder::

    MODEL/
      recommender.json       format, the learner's hyperparameters, beta, the catalogue's item ids,
                             metadata, sha256 and size of the weights
      weights.safetensors    the learner's state (item statistics included)

The weights are written first and ``recommender.json`` last, each atomically, so a folder with a
readable ``recommender.json`` always describes complete weights (its sha256 says which). Loading trusts
nothing before it is bounded: the JSON is read with :func:`metadl.validation.read_json`, every
hyperparameter must be a plain number or string within limits, the weights' hash must match, the
learner is rebuilt and loaded strictly, and every value must be finite. A run folder of ``metadl train``
holds its recommender in ``RUN/model``, which :func:`load_recommender` also accepts.

Example:
    >>> import tempfile, pathlib
    >>> from metadl.apps.recsys.twohead import TwoHeadRecommender
    >>> learner = TwoHeadRecommender(item_mean=torch.full((3,), 3.5), item_count=torch.ones(3), dim=2)
    >>> folder = save_recommender(pathlib.Path(tempfile.mkdtemp()) / "m", learner, beta=0.5,
    ...                           item_ids=["a", "b", "c"])
    >>> saved = load_recommender(folder)
    >>> saved.item_ids, saved.recommender.beta
    (('a', 'b', 'c'), 0.5)
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save

from metadl.apps.recsys.meta import TwoHeadMetaRecommender
from metadl.apps.recsys.twohead import TwoHeadRecommender
from metadl.fileio import atomic_write_bytes
from metadl.validation import non_finite_tensors, read_json

FORMAT = "metadl.recommender"
FORMAT_VERSION = 1
DOC_NAME = "recommender.json"
WEIGHTS_NAME = "weights.safetensors"
MAX_ITEMS = 10_000_000
MAX_WIDTH = 4096
MAX_STEPS = 1000


class SavedRecommenderError(ValueError):
    """A saved recommender folder is missing, corrupt or not a recommender (the message says which)."""


@dataclass(frozen=True)
class SavedRecommender:
    """A loaded recommender and its catalogue (``item_ids[i]`` is item index ``i``)."""

    recommender: TwoHeadMetaRecommender
    item_ids: tuple[str, ...]
    metadata: dict[str, Any]


def save_recommender(
    path: str | os.PathLike[str],
    learner: TwoHeadRecommender,
    *,
    beta: float,
    item_ids: Sequence[str],
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Save a meta-trained learner, its ranking weight ``beta`` and the catalogue to the folder ``path``."""
    if len(item_ids) != learner.n_items:
        raise ValueError(f"item_ids has {len(item_ids)} ids but the learner scores {learner.n_items} items")
    state = {k: v.detach().cpu().contiguous() for k, v in learner.state_dict().items()}
    bad = non_finite_tensors(state)
    if bad or not math.isfinite(beta):
        raise ValueError(
            f"the recommender holds NaN or infinite values ({bad[:3] or 'beta'}); it is not saved"
        )
    blob = safetensors_save(state, metadata={"format": FORMAT})
    doc = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "recommender": "twohead",
        "hyperparameters": learner.hyperparameters(), "beta": float(beta), "item_ids": list(item_ids),
        "metadata": metadata or {},
        "weights": {"file": WEIGHTS_NAME, "bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()},
    }  # fmt: skip
    try:
        text = json.dumps(doc, indent=1, allow_nan=False) + "\n"
    except (TypeError, ValueError) as err:
        raise ValueError(f"metadata must hold JSON values only: {err}") from None
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(folder / WEIGHTS_NAME, blob)
    atomic_write_bytes(folder / DOC_NAME, text.encode())
    return folder


def _folder(path: str | os.PathLike[str]) -> Path:
    folder = Path(path)
    for candidate in (folder, folder / "model"):
        if (candidate / DOC_NAME).is_file():
            return candidate
    raise SavedRecommenderError(
        f"{folder} holds no {DOC_NAME}; give a folder written by save_recommender or a recommendation run "
        "of metadl train (which holds it in RUN/model)"
    )


def _hyperparameters(raw: Any, where: Path) -> dict[str, Any]:
    limits = {
        "dim": MAX_WIDTH,
        "implicit_dim": MAX_WIDTH,
        "inner_steps": MAX_STEPS,
        "eval_inner_steps": MAX_STEPS,
    }
    floats = ("user_damping", "inner_lr", "implicit_weight")
    if not isinstance(raw, dict) or set(raw) != set(limits) | set(floats) | {"rating_loss"}:
        raise SavedRecommenderError(f"{where}: 'hyperparameters' must hold exactly {sorted(limits) + list(floats)} "
                                    "and rating_loss")  # fmt: skip
    for key, top in limits.items():
        value = raw[key]
        ok = value is None and key == "eval_inner_steps"
        if not ok and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top):
            raise SavedRecommenderError(
                f"{where}: hyperparameters.{key} = {value!r} is not an int in 0..{top}"
            )
    for key in floats:
        if isinstance(raw[key], bool) or not isinstance(raw[key], int | float) or not math.isfinite(raw[key]):
            raise SavedRecommenderError(
                f"{where}: hyperparameters.{key} = {raw[key]!r} is not a finite number"
            )
    return raw


def load_recommender(path: str | os.PathLike[str]) -> SavedRecommender:
    """Load a folder written by :func:`save_recommender` (or a run folder holding one in ``model/``)."""
    folder = _folder(path)
    doc_path = folder / DOC_NAME
    try:
        doc = read_json(doc_path, max_bytes=64 << 20)
    except ValueError as err:
        raise SavedRecommenderError(f"{doc_path}: {err}") from None
    if (
        not isinstance(doc, dict)
        or doc.get("format") != FORMAT
        or doc.get("format_version") != FORMAT_VERSION
    ):
        raise SavedRecommenderError(
            f"{doc_path} is not a metadl recommender (format {FORMAT} v{FORMAT_VERSION})"
        )
    items, beta, record = doc.get("item_ids"), doc.get("beta"), doc.get("weights")
    if (
        not isinstance(items, list)
        or not 0 < len(items) <= MAX_ITEMS
        or not all(isinstance(i, str) for i in items)
    ):
        raise SavedRecommenderError(f"{doc_path}: 'item_ids' must be a non-empty list of strings")
    if isinstance(beta, bool) or not isinstance(beta, int | float) or not math.isfinite(beta):
        raise SavedRecommenderError(f"{doc_path}: 'beta' = {beta!r} is not a finite number")
    hyper = _hyperparameters(doc.get("hyperparameters"), doc_path)
    if not isinstance(record, dict) or not isinstance(record.get("sha256"), str):
        raise SavedRecommenderError(f"{doc_path}: 'weights' must give the sha256 of {WEIGHTS_NAME}")
    try:
        blob = (folder / WEIGHTS_NAME).read_bytes()
    except OSError as err:
        raise SavedRecommenderError(f"{folder / WEIGHTS_NAME}: {err.strerror}") from None
    if hashlib.sha256(blob).hexdigest() != record["sha256"]:
        raise SavedRecommenderError(
            f"{folder / WEIGHTS_NAME} does not match the sha256 in {DOC_NAME} (corrupt)"
        )
    floats = len(items) * (3 * hyper["dim"] + 2 * hyper["implicit_dim"] + 2)  # the learner's state, about
    if 4 * floats > len(blob) + 4096:
        raise SavedRecommenderError(f"{doc_path}: the hyperparameters describe a recommender larger than its "
                                    f"{len(blob)}-byte weights")  # fmt: skip
    try:
        state = safetensors_load(blob)
        zeros = torch.zeros(len(items))
        learner = TwoHeadRecommender(item_mean=zeros, item_count=zeros, **hyper)
        learner.load_state_dict(state, strict=True)
    except (SafetensorError, RuntimeError, ValueError, TypeError) as err:
        raise SavedRecommenderError(f"{folder}: the weights do not fit the recommender: {err}") from None
    if non_finite_tensors(state):
        raise SavedRecommenderError(f"{folder / WEIGHTS_NAME} holds NaN or infinite values")
    metadata = doc.get("metadata")
    return SavedRecommender(
        TwoHeadMetaRecommender.fitted(learner, float(beta)),
        tuple(items),
        metadata if isinstance(metadata, dict) else {},
    )
