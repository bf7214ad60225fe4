"""Box operations in plain torch: format changes, IoU, CenterNet's box encoding, non-maximum suppression.

Boxes are ``(N, 4)`` float tensors, ``xyxy`` (corners) inside the detector and ``xywh`` (COCO: top-left
corner, width, height) at its borders.

A box is *encoded* at the cell of a stride-``s`` feature map that holds its centre, as CenterNet does
(Zhou et al. 2019): the centre's offset inside the cell and the log of its size in cells,

    cell = floor(c / s),   t = (c_x / s - cell_x, c_y / s - cell_y, log(w / s), log(h / s)),

and *decoded* back exactly (:func:`decode_boxes` inverts :func:`encode_boxes`).

Example:
    >>> boxes = torch.tensor([[10.0, 20.0, 40.0, 44.0]])
    >>> cells, targets = encode_boxes(boxes, stride=8)
    >>> cells.tolist(), torch.allclose(decode_boxes(cells, targets, stride=8), boxes)
    ([[3, 4]], True)
    >>> nms(torch.tensor([[0.0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]]), torch.tensor([0.9, 0.8, 0.7]), 0.5)
    tensor([0, 2])
"""

from __future__ import annotations

import torch
from torch import Tensor


def xywh_to_xyxy(boxes: Tensor) -> Tensor:
    """``(x, y, w, h)`` -> ``(x1, y1, x2, y2)``."""
    x, y, w, h = boxes.unbind(-1)
    return torch.stack([x, y, x + w, y + h], dim=-1)


def xyxy_to_xywh(boxes: Tensor) -> Tensor:
    """``(x1, y1, x2, y2)`` -> ``(x, y, w, h)``."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack([x1, y1, x2 - x1, y2 - y1], dim=-1)


def box_area(boxes: Tensor) -> Tensor:
    """Areas of ``(N, 4)`` xyxy boxes (0 for empty ones)."""
    return (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """``(N, M)`` intersection over union of xyxy boxes ``a (N, 4)`` and ``b (M, 4)``."""
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(-1)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return inter / union.clamp(min=torch.finfo(a.dtype).tiny)


def encode_boxes(boxes: Tensor, stride: int) -> tuple[Tensor, Tensor]:
    """The centre cells ``(N, 2)`` long ``(col, row)`` and targets ``(N, 4)`` of xyxy boxes (module docstring)."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / (2 * stride)
    cells = centre.floor().long()
    size = (boxes[:, 2:] - boxes[:, :2]) / stride
    return cells, torch.cat([centre - cells, size.log()], dim=1)


def decode_boxes(cells: Tensor, targets: Tensor, stride: int) -> Tensor:
    """xyxy boxes ``(N, 4)`` from cells ``(N, 2)`` and targets ``(N, 4)``; the inverse of :func:`encode_boxes`."""
    centre = (cells.to(targets.dtype) + targets[:, :2]) * stride
    half = targets[:, 2:].exp() * stride / 2
    return torch.cat([centre - half, centre + half], dim=1)


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression: indices of the kept boxes, by decreasing score.

    A box is dropped when its IoU with a higher-scoring kept box exceeds ``iou_threshold`` (ties in score
    keep the lower index first, as a stable sort does).
    """
    order = torch.argsort(scores, descending=True, stable=True)
    iou = box_iou(boxes[order], boxes[order])
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= iou[i] > iou_threshold
    return order[torch.tensor(keep, dtype=torch.long)]


def batched_nms(boxes: Tensor, scores: Tensor, labels: Tensor, iou_threshold: float) -> Tensor:
    """:func:`nms` within each label: boxes of different labels never suppress each other."""
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long)
    shift = labels.to(boxes.dtype)[:, None] * (boxes.max() - boxes.min() + 1)
    return nms(boxes + shift, scores, iou_threshold)
