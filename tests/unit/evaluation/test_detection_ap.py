"""COCO AP through pycocotools on handmade predictions whose AP is known by hand."""

from __future__ import annotations

import pytest

from metadl.data.detection import BoxAnnotation, DetectionDataset, ImageInfo
from metadl.evaluation.detection import APResult, ScoredBox, coco_ap, summarise

pytest.importorskip("pycocotools")


def truth() -> DetectionDataset:
    """Two images, two classes: image 1 has one 'a' and one 'b', image 2 has one 'a'."""
    images = (ImageInfo(1, "1.png", 100, 100), ImageInfo(2, "2.png", 100, 100))
    boxes = (
        BoxAnnotation(1, 1, (10.0, 10.0, 20.0, 20.0)),
        BoxAnnotation(1, 2, (50.0, 50.0, 30.0, 30.0)),
        BoxAnnotation(2, 1, (0.0, 0.0, 40.0, 40.0)),
    )
    return DetectionDataset(images, boxes, {1: "a", 2: "b"})


def exact(score: float = 0.9) -> list[ScoredBox]:
    return [ScoredBox(a.image_id, a.category_id, a.bbox, score) for a in truth().annotations]


def test_perfect_detections_score_one_and_none_score_zero():
    assert coco_ap(truth(), exact()) == APResult(1.0, 1.0)
    assert coco_ap(truth(), []) == APResult(0.0, 0.0)


def test_a_box_at_iou_0_6_counts_for_ap50_only_in_part_of_the_thresholds():
    # 'b' predicted as (50, 50, 30, 18): IoU 0.6, a hit at thresholds 0.50-0.60 (3 of 10)
    preds = [p for p in exact() if p.category_id == 1] + [ScoredBox(1, 2, (50.0, 50.0, 30.0, 18.0), 0.9)]
    only_b = coco_ap(truth(), preds, category_ids=[2])
    assert only_b.ap50 == pytest.approx(1.0) and only_b.ap == pytest.approx(0.3)
    assert coco_ap(truth(), preds, category_ids=[1]) == APResult(1.0, 1.0)


def test_a_higher_scored_false_positive_halves_precision_at_the_first_recall():
    # class 'a': a false positive scored above both hits -> precision 1/2 at recall 1/2, 2/3 at recall 1
    preds = exact(0.5) + [ScoredBox(2, 1, (60.0, 60.0, 30.0, 30.0), 0.9)]
    result = coco_ap(truth(), preds, category_ids=[1])
    # 101-point interpolation: precision 2/3 (the best at recall >= r) at every recall point up to 1
    assert result.ap50 == pytest.approx(2 / 3, abs=1e-6)


def test_detections_of_the_wrong_class_do_not_count():
    swapped = [ScoredBox(p.image_id, 3 - p.category_id, p.bbox, p.score) for p in exact()]
    assert coco_ap(truth(), swapped) == APResult(0.0, 0.0)


def test_summarise_is_mean_and_student_t_interval():
    s = summarise([APResult(0.1, 0.2), APResult(0.3, 0.4)])
    assert (s.ap, s.ap50, s.n) == (pytest.approx(0.2), pytest.approx(0.3), 2)
    assert s.ap50_ci95 == pytest.approx(12.706 * 0.1414214 / 2**0.5, rel=1e-3)
