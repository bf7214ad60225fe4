"""The few-shot detection split (Kang et al. 2019; TFA, Wang et al. 2020): base and novel classes.

Base training sees every base-class box and *no* novel-class box: novel objects that appear in base
images stay unannotated (background), as in the VOC and COCO few-shot splits. A K-shot sample holds,
for each novel class, images whose boxes of that class add up to exactly K instances (images are
tried in a seeded random order and taken while they fit, the rule of TFA's split generator); only
that class's boxes are kept in them. Several seeds give several K-shot samples, and results are
reported as mean ± 95% CI over them.

Example:
    >>> from metadl.data.detection.annotations import BoxAnnotation, DetectionDataset, ImageInfo
    >>> images = tuple(ImageInfo(i, f"{i}.png", 64, 64) for i in range(1, 7))
    >>> boxes = tuple(BoxAnnotation(i, 1 + i % 2, (1.0, 1.0, 9.0, 9.0)) for i in range(1, 7))
    >>> ds = DetectionDataset(images, boxes, {1: "base", 2: "novel"})
    >>> [a.category_id for a in base_only(ds, novel={2}).annotations]
    [1, 1, 1]
    >>> shots = sample_shots(ds, novel={2}, k=2, seed=0)
    >>> len(shots.annotations), {a.category_id for a in shots.annotations}
    (2, {2})
"""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np

from metadl.data.detection.annotations import AnnotationError, BoxAnnotation, DetectionDataset


def base_only(ds: DetectionDataset, novel: set[int]) -> DetectionDataset:
    """The dataset with every novel-class box removed (its images kept: novel objects become background)."""
    return ds.with_annotations([a for a in ds.annotations if a.category_id not in novel])


def sample_shots(
    ds: DetectionDataset, novel: set[int], k: int, seed: int, *, classes: set[int] | None = None
) -> DetectionDataset:
    """K annotated instances of each class in ``classes`` (default: ``novel``), from seeded images.

    Returns the images used (an image may serve several classes) with only the chosen classes' boxes.
    A class with fewer than ``k`` instances fails naming it.
    """
    if k < 1:
        raise AnnotationError(f"k = {k}: a K-shot sample needs k >= 1")
    wanted = sorted(novel if classes is None else classes)
    rng = np.random.default_rng(seed)
    by_image: dict[int, list[BoxAnnotation]] = defaultdict(list)
    for ann in ds.annotations:
        by_image[ann.image_id].append(ann)
    chosen: dict[int, list[BoxAnnotation]] = defaultdict(list)
    for cid in wanted:
        counts = Counter(a.image_id for a in ds.annotations if a.category_id == cid)
        if sum(counts.values()) < k:
            raise AnnotationError(
                f"category {ds.categories[cid]!r} has {sum(counts.values())} boxes, fewer than k = {k}"
            )
        order = [sorted(counts)[i] for i in rng.permutation(len(counts))]
        used, total = set(), 0
        for image_id in order:
            if total + counts[image_id] <= k:
                chosen[image_id] += [a for a in by_image[image_id] if a.category_id == cid]
                used.add(image_id)
                total += counts[image_id]
            if total == k:
                break
        if total < k:  # only images with several instances remain: take some boxes of the first of them
            image_id = next(i for i in order if i not in used)
            chosen[image_id] += [a for a in by_image[image_id] if a.category_id == cid][: k - total]
    images = [info for info in ds.images if info.id in chosen]
    return ds.with_annotations([a for info in images for a in chosen[info.id]], images)


def merge(*parts: DetectionDataset) -> DetectionDataset:
    """The union of datasets over the same categories and image folder (an image's boxes are pooled)."""
    first = parts[0]
    images = {info.id: info for part in parts for info in part.images}
    seen = set()
    boxes = []
    for part in parts:
        for ann in part.annotations:
            if ann not in seen:
                seen.add(ann)
                boxes.append(ann)
    return first.with_annotations(boxes, [images[i] for i in sorted(images)])
