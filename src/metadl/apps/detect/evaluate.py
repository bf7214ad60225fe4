"""``metadl eval`` on a detection run: the few-shot protocol over seeded K-shot samples.

For each K and each of ``samples`` seeded K-shot samples (seed ``eval.seed + i``), novel classes are
added to the base-trained detector two ways, both without touching the detector's weights:

- ``prototype``: the novel classes' prototypes appended to the cosine head (no gradient step);
- ``tfa``: a cosine head over base + novel classes fine-tuned on the K-shot set (base K shots too)
  with the detector frozen (TFA; novel rows start random);
- ``tfa_imprinted``: the same fine-tuning started from the prototypes as novel rows (imprinted
  weights, Qi et al. 2018), so it begins where ``prototype`` ends.

Each is scored by COCO AP / AP50 on the base and on the novel classes of the test (or validation)
images, reported as mean ± 95% CI over the samples; ``base_before`` is the base-only detector's base
AP, so ``base_before - base`` is the forgetting TFA measures.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from metadl.apps.detect.config import DetectConfig, load_detect_config
from metadl.apps.detect.experiment import (
    BenchmarkData,
    Scores,
    add_prototypes,
    detect_maps,
    detections_to_boxes,
    score,
    tensors,
    tfa_finetune,
)
from metadl.apps.detect.model import SavedDetector, load_detector, model_file
from metadl.apps.detect.run import benchmark_folder
from metadl.config import ConfigError
from metadl.evaluation.detection import APResult, APSummary, summarise
from metadl.models.detection import FitSettings
from metadl.models.detection.fit import FrozenMaps
from metadl.training.runfolder import CONFIG_FILE

METHODS = ("prototype", "tfa", "tfa_imprinted")


@dataclass(frozen=True)
class ShotResult:
    """One method at one K: novel and base AP summaries over the samples, and seconds per adaptation."""

    method: str
    shots: int
    novel: APSummary
    base: APSummary
    adapt_seconds: float


@dataclass(frozen=True)
class DetectEvalReport:
    """The base-only detector's base AP and one :class:`ShotResult` per method and K."""

    split: str
    base_before: APResult
    results: list[ShotResult]

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        lines = [
            f"base-only detector on {self.split}: base AP50 {100 * self.base_before.ap50:.1f}, AP {100 * self.base_before.ap:.1f}"
        ]
        for r in self.results:
            lines.append(
                f"{r.method:9s} K={r.shots:<2d} novel AP50 {100 * r.novel.ap50:5.1f} ± {100 * r.novel.ap50_ci95:4.1f}"
                f"  base AP50 {100 * r.base.ap50:5.1f} ± {100 * r.base.ap50_ci95:4.1f}  (n={r.novel.n}, "
                f"{r.adapt_seconds:.2f} s to add the classes)"
            )
        return "\n".join(lines)


def evaluate_protocol(
    model: SavedDetector, bench: BenchmarkData, cfg: DetectConfig, *, methods: tuple[str, ...] = METHODS
) -> DetectEvalReport:
    """Run the protocol of the module docstring for ``cfg.eval`` (shots, samples, seed, split)."""
    truth = bench.read(cfg.eval.split)
    test = tensors(truth, bench, model.image_size, model.channels)
    detector = model.detector.eval()
    maps = FrozenMaps.compute(detector, test)
    size = model.image_size
    base_boxes = detections_to_boxes(detect_maps(detector.head, maps, size), truth, bench.base_ids, size)
    before = score(bench, truth, base_boxes).base
    n_base, n_novel = len(bench.base_ids), len(bench.novel_ids)
    ft = cfg.finetune
    results = []
    for k in cfg.eval.shots:
        scores: dict[str, list[Scores]] = {m: [] for m in methods}
        seconds: dict[str, float] = {m: 0.0 for m in methods}
        for i in range(cfg.eval.samples):
            shots = tensors(bench.shots(k, cfg.eval.seed + i), bench, size, model.channels)
            for method in methods:
                start = time.perf_counter()
                if method == "prototype":
                    head = add_prototypes(detector, shots, n_base).head
                else:
                    settings = FitSettings(
                        steps=ft.steps, batch_size=ft.batch_size, lr=ft.lr, seed=cfg.eval.seed + i
                    )
                    init = None
                    if method == "tfa_imprinted":
                        init = add_prototypes(detector, shots, n_base).head.weight[n_base:].detach()
                    head = tfa_finetune(
                        detector.head, FrozenMaps.compute(detector, shots), shots, n_novel, settings, init
                    )
                seconds[method] += time.perf_counter() - start
                boxes = detections_to_boxes(detect_maps(head, maps, size), truth, bench.class_ids, size)
                scores[method].append(score(bench, truth, boxes))
        for method in methods:
            results.append(
                ShotResult(
                    method, k, summarise([s.novel for s in scores[method]]), summarise([s.base for s in scores[method]]),
                    seconds[method] / cfg.eval.samples,
                )
            )  # fmt: skip
    return DetectEvalReport(cfg.eval.split, before, results)


def evaluate_run(target: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> DetectEvalReport:
    """Evaluate a detection run folder (its model and config; ``overrides`` like ``eval.shots=[5]``)."""
    run_dir = model_file(target).parent.parent
    config = run_dir / CONFIG_FILE
    if not config.is_file():
        raise ConfigError(f"{run_dir} has no {CONFIG_FILE}; evaluate a detection run folder")
    cfg = load_detect_config(config, overrides)
    return evaluate_protocol(load_detector(target), BenchmarkData.open(benchmark_folder(cfg, run_dir)), cfg)
