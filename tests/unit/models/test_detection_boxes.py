"""Box operations against brute-force references: IoU, encode/decode round trip, NMS."""

from __future__ import annotations

import pytest
import torch

from metadl.models.detection.boxes import (
    batched_nms,
    box_iou,
    decode_boxes,
    encode_boxes,
    nms,
    xywh_to_xyxy,
    xyxy_to_xywh,
)


def random_boxes(n: int, seed: int, side: float = 128.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * side * 0.8
    wh = 4 + torch.rand(n, 2, generator=g) * side * 0.3
    return torch.cat([xy, xy + wh], dim=1)


def iou_one(a: list[float], b: list[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def nms_brute_force(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> list[int]:
    """The textbook loop: take the best remaining box, drop every box overlapping it too much, repeat."""
    remaining = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    keep = []
    while remaining:
        best = remaining.pop(0)
        keep.append(best)
        remaining = [i for i in remaining if iou_one(boxes[best].tolist(), boxes[i].tolist()) <= threshold]
    return keep


def test_iou_matches_a_pairwise_loop():
    a, b = random_boxes(7, 0), random_boxes(5, 1)
    expected = torch.tensor([[iou_one(x.tolist(), y.tolist()) for y in b] for x in a])
    assert torch.allclose(box_iou(a, b), expected, atol=1e-6)
    assert torch.allclose(box_iou(a, a).diagonal(), torch.ones(7))


def test_encode_decode_round_trip_and_centre_cell():
    boxes = random_boxes(50, 2)
    for stride in (4, 8, 16):
        cells, targets = encode_boxes(boxes, stride)
        centre = (boxes[:, :2] + boxes[:, 2:]) / 2
        assert torch.equal(cells, (centre / stride).floor().long())
        assert ((targets[:, :2] >= 0) & (targets[:, :2] < 1)).all()
        assert torch.allclose(decode_boxes(cells, targets, stride), boxes, atol=1e-4)
    assert torch.allclose(xywh_to_xyxy(xyxy_to_xywh(boxes)), boxes)


@pytest.mark.parametrize("threshold", [0.1, 0.3, 0.5, 0.7])
@pytest.mark.parametrize("seed", range(5))
def test_nms_equals_brute_force(threshold, seed):
    boxes = random_boxes(60, seed, side=64.0)  # crowded: many overlaps
    scores = torch.rand(60, generator=torch.Generator().manual_seed(100 + seed))
    assert nms(boxes, scores, threshold).tolist() == nms_brute_force(boxes, scores, threshold)


def test_nms_keeps_equal_scores_in_index_order_and_batched_nms_separates_labels():
    boxes = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]])
    scores = torch.tensor([0.5, 0.5, 0.5])
    assert nms(boxes, scores, 0.5).tolist() == [0]
    assert sorted(batched_nms(boxes, scores, torch.tensor([0, 1, 0]), 0.5).tolist()) == [0, 1]
    g = torch.Generator().manual_seed(3)
    boxes, scores, labels = (
        random_boxes(40, 3, 64.0),
        torch.rand(40, generator=g),
        torch.randint(0, 3, (40,), generator=g),
    )
    kept = set(batched_nms(boxes, scores, labels, 0.4).tolist())
    expected = set()
    for label in range(3):
        idx = torch.nonzero(labels == label).flatten()
        expected |= {int(idx[i]) for i in nms_brute_force(boxes[idx], scores[idx], 0.4)}
    assert kept == expected
