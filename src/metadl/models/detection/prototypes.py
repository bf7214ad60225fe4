"""Adding classes to a trained detector from a few boxes, with no gradient step (a prototype head).

An object's *instance embedding* is the embedding at the cell holding its box centre (the cell whose
heatmap logit classifies it). A new class's weight is the mean of its support instances' unit
embeddings, appended to the cosine head (:meth:`.heads.CosineHead.with_classes`); the base classes'
weights, scale and bias are untouched, so their scores stay exactly what they were.

:class:`PrototypeDetector` wraps this in the learner API of metadl: ``adapt(support)`` returns a new
detector for base + support classes, leaving the trained one unchanged.

Example:
    >>> from metadl.models.detection.detector import CenterNetDetector, DetectorSpec
    >>> base = CenterNetDetector(DetectorSpec(n_classes=2, hidden=4, dim=8)).eval()
    >>> support = torch.rand(1, 1, 32, 32), [torch.tensor([[4.0, 4.0, 20.0, 20.0]])], [torch.tensor([0])]
    >>> adapted = PrototypeDetector(base).adapt(*support)
    >>> adapted.head.n_classes, base.head.n_classes
    (3, 2)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from metadl.models.detection.boxes import encode_boxes
from metadl.models.detection.detector import STRIDE, CenterNetDetector


@torch.no_grad()
def instance_embeddings(
    detector: CenterNetDetector, images: Tensor, boxes: list[Tensor], labels: list[Tensor]
) -> tuple[Tensor, Tensor]:
    """Unit embeddings ``(M, D)`` at the centre cells of all boxes, and their labels ``(M,)``."""
    detector.eval()
    emb = detector.embed(images)
    h, w = emb.shape[-2:]
    out, out_labels = [], []
    for b, (image_boxes, image_labels) in enumerate(zip(boxes, labels, strict=True)):
        if len(image_boxes) == 0:
            continue
        cells, _ = encode_boxes(image_boxes, STRIDE)
        cols, rows = cells[:, 0].clamp(0, w - 1), cells[:, 1].clamp(0, h - 1)
        out.append(emb[b][:, rows, cols].T)
        out_labels.append(image_labels)
    if not out:
        raise ValueError("the support images hold no boxes; give at least one box per new class")
    return F.normalize(torch.cat(out), dim=1), torch.cat(out_labels)


def class_prototypes(embeddings: Tensor, labels: Tensor, n_classes: int) -> Tensor:
    """``(n_classes, D)``: the mean unit embedding of each class 0..n_classes-1 (each must occur)."""
    missing = sorted(set(range(n_classes)) - set(labels.tolist()))
    if missing:
        raise ValueError(f"new classes {missing} have no support box; give at least one box of each")
    one_hot = F.one_hot(labels, n_classes).to(embeddings.dtype)  # (M, n)
    return (one_hot.T @ embeddings) / one_hot.sum(0)[:, None]


class PrototypeDetector:
    """A trained detector that learns new classes from support boxes by :meth:`adapt` (no gradient)."""

    def __init__(self, detector: CenterNetDetector) -> None:
        self.detector = detector

    def adapt(self, images: Tensor, boxes: list[Tensor], labels: list[Tensor]) -> CenterNetDetector:
        """A detector for the base classes then the support's classes ``0..N-1`` (as indices N_base..).

        ``images (B, C, H, W)`` float in [0, 1]; ``boxes[b] (n_b, 4)`` xyxy; ``labels[b] (n_b,)``.
        """
        embeddings, flat = instance_embeddings(self.detector, images, boxes, labels)
        n_new = int(flat.max()) + 1
        prototypes = class_prototypes(embeddings, flat, n_new)
        return self.detector.with_head(self.detector.head.with_classes(prototypes)).eval()
