"""Cluster the sentences of a text file with a text model (``metadl cluster MODEL --texts FILE``).

``MODEL`` is anything :func:`metadl.apps.text.predict.load_text_model` reads: a shipped zero-training
model (``minilm-protonet``, ``wordllama-protonet``), a saved text model or a run folder. A model whose
learner clusters (``softkmeans``, ``pairwise``) partitions the encoded sentences itself; any other text
model is clustered by k-means on its learner's backbone embedding of the sentences, L2-normalised (for a
shipped model: the frozen encoder's sentence embeddings, compared by cosine as its prototype head does).
Without ``k`` the number of clusters is estimated (:mod:`metadl.algorithms.estimate_k`, or the
``pairwise`` learner's threshold).
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass

from metadl.algorithms.clustering_steps import as_clusterer, check_k
from metadl.apps.cluster.baselines import EmbeddingKMeans, backbone_features
from metadl.apps.text.model import TextModel
from metadl.apps.text.predict import load_text_model, read_queries


@dataclass(frozen=True)
class TextAssignment:
    """One sentence (in input order) and its cluster (``0..k-1``)."""

    text: str
    cluster: int


def cluster_texts(
    model: str | os.PathLike[str] | TextModel,
    path: str | os.PathLike[str],
    *,
    text_column: str = "text",
    k: int | None = None,
    seed: int = 0,
) -> list[TextAssignment]:
    """Partition the sentences of ``path`` (a ``.csv``/``.jsonl`` file's ``text_column``, or a ``.txt``
    file, one per line) into ``k`` clusters (estimated when None), in input order."""
    text_model = model if isinstance(model, TextModel) else load_text_model(model)
    texts = read_queries(path, text_column)
    if k is not None:
        check_k(k, len(texts))
    learner = text_model.learner  # cluster() and backbone_features() each run it in eval mode
    features = text_model.encoder.encode(texts)
    if learner.capabilities.clustering:
        labels = as_clusterer(learner).cluster(features, k, seed=seed)
    else:
        embed = backbone_features(learner.get_submodule("backbone"))
        labels = EmbeddingKMeans(embed, normalize=True).cluster(features, k, seed=seed)
    return [TextAssignment(t, int(c)) for t, c in zip(texts, labels.tolist(), strict=True)]


def text_assignments_csv(rows: list[TextAssignment]) -> str:
    """``text,cluster`` lines with a header (CSV quoting for commas and quotes in sentences).

    Example:
        >>> print(text_assignments_csv([TextAssignment("hi", 0), TextAssignment('a "b", c', 1)]), end="")
        text,cluster
        hi,0
        "a ""b"", c",1
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["text", "cluster"])
    writer.writerows([r.text, r.cluster] for r in rows)
    return out.getvalue()
