"""``metadl detect``: add classes to a saved detector from a few annotated boxes, then detect in a folder.

The support is a COCO annotation file (images next to it): each of its categories becomes a new class
of the detector through prototypes (no gradient step, :class:`metadl.models.detection.PrototypeDetector`);
the detector's own classes stay as they were. Every image of ``--images`` is read like the training
images (grey or RGB, resized to the model's input side), and boxes are given back in the image's own
pixels as COCO ``[x, y, w, h]``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageDraw

from metadl.apps.detect.model import SavedDetector
from metadl.data.detection.annotations import AnnotationError
from metadl.data.detection.coco import read_coco
from metadl.data.detection.tensors import load_tensors
from metadl.data.image_folder import IMAGE_EXTENSIONS
from metadl.data.image_folder import _load as load_image
from metadl.models.detection.boxes import xyxy_to_xywh
from metadl.models.detection.prototypes import PrototypeDetector


@dataclass(frozen=True)
class Detection:
    """One box: COCO ``bbox [x, y, w, h]`` in the image's pixels, the class name and the score."""

    bbox: list[float]
    label: str
    score: float


@dataclass(frozen=True)
class ImageDetections:
    """The detections of one image file."""

    file: str
    detections: list[Detection]

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def adapt_to_support(model: SavedDetector, support: str | Path) -> SavedDetector:
    """The model with the categories of the COCO file ``support`` added as prototype classes."""
    ds = read_coco(support)
    if not ds.annotations:
        raise AnnotationError(f"{support} has no boxes; annotate at least one box of each new class")
    clash = sorted(set(ds.categories.values()) & set(model.class_names))
    if clash:
        raise AnnotationError(f"{support}: categories {clash} are already classes of the model; rename them")
    used = sorted({a.category_id for a in ds.annotations})
    unused = sorted(set(ds.categories) - set(used))
    if unused:
        raise AnnotationError(
            f"{support}: categories {[ds.categories[c] for c in unused]} have no box; add one each"
        )
    data = load_tensors(ds, used, image_size=model.image_size, channels=model.channels)
    adapted = PrototypeDetector(model.detector).adapt(data.float_images(), data.boxes, data.labels)
    return SavedDetector(
        adapted, model.class_names + [ds.categories[c] for c in used], model.image_size, model.channels
    )


def image_files(folder: str | Path) -> list[Path]:
    """The image files directly in ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AnnotationError(f"--images {folder} is not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise AnnotationError(f"--images {folder} holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def detect_files(
    model: SavedDetector, files: list[Path], *, score_threshold: float = 0.3, batch_size: int = 16
) -> list[ImageDetections]:
    """Detections for each file (boxes above ``score_threshold``, in the file's own pixels)."""
    out = []
    side = model.image_size
    for start in range(0, len(files), batch_size):
        chunk = files[start : start + batch_size]
        try:
            pixels = torch.stack([torch.tensor(load_image(f, side, model.channels)) for f in chunk])
        except ValueError as err:
            raise AnnotationError(str(err)) from None
        found = model.detector.eval().detect(pixels.float() / 255, score_threshold=score_threshold)
        for file, det in zip(chunk, found, strict=True):
            with Image.open(file) as img:
                width, height = img.size
            scale = torch.tensor([width / side, height / side] * 2)
            boxes = xyxy_to_xywh(det.boxes * scale).tolist()
            out.append(
                ImageDetections(
                    file.name,
                    [
                        Detection([round(v, 2) for v in box], model.class_names[label], round(score, 4))
                        for box, label, score in zip(
                            boxes, det.labels.tolist(), det.scores.tolist(), strict=True
                        )
                    ],
                )
            )
    return out


def draw_detections(source: Path, found: ImageDetections, out: Path) -> Path:
    """``out/<stem>.png``: the image with its boxes, labels and scores drawn in colour."""
    out.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as img:
        canvas = img.convert("RGB")
    pen = ImageDraw.Draw(canvas)
    for det in found.detections:
        x, y, w, h = det.bbox
        pen.rectangle([x, y, x + w, y + h], outline=(255, 40, 40), width=max(1, canvas.width // 200))
        pen.text((x + 1, max(0.0, y - 11)), f"{det.label} {det.score:.2f}", fill=(255, 220, 0))
    target = out / f"{source.stem}.png"
    canvas.save(target)
    return target
