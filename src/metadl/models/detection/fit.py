"""Training the detector: one small run object for base training, fine-tuning and the baselines.

:class:`DetectorTrainer` owns the optimiser (AdamW, cosine schedule), the mini-batch generator and the
step count, and its whole state round-trips through :meth:`state_dict`, so a killed run resumes with
the same batches.

:func:`fit_head` is TFA's fine-tuning stage: the detector is frozen (eval mode, batch-norm statistics
too), so each image's embedding and box maps are computed once (:class:`FrozenMaps`) and only the
classification head learns on them, which makes fine-tuning cost a few milliseconds per step.

Example:
    >>> from metadl.data.detection.tensors import DetectionTensors
    >>> from metadl.models.detection.detector import CenterNetDetector, DetectorSpec
    >>> data = DetectionTensors(torch.zeros(2, 1, 32, 32, dtype=torch.uint8),
    ...                         [torch.tensor([[4.0, 4.0, 20.0, 20.0]])] * 2, [torch.tensor([0])] * 2, [1, 2])
    >>> trainer = DetectorTrainer(CenterNetDetector(DetectorSpec(1, hidden=4, dim=8)), data, FitSettings(steps=2, batch_size=2))
    >>> [round(trainer.step(), 1) > 0 for _ in range(2)], trainer.steps_done
    ([True, True], 2)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from metadl.data.detection.tensors import DetectionTensors
from metadl.models.detection.detector import CenterNetDetector
from metadl.models.detection.heads import CosineHead
from metadl.models.detection.loss import detection_loss, focal_loss, heatmap_targets


@dataclass(frozen=True)
class FitSettings:
    """``steps`` of AdamW on mini-batches of ``batch_size`` images, cosine-decayed from ``lr``."""

    steps: int
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or not self.lr > 0 or self.weight_decay < 0:
            raise ValueError(f"fit settings need steps, batch_size >= 1, lr > 0, weight_decay >= 0: {self}")


def _optimizer(
    params: list[torch.nn.Parameter], settings: FitSettings
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, settings.steps) / settings.steps))
    )
    return optimizer, schedule


class DetectorTrainer:
    """Trains ``detector`` on ``data`` (module docstring); call :meth:`step` ``settings.steps`` times."""

    def __init__(self, detector: CenterNetDetector, data: DetectionTensors, settings: FitSettings) -> None:
        if len(data) == 0:
            raise ValueError("no training images: the annotation file lists none")
        self.detector, self.data, self.settings = detector, data, settings
        self.params = [p for p in detector.parameters() if p.requires_grad]
        self.optimizer, self.schedule = _optimizer(self.params, settings)
        self.generator = torch.Generator().manual_seed(settings.seed)
        self.steps_done = 0

    def step(self) -> float:
        """One optimiser step on a random mini-batch; returns its loss."""
        self.detector.train()
        size = min(self.settings.batch_size, len(self.data))
        index = torch.randperm(len(self.data), generator=self.generator)[:size].tolist()
        batch = self.data.select(index)
        out = self.detector(batch.float_images())
        loss = detection_loss(out.logits, out.regression, batch.boxes, batch.labels).total
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 10.0)
        self.optimizer.step()
        self.schedule.step()
        self.steps_done += 1
        self.detector.eval()
        return float(loss.detach())

    def run(self, on_step: Callable[[int, float], None] | None = None) -> CenterNetDetector:
        """Train to ``settings.steps`` (from where it stands); ``on_step(step, loss)`` after each step."""
        while self.steps_done < self.settings.steps:
            loss = self.step()
            if on_step is not None:
                on_step(self.steps_done, loss)
        return self.detector

    def state_dict(self) -> dict[str, Any]:
        """Weights, optimiser, schedule, generator and step count (what a resumed run needs)."""
        return {
            "detector": self.detector.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "generator": self.generator.get_state(),
            "steps_done": self.steps_done,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.detector.load_state_dict(state["detector"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.generator.set_state(state["generator"])
        self.steps_done = int(state["steps_done"])


def fit(detector: CenterNetDetector, data: DetectionTensors, settings: FitSettings) -> CenterNetDetector:
    """Train ``detector`` in place for ``settings.steps`` steps and return it (in eval mode)."""
    return DetectorTrainer(detector, data, settings).run()


@dataclass(frozen=True)
class FrozenMaps:
    """A frozen detector's ``embeddings (N, D, h, w)`` and box ``regression (N, 4, h, w)`` for N images."""

    embeddings: torch.Tensor
    regression: torch.Tensor

    @classmethod
    @torch.no_grad()
    def compute(cls, detector: CenterNetDetector, data: DetectionTensors, batch_size: int = 32) -> FrozenMaps:
        detector.eval()
        emb, reg = [], []
        for start in range(0, len(data), batch_size):
            images = data.select(list(range(start, min(start + batch_size, len(data))))).float_images()
            e = detector.embed(images)
            emb.append(e)
            reg.append(detector.box(e))
        return cls(torch.cat(emb), torch.cat(reg))


def fit_head(head: CosineHead, maps: FrozenMaps, data: DetectionTensors, settings: FitSettings) -> CosineHead:
    """Train ``head`` in place on a frozen detector's maps of ``data`` (TFA's fine-tuning) and return it."""
    params = list(head.parameters())
    optimizer, schedule = _optimizer(params, settings)
    generator = torch.Generator().manual_seed(settings.seed)
    size = (maps.embeddings.shape[2], maps.embeddings.shape[3])
    targets = torch.stack(
        [
            heatmap_targets(b, lab, head.n_classes, size)
            for b, lab in zip(data.boxes, data.labels, strict=True)
        ]
    )  # the detector is frozen: every image's targets are computed once
    counts = torch.tensor([len(b) for b in data.boxes])
    for _ in range(settings.steps):
        index = torch.randperm(len(data), generator=generator)[: settings.batch_size]
        loss = focal_loss(head(maps.embeddings[index]), targets[index], int(counts[index].sum()))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return head
