"""The few-shot detection protocol on a COCO-format benchmark: the recipes and how they are scored.

Shared by ``metadl train/eval`` on ``detect_omniglot_scenes`` and ``benchmarks/fewshot_detection.py``:

- :class:`BenchmarkData`: a benchmark folder (``train_all.json``, ``train_base.json``, ``val.json``,
  ``test.json``, ``split.json``, written by :func:`metadl.data.detection.scenes.generate_scenes`, or
  any folder laid out the same way around VOC/COCO images);
- the recipes that add novel classes to a base detector: :func:`add_prototypes` (no gradient) and
  :func:`tfa_finetune` (cosine head on base + novel K shots, detector frozen); the baselines
  (fine-tune everything, train on the K shots from scratch) train a whole detector with
  :class:`metadl.models.detection.fit.DetectorTrainer`;
- :func:`score`: COCO AP / AP50 on base and on novel classes through pycocotools.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from metadl.data.detection.annotations import AnnotationError, DetectionDataset
from metadl.data.detection.coco import read_coco
from metadl.data.detection.fewshot import base_only, merge, sample_shots
from metadl.data.detection.tensors import DetectionTensors, load_tensors
from metadl.evaluation.detection import APResult, ScoredBox, coco_ap
from metadl.fileio import atomic_write_bytes
from metadl.models.detection.boxes import xyxy_to_xywh
from metadl.models.detection.detector import CenterNetDetector, Detections, DetectorOutput, decode_detections
from metadl.models.detection.fit import FitSettings, FrozenMaps, fit_head
from metadl.models.detection.heads import CosineHead
from metadl.models.detection.prototypes import PrototypeDetector
from metadl.validation import read_json


@dataclass(frozen=True)
class BenchmarkData:
    """A benchmark folder's annotation files and its base / novel category ids (in detector order)."""

    folder: Path
    base_ids: list[int]
    novel_ids: list[int]
    categories: dict[int, str]

    @classmethod
    def open(cls, folder: str | Path) -> BenchmarkData:
        folder = Path(folder)
        split_file = folder / "split.json"
        if not split_file.is_file():
            raise AnnotationError(
                f"{folder} has no split.json; generate the benchmark (metadl train detect_omniglot_scenes)"
            )
        split = read_json(split_file)
        ds = read_coco(folder / "train_all.json", check_files=False)
        return cls(folder, ds.category_ids(split["base"]), ds.category_ids(split["novel"]), ds.categories)

    @property
    def class_ids(self) -> list[int]:
        return self.base_ids + self.novel_ids

    def read(self, name: str) -> DetectionDataset:
        """``<name>.json`` of the folder (train_all, train_base, val, test)."""
        return read_coco(self.folder / f"{name}.json")

    def shots(self, k: int, seed: int, *, with_base: bool = True) -> DetectionDataset:
        """A seeded K-shot sample from ``train_all``: K boxes of each novel class (and, ``with_base``, of
        each base class too: TFA's balanced fine-tuning set)."""
        pool = self.read("train_all")
        novel = set(self.novel_ids)
        parts = [sample_shots(pool, novel, k, seed)]
        if with_base:
            parts.append(sample_shots(base_only(pool, novel), novel, k, seed, classes=set(self.base_ids)))
        return merge(*parts)


def detections_to_boxes(
    detections: list[Detections], ds: DetectionDataset, class_ids: list[int], image_size: int
) -> list[ScoredBox]:
    """Detections (in the detector's pixels and class indices) as COCO boxes of ``ds``'s images."""
    out = []
    for info, det in zip(ds.images, detections, strict=True):
        scale = torch.tensor([info.width / image_size, info.height / image_size] * 2)
        for box, score, label in zip(xyxy_to_xywh(det.boxes * scale).tolist(), det.scores.tolist(),
                                     det.labels.tolist(), strict=True):  # fmt: skip
            out.append(ScoredBox(info.id, class_ids[label], tuple(box), score))
    return out


def detect_maps(head: CosineHead, maps: FrozenMaps, image_size: int) -> list[Detections]:
    """Detections of a frozen detector's maps with ``head`` as its classifier."""
    out = DetectorOutput(head(maps.embeddings), maps.regression, maps.embeddings)
    with torch.no_grad():
        return decode_detections(out, torch.Size([image_size, image_size]), 100, 0.01, 0.5)


def detect_all(detector: CenterNetDetector, data: DetectionTensors, batch_size: int = 32) -> list[Detections]:
    """Detections of every image of ``data``, in mini-batches."""
    out: list[Detections] = []
    for start in range(0, len(data), batch_size):
        batch = data.select(list(range(start, min(start + batch_size, len(data)))))
        out += detector.eval().detect(batch.float_images())
    return out


@dataclass(frozen=True)
class Scores:
    """AP / AP50 on the base classes and on the novel classes."""

    base: APResult
    novel: APResult


def score(bench: BenchmarkData, truth: DetectionDataset, boxes: list[ScoredBox]) -> Scores:
    """COCO AP / AP50 of ``boxes`` on ``truth``, separately over base and novel classes."""
    return Scores(coco_ap(truth, boxes, bench.base_ids), coco_ap(truth, boxes, bench.novel_ids))


def add_prototypes(detector: CenterNetDetector, shots: DetectionTensors, n_base: int) -> CenterNetDetector:
    """The base detector with the novel classes of ``shots`` added as prototypes (no gradient step).

    ``shots`` labels count base classes first (0..n_base-1), novel after; only novel boxes are used.
    """
    images, boxes, labels = [], [], []
    for i in range(len(shots)):
        novel = shots.labels[i] >= n_base
        if novel.any():
            images.append(shots.images[i])
            boxes.append(shots.boxes[i][novel])
            labels.append(shots.labels[i][novel] - n_base)
    return PrototypeDetector(detector).adapt(torch.stack(images).float() / 255, boxes, labels)


def tfa_finetune(head: CosineHead, maps: FrozenMaps, shots: DetectionTensors, n_novel: int,
                 settings: FitSettings, novel_init: torch.Tensor | None = None) -> CosineHead:  # fmt: skip
    """TFA: a cosine head over base + novel classes (base rows from ``head``; novel rows random, as in
    TFA, or ``novel_init (n_novel, D)``, e.g. the prototypes: "imprinted" weights, Qi et al. 2018),
    fine-tuned on the K-shot set's frozen maps."""
    if novel_init is None:
        generator = torch.Generator().manual_seed(settings.seed)
        novel_init = torch.randn(n_novel, head.weight.shape[1], generator=generator)
    return fit_head(head.with_classes(novel_init), maps, shots, settings)


def write_json(path: Path, value: object) -> None:
    """A small JSON report (indented), written atomically."""
    atomic_write_bytes(path, json.dumps(value, indent=2).encode())


def tensors(
    ds: DetectionDataset, bench: BenchmarkData, image_size: int = 128, channels: int = 1
) -> DetectionTensors:
    """``ds`` as tensors with labels in the benchmark's class order (base, then novel)."""
    return load_tensors(ds, bench.class_ids, image_size=image_size, channels=channels)
