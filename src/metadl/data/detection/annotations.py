"""Box annotations in memory: images, their boxes and the category names, checked once when built.

Every reader (COCO JSON, Pascal VOC XML, the generated Omniglot scenes) ends in one
:class:`DetectionDataset`, so the few-shot split, training and the metrics see one shape of data
whatever the source. Boxes are COCO's ``[x, y, w, h]`` in pixels, ``(x, y)`` the top-left corner.

Example:
    >>> ds = DetectionDataset(
    ...     images=(ImageInfo(1, "a.png", 64, 64),),
    ...     annotations=(BoxAnnotation(1, 7, (4.0, 4.0, 10.0, 12.0)),),
    ...     categories={7: "cat"},
    ... )
    >>> ds.boxes_of(1)
    [BoxAnnotation(image_id=1, category_id=7, bbox=(4.0, 4.0, 10.0, 12.0))]
    >>> DetectionDataset(images=ds.images, annotations=(BoxAnnotation(1, 7, (60.0, 4.0, 10.0, 12.0)),),
    ...                  categories={7: "cat"})
    Traceback (most recent call last):
    ...
    metadl.data.detection.annotations.AnnotationError: box [60.0, 4.0, 10.0, 12.0] of image 1 ('a.png') is outside its 64x64 image; fix the box or the image size
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

MAX_IMAGE_SIDE = 16384  # larger than any VOC/COCO image; bounds what a file may ask us to allocate
BOX_SLACK = 1.0  # annotation tools round to the pixel: a box may overhang its image by one pixel


class AnnotationError(ValueError):
    """An annotation file cannot be used as it is (the message names the entry and the fix)."""


@dataclass(frozen=True)
class ImageInfo:
    """One image: its id, file name (relative to the dataset's image folder) and size in pixels."""

    id: int
    file_name: str
    width: int
    height: int


@dataclass(frozen=True)
class BoxAnnotation:
    """One annotated object: the image, the category id and the box ``(x, y, w, h)`` in pixels."""

    image_id: int
    category_id: int
    bbox: tuple[float, float, float, float]


@dataclass(frozen=True)
class DetectionDataset:
    """Images, boxes and categories, checked at construction (see the module docstring).

    ``image_root`` is the folder the images' ``file_name`` are relative to (None: not on disk).
    """

    images: tuple[ImageInfo, ...]
    annotations: tuple[BoxAnnotation, ...]
    categories: dict[int, str]
    image_root: Path | None = None
    _by_image: dict[int, list[BoxAnnotation]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_id = {}
        for info in self.images:
            if info.id in by_id:
                raise AnnotationError(
                    f"image id {info.id} appears twice ({info.file_name!r}); ids must be unique"
                )
            if not (0 < info.width <= MAX_IMAGE_SIDE and 0 < info.height <= MAX_IMAGE_SIDE):
                raise AnnotationError(
                    f"image {info.id} ({info.file_name!r}) is {info.width}x{info.height}; sides must be 1..{MAX_IMAGE_SIDE}"
                )
            by_id[info.id] = info
        by_image: dict[int, list[BoxAnnotation]] = defaultdict(list)
        for ann in self.annotations:
            found = by_id.get(ann.image_id)
            if found is None:
                raise AnnotationError(f"an annotation refers to image id {ann.image_id}, which is not listed")
            if ann.category_id not in self.categories:
                raise AnnotationError(
                    f"an annotation of image {ann.image_id} has unknown category id {ann.category_id}; "
                    f"known: {sorted(self.categories)}"
                )
            check_box(ann.bbox, found)
            by_image[ann.image_id].append(ann)
        object.__setattr__(self, "_by_image", dict(by_image))

    def boxes_of(self, image_id: int) -> list[BoxAnnotation]:
        """The annotations of one image (empty when it has none)."""
        return list(self._by_image.get(image_id, []))

    def image_path(self, info: ImageInfo) -> Path:
        """Where an image's file is (needs ``image_root``)."""
        if self.image_root is None:
            raise AnnotationError("this dataset has no image folder; pass one to the reader")
        return self.image_root / info.file_name

    def with_annotations(
        self, annotations: list[BoxAnnotation], images: list[ImageInfo] | None = None
    ) -> DetectionDataset:
        """The same categories and image folder with other annotations (and, optionally, other images)."""
        return DetectionDataset(
            tuple(self.images if images is None else images),
            tuple(annotations),
            dict(self.categories),
            self.image_root,
        )

    def category_ids(self, names: list[str]) -> list[int]:
        """Category ids by name; an unknown name fails listing the known ones."""
        by_name = {name: cid for cid, name in self.categories.items()}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise AnnotationError(f"unknown categories {missing}; known: {sorted(by_name)}")
        return [by_name[n] for n in names]


def check_box(bbox: tuple[float, float, float, float], info: ImageInfo) -> None:
    """Refuse a box that is not finite, has no area, or lies outside its image (beyond :data:`BOX_SLACK`)."""
    x, y, w, h = bbox
    where = f"box {[x, y, w, h]} of image {info.id} ({info.file_name!r})"
    if not all(math.isfinite(v) for v in bbox):
        raise AnnotationError(f"{where} is not finite; fix the annotation")
    if w <= 0 or h <= 0:
        raise AnnotationError(f"{where} has no area (width and height must be > 0); fix or drop it")
    if x < -BOX_SLACK or y < -BOX_SLACK or x + w > info.width + BOX_SLACK or y + h > info.height + BOX_SLACK:
        raise AnnotationError(
            f"{where} is outside its {info.width}x{info.height} image; fix the box or the image size"
        )
