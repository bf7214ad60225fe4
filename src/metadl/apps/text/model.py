"""A text classifier that adapts from a few labelled sentences: a text encoder composed with a learner.

``TextModel(encoder, learner)``: the encoder (:mod:`metadl.models.text`) turns sentences into what the
learner's backbone reads (frozen embeddings for ``identity``, token ids for a sequence backbone), and
the learner adapts on them exactly as on any other input. Text tasks keep ``x`` as an index column
into their texts (:mod:`metadl.tasks.source`); :func:`gather_inputs` turns a batch of such tasks into
a batch over the encoded inputs with one index gather.

Example:
    >>> from metadl.models.text import TokenEncoder
    >>> texts = ["book a flight", "flight to rome", "my balance", "balance please"]
    >>> model = TextModel.build(TokenEncoder(texts=texts), "protonet", backbone="gru", hidden_size=8, embed_dim=8)
    >>> predictor = model.adapt(texts, ["travel", "travel", "bank", "bank"])
    >>> [p.label for p in predictor.predict(["flight please"])][0] in ("travel", "bank")
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from metadl.algorithms.base import Learner, Predictor
from metadl.algorithms.registry import create_learner
from metadl.models.registry import create_backbone
from metadl.models.text.encoders import TextEncoder
from metadl.tasks.task import TaskBatch


def gather_inputs(batch: TaskBatch, inputs: Tensor) -> TaskBatch:
    """Replace the index columns ``x`` ``(T, S, 1)`` of a text batch by ``inputs[x]`` ``(T, S, *input_shape)``."""
    return TaskBatch(
        inputs[batch.support_x[..., 0]], batch.support_y, inputs[batch.query_x[..., 0]], batch.query_y
    )


@dataclass(frozen=True)
class Prediction:
    """One classified sentence: its text, the predicted label and that label's probability."""

    text: str
    label: str
    probability: float
    probabilities: dict[str, float]


class TextPredictor:
    """A text model adapted to one support set; ``predict(texts)`` returns one :class:`Prediction` per text."""

    def __init__(self, encoder: TextEncoder, inner: Predictor, classes: tuple[str, ...]) -> None:
        self.encoder, self.inner, self.classes = encoder, inner, classes

    def predict_proba(self, texts: Sequence[str], batch_size: int = 512) -> Tensor:
        """``(N, C)`` probabilities, columns ordered as ``classes``."""
        if not texts:
            return torch.zeros(0, len(self.classes))
        chunks = [self.encoder.encode(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)]
        return torch.cat([self.inner.predict_proba(c).float().cpu() for c in chunks])

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        proba = self.predict_proba(texts)
        out = []
        for text, p in zip(texts, proba.tolist(), strict=True):
            best = max(range(len(p)), key=p.__getitem__)
            out.append(Prediction(text, self.classes[best], p[best], dict(zip(self.classes, p, strict=True))))
        return out


class TextModel:
    """An encoder and a learner; ``adapt(texts, labels)`` gives a :class:`TextPredictor` (no training)."""

    def __init__(self, encoder: TextEncoder, learner: Learner, spec: dict[str, dict[str, Any]]) -> None:
        self.encoder, self.learner, self.spec = encoder, learner, spec

    @classmethod
    def build(
        cls,
        encoder: TextEncoder,
        learner: str,
        *,
        backbone: str | None = None,
        n_way: int = 5,
        learner_kwargs: dict[str, Any] | None = None,
        backbone_state: dict[str, Tensor] | None = None,
        **kwargs: Any,
    ) -> TextModel:
        """A fresh model: ``learner`` (a registry name) on the backbone that reads ``encoder``'s output.

        ``kwargs`` go to the backbone (e.g. ``hidden_size``), ``learner_kwargs`` to the learner (e.g.
        ``{"distance": "cosine"}``); ``n_way`` is the meta-training way; ``backbone_state``: initial
        backbone weights (e.g. the pretrained top blocks, ``LowerLayerEncoder.top_state()``), loaded strictly.
        """
        backbone_spec = encoder.backbone_spec(backbone, **kwargs)
        learner_spec = {"name": learner, "n_way": n_way, **(learner_kwargs or {})}
        spec = {"backbone": backbone_spec, "learner": learner_spec}
        bb, lk = dict(backbone_spec), dict(learner_spec)
        body = create_backbone(bb.pop("name"), **bb)
        if backbone_state is not None:
            body.load_state_dict(backbone_state)
        net = create_learner(lk.pop("name"), backbone=body, **lk)
        return cls(encoder, net, spec)

    def adapt(self, texts: Sequence[str], labels: Sequence[str]) -> TextPredictor:
        """Adapt to ``texts`` labelled ``labels`` (any strings; at least two classes)."""
        if len(texts) != len(labels) or not texts:
            raise ValueError(
                f"need as many labels as texts (at least one), got {len(texts)} and {len(labels)}"
            )
        classes = tuple(sorted(set(labels)))
        if len(classes) < 2:
            raise ValueError(f"the support set has one label {classes}; give examples of at least two labels")
        y = torch.tensor([classes.index(label) for label in labels])
        self.learner.eval()
        with torch.no_grad():
            inner = self.learner.adapt(self.encoder.encode(texts), y)
        return TextPredictor(self.encoder, inner, classes)
