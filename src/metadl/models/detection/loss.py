"""CenterNet's training targets and loss: Gaussian class heatmaps, focal loss, L1 box regression.

For each object, its class heatmap gets a Gaussian peak of value 1 at the cell holding its centre,
``sigma = (2r + 1) / 6`` with ``r = floor(0.3 * min(w, h) / stride)`` cells (CenterNet's
size-adaptive radius, simplified); overlapping peaks take the maximum. The heatmap loss is the
penalty-reduced focal loss of CornerNet/CenterNet, normalised by the number of objects:

    L = -1/N * sum[ y == 1: (1 - p)^2 log p ;  otherwise: (1 - y)^4 p^2 log(1 - p) ],

and the box head regresses, at each object's centre cell only, the targets of
:func:`.boxes.encode_boxes` with an L1 loss (also divided by N).

Example:
    >>> logits, reg = torch.zeros(1, 2, 8, 8), torch.zeros(1, 4, 8, 8)
    >>> loss = detection_loss(logits, reg, [torch.tensor([[8.0, 8.0, 40.0, 40.0]])], [torch.tensor([1])])
    >>> loss.heatmap > 0, loss.box > 0
    (tensor(True), tensor(True))
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from metadl.models.detection.boxes import encode_boxes
from metadl.models.detection.detector import STRIDE


@dataclass(frozen=True)
class DetectionLoss:
    """The loss to minimise (``total``) and its two parts."""

    total: Tensor
    heatmap: Tensor
    box: Tensor


def heatmap_targets(boxes: Tensor, labels: Tensor, n_classes: int, size: tuple[int, int]) -> Tensor:
    """``(C, h, w)`` Gaussian heatmaps of one image's xyxy ``boxes (N, 4)`` with class indices ``labels (N,)``."""
    h, w = size
    target = torch.zeros(n_classes, h, w)
    if len(boxes) == 0:
        return target
    cells, _ = encode_boxes(boxes, STRIDE)
    cells[:, 0].clamp_(0, w - 1)
    cells[:, 1].clamp_(0, h - 1)
    ys, xs = torch.arange(h, dtype=torch.float32)[:, None], torch.arange(w, dtype=torch.float32)[None, :]
    sides = (boxes[:, 2:] - boxes[:, :2]).min(dim=1).values / STRIDE
    for (cx, cy), side, label in zip(cells.tolist(), sides.tolist(), labels.tolist(), strict=True):
        sigma = (2 * int(0.3 * side) + 1) / 6
        peak = torch.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2))
        target[label] = torch.maximum(target[label], peak)
    return target


def focal_loss(logits: Tensor, target: Tensor, n_objects: int) -> Tensor:
    """The penalty-reduced focal loss of heatmap ``logits`` against Gaussian ``target`` (same shape)."""
    positive = target == 1
    log_p, log_not_p = F.logsigmoid(logits), F.logsigmoid(-logits)
    p = logits.sigmoid()
    pos_loss = -(((1 - p) ** 2) * log_p)[positive].sum()
    neg_loss = -(((1 - target) ** 4) * (p**2) * log_not_p)[~positive].sum()
    return (pos_loss + neg_loss) / max(1, n_objects)


def detection_loss(
    logits: Tensor, regression: Tensor, boxes: list[Tensor], labels: list[Tensor]
) -> DetectionLoss:
    """The loss of raw maps ``logits (B, C, h, w)`` and ``regression (B, 4, h, w)`` against each image's
    xyxy ``boxes[b] (N_b, 4)`` and class indices ``labels[b] (N_b,)``."""
    batch, classes, h, w = logits.shape
    target = torch.stack(
        [heatmap_targets(b, lab, classes, (h, w)) for b, lab in zip(boxes, labels, strict=True)]
    )
    n_objects = max(1, sum(len(b) for b in boxes))
    heat = focal_loss(logits, target.to(logits.device), n_objects)
    box_loss = logits.new_zeros(())
    for b, image_boxes in enumerate(boxes):
        if len(image_boxes) == 0:
            continue
        cells, reg_target = encode_boxes(image_boxes.to(logits.device), STRIDE)
        cols, rows = cells[:, 0].clamp(0, w - 1), cells[:, 1].clamp(0, h - 1)
        box_loss = box_loss + F.l1_loss(regression[b][:, rows, cols].T, reg_target, reduction="sum")
    box = box_loss / n_objects
    return DetectionLoss(heat + box, heat, box)
