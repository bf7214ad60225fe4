"""Text models by name or folder, saving them, and ``metadl predict`` on CSV / JSON Lines / ``.txt`` folders.

``MODEL`` is one of:

- a shipped zero-training model (:data:`SHIPPED`): a frozen pretrained encoder and a prototype head,
  nothing to train (``minilm-protonet`` needs ``metadl[text]`` and the all-MiniLM-L6-v2 files);
- a saved text model (:func:`save_text_model`): a :mod:`metadl.saving` folder whose metadata holds
  ``text_encoder``, the encoder's ``config()`` (a token encoder's vocabulary, or a pretrained model's
  name), so nothing but JSON and safetensors is read;
- a run folder holding such a saved model in ``model/``.

Support: a ``.csv`` (``text,label``) or ``.jsonl`` file, or a folder of ``<label>/*.txt`` files (one
example per line). Query: a ``.csv``/``.jsonl`` file with a text column, or a ``.txt`` file (one per line).
Rows come back in input order: ``{"text", "label", "probability", "probabilities"}``.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from metadl.algorithms.base import Learner
from metadl.apps.text.model import TextModel
from metadl.data.text import TextDataError, read_labelled_texts
from metadl.models.text.encoders import EncoderError
from metadl.models.text.registry import create_text_encoder
from metadl.saving import DOC_NAME, SavedModelError, load, save_model
from metadl.tasks.tables import format_of, read_table, read_text

# name -> (text encoder config, learner keyword arguments); the head is ProtoNet with cosine distance
SHIPPED: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "minilm-protonet": (
        {"name": "sentence_transformer", "model": "all-MiniLM-L6-v2"},
        {"distance": "cosine"},
    ),
    "wordllama-protonet": ({"name": "wordllama"}, {"distance": "cosine"}),
}


def save_text_model(
    path: str | os.PathLike[str], model: TextModel, metadata: dict[str, Any] | None = None
) -> Path:
    """Save ``model`` as a :mod:`metadl.saving` folder with its encoder's config in the metadata."""
    return save_model(
        path,
        model.learner,
        spec=model.spec,
        metadata={**(metadata or {}), "text_encoder": model.encoder.config()},
    )


def load_text_model(model: str | os.PathLike[str]) -> TextModel:
    """A shipped model by name, a saved text model folder, or a run folder with one in ``model/``."""
    name = str(model)
    if name in SHIPPED:
        encoder_config, learner_kwargs = SHIPPED[name]
        config = dict(encoder_config)
        encoder = create_text_encoder(config.pop("name"), **config)
        return TextModel.build(encoder, "protonet", learner_kwargs=learner_kwargs)
    folder = Path(model)
    if not (folder / DOC_NAME).is_file() and (folder / "model" / DOC_NAME).is_file():
        folder = folder / "model"
    if not (folder / DOC_NAME).is_file():
        raise SavedModelError(
            f"{model} is not a shipped text model ({', '.join(SHIPPED)}), a saved model folder or a run folder"
        )
    saved = load(folder)
    recorded = saved.metadata.get("text_encoder")
    if not isinstance(recorded, dict) or not isinstance(recorded.get("name"), str):
        raise SavedModelError(
            f"{folder / DOC_NAME} has no text_encoder in its metadata; it is not a text model"
        )
    options = dict(recorded)
    encoder = create_text_encoder(options.pop("name"), **options)
    assert isinstance(saved.learner, Learner)
    return TextModel(encoder, saved.learner, saved.spec)


def is_text_input(path: str | os.PathLike[str]) -> bool:
    """True for a ``.csv``/``.jsonl``/``.txt`` file or a folder of ``<class>/*.txt`` files."""
    p = Path(path)
    if p.is_dir():
        return any(p.glob("*/*.txt"))
    return p.suffix.lower() in (".csv", ".jsonl", ".txt")


def read_queries(path: str | os.PathLike[str], text_column: str = "text") -> list[str]:
    """The texts of a ``.csv``/``.jsonl`` file (its ``text_column``) or of a ``.txt`` file (one per line)."""
    p = Path(path)
    if not p.is_file():
        raise TextDataError(f"query file {p} does not exist; give a .csv, .jsonl or .txt file of sentences")
    fmt = format_of(p)
    if fmt in ("csv", "jsonl"):
        texts = read_table(p, fmt).texts(text_column)
    elif p.suffix.lower() == ".txt":
        texts = [line.strip() for line in read_text(p).splitlines() if line.strip()]
    else:
        raise TextDataError(f"query file {p}: expected .csv, .jsonl or .txt")
    if not texts:
        raise TextDataError(f"query file {p} holds no sentences")
    return texts


def predict_texts(
    model: str | os.PathLike[str] | TextModel,
    support: str | os.PathLike[str],
    query: str | os.PathLike[str],
    *,
    text_column: str = "text",
    label_column: str = "label",
) -> list[dict[str, Any]]:
    """Adapt ``model`` to the labelled ``support`` sentences and classify every ``query`` sentence, in order.

    Raises :class:`TextDataError`, :class:`SavedModelError` or :class:`EncoderError` (all ``ValueError``)
    with one line naming the file and the fix.
    """
    text_model = model if isinstance(model, TextModel) else load_text_model(model)
    support_set = read_labelled_texts(support, text_column=text_column, label_column=label_column)
    queries = read_queries(query, text_column)
    predictor = text_model.adapt(support_set.texts, support_set.label_names())
    return [asdict(p) for p in predictor.predict(queries)]


__all__ = [
    "SHIPPED",
    "EncoderError",
    "is_text_input",
    "load_text_model",
    "predict_texts",
    "read_queries",
    "save_text_model",
]
