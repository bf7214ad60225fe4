"""COCO-format annotation files: read (checked, bounded) and write (atomically).

The COCO object-detection format (https://cocodataset.org/#format-data) is a JSON object with
``images`` (``id, file_name, width, height``), ``annotations`` (``image_id, category_id, bbox: [x, y, w,
h]``, plus ``area``, ``iscrowd``, ``id``) and ``categories`` (``id, name``). The reader keeps what
detection needs; crowd regions (``iscrowd: 1``) are dropped, as the COCO few-shot splits do.

Example:
    >>> import json, tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> coco = {"images": [{"id": 1, "file_name": "a.png", "width": 32, "height": 32}],
    ...         "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [2, 2, 8, 8]}],
    ...         "categories": [{"id": 3, "name": "alpha"}]}
    >>> _ = (folder / "train.json").write_text(json.dumps(coco))
    >>> ds = read_coco(folder / "train.json", check_files=False)
    >>> ds.categories, len(ds.annotations)
    ({3: 'alpha'}, 1)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from metadl.data.detection.annotations import AnnotationError, BoxAnnotation, DetectionDataset, ImageInfo
from metadl.fileio import atomic_write_bytes
from metadl.validation import read_json

MAX_COCO_BYTES = 1 << 30  # the COCO 2017 train annotations are 448 MB


def _field(entry: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(entry, dict) or key not in entry:
        raise AnnotationError(f"{where} has no {key!r}; every entry needs one (see the COCO format)")
    value = entry[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise AnnotationError(f"{where}: {key} = {value!r} is not a {getattr(kind, '__name__', kind)}")
    return value


def coco_from_dict(
    raw: Any, *, source: str = "annotations", image_root: Path | None = None
) -> DetectionDataset:
    """A :class:`DetectionDataset` from a parsed COCO JSON object (``source`` names it in errors)."""
    if not isinstance(raw, dict):
        raise AnnotationError(f"{source} is not a JSON object with images, annotations and categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(raw.get(key), list):
            raise AnnotationError(
                f"{source} has no {key!r} list; a COCO file needs images, annotations, categories"
            )
    categories: dict[int, str] = {}
    for i, cat in enumerate(raw["categories"]):
        where = f"{source}: categories[{i}]"
        categories[_field(cat, "id", int, where)] = str(_field(cat, "name", str, where))
    images = []
    for i, img in enumerate(raw["images"]):
        where = f"{source}: images[{i}]"
        images.append(
            ImageInfo(
                _field(img, "id", int, where),
                _field(img, "file_name", str, where),
                _field(img, "width", int, where),
                _field(img, "height", int, where),
            )
        )
    annotations = []
    for i, ann in enumerate(raw["annotations"]):
        where = f"{source}: annotations[{i}]"
        if isinstance(ann, dict) and ann.get("iscrowd", 0):
            continue
        bbox = _field(ann, "bbox", list, where)
        if len(bbox) != 4 or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in bbox):
            raise AnnotationError(f"{where}: bbox = {bbox!r} is not four numbers [x, y, w, h]")
        x, y, w, h = (float(v) for v in bbox)
        annotations.append(
            BoxAnnotation(
                _field(ann, "image_id", int, where), _field(ann, "category_id", int, where), (x, y, w, h)
            )
        )
    try:
        return DetectionDataset(tuple(images), tuple(annotations), categories, image_root)
    except AnnotationError as err:
        raise AnnotationError(f"{source}: {err}") from None


def read_coco(
    path: str | Path, image_root: str | Path | None = None, *, check_files: bool = True
) -> DetectionDataset:
    """Read a COCO annotation file; images are looked up in ``image_root`` (default: the file's folder).

    The file's size is bounded before it is parsed; boxes outside their image, unknown categories and
    (with ``check_files``) images missing from ``image_root`` fail with one line naming the entry.
    """
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"annotation file {path} does not exist")
    try:
        raw = read_json(path, max_bytes=MAX_COCO_BYTES)
    except (ValueError, UnicodeDecodeError) as err:
        raise AnnotationError(f"{path} is not a usable JSON file: {err}") from None
    root = Path(image_root) if image_root is not None else path.parent
    ds = coco_from_dict(raw, source=str(path), image_root=root)
    if check_files:
        for info in ds.images:
            if not (root / info.file_name).is_file():
                raise AnnotationError(
                    f"{path}: image {info.id} file {info.file_name!r} is not in {root}; pass the image folder"
                )
    return ds


def coco_dict(ds: DetectionDataset) -> dict[str, Any]:
    """The COCO JSON object of a dataset (annotation ids 1..N in order, ``area`` = w * h)."""
    return {
        "images": [
            {"id": i.id, "file_name": i.file_name, "width": i.width, "height": i.height} for i in ds.images
        ],
        "annotations": [
            {
                "id": n,
                "image_id": a.image_id,
                "category_id": a.category_id,
                "bbox": list(a.bbox),
                "area": a.bbox[2] * a.bbox[3],
                "iscrowd": 0,
            }
            for n, a in enumerate(ds.annotations, start=1)
        ],
        "categories": [{"id": cid, "name": name} for cid, name in sorted(ds.categories.items())],
    }


def write_coco(ds: DetectionDataset, path: str | Path) -> None:
    """Write a dataset as a COCO annotation file, atomically."""
    atomic_write_bytes(path, json.dumps(coco_dict(ds)).encode())
