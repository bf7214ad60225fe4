"""Object-detection data: COCO and Pascal VOC readers, the few-shot split, the Omniglot-scenes benchmark."""

from __future__ import annotations

from metadl.data.detection.annotations import AnnotationError, BoxAnnotation, DetectionDataset, ImageInfo
from metadl.data.detection.coco import read_coco, write_coco
from metadl.data.detection.fewshot import base_only, merge, sample_shots
from metadl.data.detection.voc import read_voc

__all__ = [
    "AnnotationError",
    "BoxAnnotation",
    "DetectionDataset",
    "ImageInfo",
    "base_only",
    "merge",
    "read_coco",
    "read_voc",
    "sample_shots",
    "write_coco",
]
