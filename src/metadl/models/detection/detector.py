"""A small anchor-free single-stage detector (CenterNet-style, Zhou et al. 2019) on a metadl backbone.

The first three stages of a Conv-4 or ResNet-12 (:func:`metadl.models.create_backbone`) give a
stride-8 map, the fourth a stride-16 map; the latter is upsampled and concatenated (a two-level FPN)
and a neck turns both into an embedding map ``(B, dim, H/8, W/8)``. Two heads read it:

- a class-agnostic box head: at each cell, the centre offset and log size (:mod:`.boxes`);
- a replaceable classification head (:class:`.heads.CosineHead`): per-class heatmap logits.

An object is detected at the cell holding its centre: peaks of the class heatmaps (3x3 local maxima),
the top ``max_detections`` of each class (COCO's AP counts up to 100 per image and class), decoded to
boxes and filtered by class-wise NMS. Classes never compete for detections, so a class added to the
head changes no other class's detections.

Example:
    >>> det = CenterNetDetector(DetectorSpec(n_classes=3, hidden=8, dim=16))
    >>> out = det(torch.rand(2, 1, 64, 64))
    >>> out.logits.shape, out.regression.shape
    (torch.Size([2, 3, 8, 8]), torch.Size([2, 4, 8, 8]))
    >>> len(det.detect(torch.rand(2, 1, 64, 64)))
    2
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metadl.models.conv4 import Conv4
from metadl.models.detection.boxes import batched_nms, decode_boxes
from metadl.models.detection.heads import CosineHead
from metadl.models.resnet12 import ResNet12

STRIDE = 8
BACKBONES = ("conv4", "resnet12")


@dataclass(frozen=True)
class DetectorSpec:
    """The detector's architecture: ``backbone`` (conv4 or resnet12) of width ``hidden``, ``dim``-d embeddings."""

    n_classes: int
    backbone: str = "conv4"
    hidden: int = 32
    dim: int = 64
    in_channels: int = 1

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(
                f"detector backbone {self.backbone!r} is not supported; choose one of {BACKBONES}"
            )
        if min(self.n_classes, self.hidden, self.dim, self.in_channels) < 1:
            raise ValueError(f"detector sizes must be >= 1, got {self}")


@dataclass(frozen=True)
class DetectorOutput:
    """Raw maps: class ``logits (B, C, h, w)``, box ``regression (B, 4, h, w)``, embeddings ``(B, D, h, w)``."""

    logits: Tensor
    regression: Tensor
    embeddings: Tensor


@dataclass(frozen=True)
class Detections:
    """One image's detections: xyxy ``boxes (N, 4)``, ``scores (N,)`` and class indices ``labels (N,)``."""

    boxes: Tensor
    scores: Tensor
    labels: Tensor


def backbone_stages(spec: DetectorSpec) -> tuple[nn.Sequential, nn.Module, int, int]:
    """The stride-8 stages, the last (stride-16) stage, and their channel counts, of the spec's backbone."""
    if spec.backbone == "conv4":
        conv4 = Conv4(in_channels=spec.in_channels, hidden=spec.hidden, image_size=16)
        stages = list(conv4.encoder)
        return nn.Sequential(*stages[:3]), stages[3], spec.hidden, spec.hidden
    widths = (spec.hidden, spec.hidden * 2, spec.hidden * 4, spec.hidden * 8)
    resnet = ResNet12(in_channels=spec.in_channels, channels=widths, image_size=16)
    blocks = list(resnet.blocks)
    return nn.Sequential(*blocks[:3]), blocks[3], widths[2], widths[3]


class CenterNetDetector(nn.Module):
    """Backbone + neck + box head + classification head (module docstring)."""

    def __init__(self, spec: DetectorSpec) -> None:
        super().__init__()
        self.spec = spec
        self.low, self.high, c_low, c_high = backbone_stages(spec)
        dim = spec.dim
        self.neck = nn.Sequential(
            nn.Conv2d(c_low + c_high, dim, 3, padding=1), nn.ReLU(), nn.Conv2d(dim, dim, 3, padding=1)
        )
        self.box = nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1), nn.ReLU(), nn.Conv2d(dim, 4, 1))
        self.head = CosineHead(n_classes=spec.n_classes, dim=dim)

    def embed(self, images: Tensor) -> Tensor:
        """``images (B, C, H, W)`` in [0, 1], H and W divisible by 16 -> embeddings ``(B, dim, H/8, W/8)``."""
        low = self.low(images)
        high = F.interpolate(self.high(low), size=low.shape[-2:], mode="nearest")
        return self.neck(torch.cat([low, high], dim=1))

    def forward(self, images: Tensor) -> DetectorOutput:
        emb = self.embed(images)
        return DetectorOutput(self.head(emb), self.box(emb), emb)

    def with_head(self, head: CosineHead) -> CenterNetDetector:
        """A copy of this detector (its own weights) with another classification head."""
        clone = copy.deepcopy(self)
        clone.head = head
        clone.spec = DetectorSpec(head.n_classes, self.spec.backbone, self.spec.hidden, self.spec.dim,
                                  self.spec.in_channels)  # fmt: skip
        return clone

    @torch.no_grad()
    def detect(
        self,
        images: Tensor,
        *,
        max_detections: int = 100,
        score_threshold: float = 0.01,
        iou_threshold: float = 0.5,
    ) -> list[Detections]:
        """Boxes, scores and labels for each image of ``images (B, C, H, W)`` (module docstring)."""
        out = self(images)
        return decode_detections(out, images.shape[-2:], max_detections, score_threshold, iou_threshold)


def decode_detections(
    out: DetectorOutput, size: torch.Size, max_detections: int, score_threshold: float, iou_threshold: float
) -> list[Detections]:
    """Peaks of the heatmaps -> boxes clipped to the image, thresholded and NMS-filtered, per image."""
    heat = out.logits.sigmoid()
    peaks = heat * (heat == F.max_pool2d(heat, 3, stride=1, padding=1))
    batch, classes, h, w = heat.shape
    scores, cell = peaks.flatten(2).topk(min(max_detections, h * w), dim=2)  # (B, C, k) per class
    labels_all = torch.arange(classes, device=cell.device)[:, None].expand_as(cell[0])
    results = []
    for b in range(batch):
        keep = scores[b] > score_threshold
        labels, idx = labels_all[keep], cell[b][keep]
        rows, cols = idx // w, idx % w
        regression = out.regression[b][:, rows, cols].T  # (N, 4)
        boxes = decode_boxes(torch.stack([cols, rows], dim=1), regression, STRIDE)
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, size[1])
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, size[0])
        kept = batched_nms(boxes, scores[b][keep], labels, iou_threshold)
        results.append(Detections(boxes[kept], scores[b][keep][kept], labels[kept]))  # NMS within each class
    return results
