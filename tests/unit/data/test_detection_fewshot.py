"""The few-shot split: base training loses novel boxes only; K-shot samples hold exactly K per class, seeded."""

from __future__ import annotations

import pytest

from metadl.data.detection import (
    AnnotationError,
    BoxAnnotation,
    DetectionDataset,
    ImageInfo,
    base_only,
    merge,
    sample_shots,
)


def dataset(seed: int = 0) -> DetectionDataset:
    """40 images; image i holds (i % 3) + 1 boxes of class 1 + i % 4 (classes 1-2 base, 3-4 novel)."""
    images = tuple(ImageInfo(i, f"{i}.png", 100, 100) for i in range(1, 41))
    boxes = tuple(
        BoxAnnotation(i, 1 + i % 4, (float(10 * j), 5.0, 8.0, 8.0))
        for i in range(1, 41)
        for j in range(i % 3 + 1)
    )
    return DetectionDataset(images, boxes, {1: "a", 2: "b", 3: "c", 4: "d"})


def test_base_only_drops_novel_boxes_and_keeps_every_image():
    ds = dataset()
    base = base_only(ds, novel={3, 4})
    assert base.images == ds.images
    assert [a for a in ds.annotations if a.category_id in (1, 2)] == list(base.annotations)


@pytest.mark.parametrize("k", [1, 2, 5, 10])
def test_a_k_shot_sample_holds_exactly_k_boxes_of_each_class_from_whole_images(k):
    ds = dataset()
    shots = sample_shots(ds, novel={3, 4}, k=k, seed=1)
    for cid in (3, 4):
        mine = [a for a in shots.annotations if a.category_id == cid]
        assert len(mine) == k
    assert {a.category_id for a in shots.annotations} == {3, 4}
    assert {a.image_id for a in shots.annotations} == {info.id for info in shots.images}
    assert set(shots.annotations) <= set(ds.annotations)


def test_k_shot_samples_are_seeded():
    ds = dataset()
    assert sample_shots(ds, {3, 4}, 5, seed=0) == sample_shots(ds, {3, 4}, 5, seed=0)
    samples = {tuple(sample_shots(ds, {3, 4}, 5, seed=s).annotations) for s in range(5)}
    assert len(samples) > 1


def test_a_class_with_too_few_boxes_is_named():
    with pytest.raises(AnnotationError, match="category 'c' has .* fewer than k = 100"):
        sample_shots(dataset(), {3}, 100, seed=0)


def test_merge_pools_boxes_of_shared_images():
    ds = dataset()
    a, b = sample_shots(ds, {3}, 3, seed=0), sample_shots(ds, {1}, 3, seed=0, classes={1})
    merged = merge(a, b)
    assert len(merged.annotations) == 6
    assert {i.id for i in merged.images} == {i.id for i in a.images} | {i.id for i in b.images}
