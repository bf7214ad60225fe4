"""COCO AP and AP50 of detections through pycocotools (``pip install "metadl[detect]"``): no hand-written AP.

:func:`coco_ap` scores detections against a :class:`DetectionDataset` with pycocotools' ``COCOeval``
(101-point interpolated precision, IoU 0.50:0.95 for AP, 0.50 for AP50, up to 100 detections per
image), over all categories or a subset, e.g. the base or the novel classes of a few-shot split.
Across K-shot samples, :func:`summarise` gives mean ± 95% CI (Student t, :mod:`.confidence`).

Example (``coco_ap`` itself is tested against handmade cases in tests/unit/evaluation/test_detection_ap.py,
which skips when pycocotools is absent):
    >>> s = summarise([APResult(0.4, 0.6), APResult(0.5, 0.8), APResult(0.6, 0.7)])
    >>> round(s.ap50, 3), round(s.ap50_ci95, 3), s.n
    (0.7, 0.248, 3)
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from metadl.data.detection.annotations import DetectionDataset
from metadl.data.detection.coco import coco_dict
from metadl.evaluation.confidence import mean_ci95


class MissingPycocotoolsError(ImportError):
    """pycocotools is not installed."""


@dataclass(frozen=True)
class ScoredBox:
    """One detection: image id, category id, COCO box ``(x, y, w, h)`` and score."""

    image_id: int
    category_id: int
    bbox: tuple[float, float, float, float]
    score: float


@dataclass(frozen=True)
class APResult:
    """COCO AP (IoU 0.50:0.95) and AP50, in [0, 1]; -1 where no ground truth exists (COCO's convention)."""

    ap: float
    ap50: float


@dataclass(frozen=True)
class APSummary:
    """Mean ± 95% CI half-width of AP and AP50 over ``n`` samples (e.g. seeded K-shot samples)."""

    ap: float
    ap_ci95: float
    ap50: float
    ap50_ci95: float
    n: int


def coco_ap(
    truth: DetectionDataset, detections: Sequence[ScoredBox], category_ids: Sequence[int] | None = None
) -> APResult:
    """AP and AP50 of ``detections`` on ``truth`` over ``category_ids`` (default: all categories)."""
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:  # an optional dependency, imported where it is used
        raise MissingPycocotoolsError('COCO AP needs pycocotools: pip install "metadl[detect]"') from None
    gt = COCO()
    gt.dataset = coco_dict(truth)
    results = [
        {"image_id": d.image_id, "category_id": d.category_id, "bbox": list(d.bbox), "score": d.score}
        for d in detections
    ]
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress and tables
        gt.createIndex()
        dt = gt.loadRes(results) if results else COCO()
        if not results:
            dt.dataset = {
                "images": gt.dataset["images"],
                "categories": gt.dataset["categories"],
                "annotations": [],
            }
            dt.createIndex()
        evaluator = COCOeval(gt, dt, iouType="bbox")
        evaluator.params.imgIds = [info.id for info in truth.images]
        if category_ids is not None:
            evaluator.params.catIds = list(category_ids)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return APResult(float(evaluator.stats[0]), float(evaluator.stats[1]))


def summarise(results: Sequence[APResult]) -> APSummary:
    """Mean ± 95% CI of AP and AP50 over results (e.g. one per seeded K-shot sample)."""
    ap, ap_h = mean_ci95(np.array([r.ap for r in results]))
    ap50, ap50_h = mean_ci95(np.array([r.ap50 for r in results]))
    return APSummary(ap, ap_h, ap50, ap50_h, len(results))
