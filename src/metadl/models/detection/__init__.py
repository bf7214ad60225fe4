"""Few-shot object detection: box operations, a CenterNet-style detector, its heads, loss and training."""

from __future__ import annotations

from metadl.models.detection.detector import CenterNetDetector, Detections, DetectorSpec
from metadl.models.detection.fit import DetectorTrainer, FitSettings, fit
from metadl.models.detection.heads import CosineHead
from metadl.models.detection.prototypes import PrototypeDetector

__all__ = [
    "CenterNetDetector",
    "CosineHead",
    "Detections",
    "DetectorSpec",
    "DetectorTrainer",
    "FitSettings",
    "PrototypeDetector",
    "fit",
]
