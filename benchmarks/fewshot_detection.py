"""Few-shot detection on Omniglot scenes: prototypes vs TFA vs baselines vs the oracle (issue 20).

Stages (each a separate call, so the two trainings can run side by side; results go to OUT/*.json):

    python benchmarks/fewshot_detection.py train  --out runs/fsdet --data-root ../shared/data/omniglot --which base
    python benchmarks/fewshot_detection.py train  --out runs/fsdet --data-root ../shared/data/omniglot --which oracle
    python benchmarks/fewshot_detection.py tune   --out runs/fsdet      # TFA's lr / steps on validation images
    python benchmarks/fewshot_detection.py eval   --out runs/fsdet      # prototypes + TFA, K = 1/5/10, 5 samples
    python benchmarks/fewshot_detection.py baselines --out runs/fsdet   # fine-tune all, K shots from scratch
    python benchmarks/fewshot_detection.py report --out runs/fsdet      # the markdown table

The benchmark is ``detect_omniglot_scenes`` as shipped (``--steps`` overrides the training budget).
The oracle is the same detector trained on the same canvases with the novel characters annotated.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import time
from pathlib import Path

import torch

from metadl.apps.detect.config import load_detect_config
from metadl.apps.detect.evaluate import evaluate_protocol
from metadl.apps.detect.experiment import (
    BenchmarkData,
    detect_all,
    detections_to_boxes,
    score,
    tensors,
    write_json,
)
from metadl.apps.detect.model import SavedDetector, load_detector, save_detector
from metadl.apps.detect.run import detector_spec, ensure_benchmark
from metadl.config import shipped_config
from metadl.evaluation.confidence import mean_ci95
from metadl.models.detection import CenterNetDetector, DetectorTrainer, FitSettings


def config(args: argparse.Namespace):  # noqa: ANN201 - a DetectConfig
    extra = [f"train.steps={args.steps}"] if args.steps else []
    return load_detect_config(shipped_config("detect_omniglot_scenes"), [*args.set, *extra])


def train(args: argparse.Namespace) -> None:
    cfg = dataclasses.replace(config(args), data=dataclasses.replace(config(args).data, root=args.data_root))
    bench = ensure_benchmark(cfg, args.out / "scenes")
    oracle = args.which == "oracle"
    classes = bench.class_ids if oracle else bench.base_ids
    data = tensors(bench.read("train_all" if oracle else "train_base"), bench)
    torch.manual_seed(cfg.seed)
    detector = CenterNetDetector(detector_spec(cfg, len(classes)))
    settings = FitSettings(
        cfg.train.steps, cfg.train.batch_size, cfg.train.lr, cfg.train.weight_decay, seed=cfg.seed
    )
    start = time.perf_counter()
    DetectorTrainer(detector, data, settings).run(
        lambda s, loss: print(f"{args.which} step {s} loss {loss:.3f} {time.perf_counter() - start:.0f}s", flush=True)
        if s % 50 == 0 else None
    )  # fmt: skip
    seconds = time.perf_counter() - start
    save_detector(
        SavedDetector(detector, [bench.categories[c] for c in classes], 128, 1), args.out / args.which
    )
    write_json(args.out / f"train_{args.which}.json", {"seconds": seconds, "steps": cfg.train.steps,
               "threads": torch.get_num_threads()})  # fmt: skip


TUNED = ("tfa", "tfa_imprinted")  # the recipes with a fine-tuning lr and step count


def tune(args: argparse.Namespace) -> None:
    """Each TFA variant's fine-tuning lr and steps, chosen by novel AP50 at K = 5 on the validation images."""
    cfg = config(args)
    bench, model = BenchmarkData.open(args.out / "scenes"), load_detector(args.out / "base")
    rows = []
    for lr in (0.001, 0.003, 0.01):
        for steps in (100, 300):
            trial = dataclasses.replace(
                cfg,
                finetune=dataclasses.replace(cfg.finetune, lr=lr, steps=steps),
                eval=dataclasses.replace(cfg.eval, shots=[5], samples=2, split="val"),
            )
            for result in evaluate_protocol(model, bench, trial, methods=TUNED).results:
                rows.append({"method": result.method, "lr": lr, "steps": steps,
                             "novel_ap50": result.novel.ap50, "base_ap50": result.base.ap50})  # fmt: skip
                print(rows[-1], flush=True)
    best = {m: max((r for r in rows if r["method"] == m), key=lambda r: r["novel_ap50"]) for m in TUNED}
    write_json(args.out / "tune.json", {"rows": rows, "best": best})


def evaluate(args: argparse.Namespace) -> None:
    """Prototypes and both TFA variants (each with its tuned lr / steps) at the K of ``--shots``."""
    cfg = config(args)
    best = json.loads((args.out / "tune.json").read_text())["best"]
    cfg = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, shots=args.shots or cfg.eval.shots))
    bench, model = BenchmarkData.open(args.out / "scenes"), load_detector(args.out / "base")
    reports = []
    for methods in (("prototype", "tfa"), ("tfa_imprinted",)):
        tuned = best[methods[-1]]
        run_cfg = dataclasses.replace(
            cfg, finetune=dataclasses.replace(cfg.finetune, lr=tuned["lr"], steps=tuned["steps"])
        )
        reports.append(evaluate_protocol(model, bench, run_cfg, methods=methods))
        print(reports[-1].summary(), flush=True)
    report = dataclasses.replace(reports[0], results=[r for rep in reports for r in rep.results])
    tag = "_".join(map(str, cfg.eval.shots))
    write_json(args.out / f"eval_{tag}.json", {"report": report.as_json(), "finetune": best})


def oracle(args: argparse.Namespace) -> None:
    """The oracle's base and novel AP on the test images."""
    bench = BenchmarkData.open(args.out / "scenes")
    truth = bench.read("test")
    found = detect_all(load_detector(args.out / "oracle").detector, tensors(truth, bench))
    scores = score(bench, truth, detections_to_boxes(found, truth, bench.class_ids, 128))
    write_json(args.out / "oracle.json", dataclasses.asdict(scores))


def baselines(args: argparse.Namespace) -> None:
    """Fine-tune everything from the base detector, and train from scratch, on the first
    ``--baseline-samples`` seeded K-shot samples (the eval stage's samples)."""
    cfg = config(args)
    bench = BenchmarkData.open(args.out / "scenes")
    truth = bench.read("test")
    test = tensors(truth, bench)
    base = load_detector(args.out / "base").detector
    rows = []
    for k, sample in itertools.product(args.baseline_shots, range(args.baseline_samples)):
        shots = tensors(bench.shots(k, cfg.eval.seed + sample), bench)
        for name in ("finetune_all", "scratch"):
            torch.manual_seed(sample)
            if name == "finetune_all":
                novel = torch.randn(len(bench.novel_ids), base.head.weight.shape[1])
                detector = base.with_head(base.head.with_classes(novel))
                settings = FitSettings(args.baseline_steps, 16, 5e-4, seed=0)
            else:
                detector = CenterNetDetector(detector_spec(cfg, len(bench.class_ids)))
                settings = FitSettings(args.baseline_steps, 16, cfg.train.lr, seed=0)
            start = time.perf_counter()
            DetectorTrainer(detector, shots, settings).run()
            found = detect_all(detector, test)
            s = score(bench, truth, detections_to_boxes(found, truth, bench.class_ids, 128))
            rows.append({"method": name, "shots": k, "sample": sample, "novel_ap50": s.novel.ap50,
                         "base_ap50": s.base.ap50, "seconds": time.perf_counter() - start})  # fmt: skip
            print(rows[-1], flush=True)
            write_json(args.out / "baselines.json", {"rows": rows, "steps": args.baseline_steps})


def summarise_values(values: list[float]) -> str:
    """``mean ± 95% CI`` of AP values in percent (just the mean for one value)."""
    if len(values) == 1:
        return f"{100 * values[0]:.1f}"
    mean, half = mean_ci95([100 * v for v in values])
    return f"{mean:.1f} ± {half:.1f}"


def report(args: argparse.Namespace) -> None:
    evals = [json.loads(p.read_text()) for p in sorted(args.out.glob("eval_*.json"))]
    lines = [
        "| method | K | novel AP50 | base AP50 | seconds to add the 20 classes |",
        "|---|---|---|---|---|",
    ]
    for r in sorted(
        (r for ev in evals for r in ev["report"]["results"]), key=lambda r: (r["method"], r["shots"])
    ):
        n, b = r["novel"], r["base"]
        lines.append(f"| {r['method']} | {r['shots']} | {100 * n['ap50']:.1f} ± {100 * n['ap50_ci95']:.1f} | "
                     f"{100 * b['ap50']:.1f} ± {100 * b['ap50_ci95']:.1f} | {r['adapt_seconds']:.2f} |")  # fmt: skip
    if (args.out / "baselines.json").is_file():
        rows = json.loads((args.out / "baselines.json").read_text())["rows"]
        for method, k in sorted({(r["method"], r["shots"]) for r in rows}):
            cell = [r for r in rows if (r["method"], r["shots"]) == (method, k)]
            novel, base = (summarise_values([r[key] for r in cell]) for key in ("novel_ap50", "base_ap50"))
            seconds = sum(r["seconds"] for r in cell) / len(cell)
            lines.append(f"| {method} ({len(cell)} sample(s)) | {k} | {novel} | {base} | {seconds:.0f} |")
    o = json.loads((args.out / "oracle.json").read_text())
    lines.append(
        f"| oracle (all novel boxes) | all | {100 * o['novel']['ap50']:.1f} | {100 * o['base']['ap50']:.1f} | |"
    )
    before = evals[0]["report"]["base_before"]
    lines.append(
        f"\nBase-only detector before adding classes: base AP50 {100 * before['ap50']:.1f}, AP {100 * before['ap']:.1f}."
    )
    for which in ("base", "oracle"):
        path = args.out / f"train_{which}.json"
        if path.is_file():
            t = json.loads(path.read_text())
            lines.append(
                f"Training ({which}): {t['steps']} steps in {t['seconds']:.0f} s ({t['threads']} thread(s))."
            )
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("stage", choices=["train", "tune", "eval", "oracle", "baselines", "report"])
    parser.add_argument("--out", type=Path, default=Path("runs/fsdet"))
    parser.add_argument("--data-root", default="../shared/data/omniglot")
    parser.add_argument("--which", choices=["base", "oracle"], default="base")
    parser.add_argument("--steps", type=int, help="training steps (default: the config's)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override the shipped config (e.g. scenes.base_per_alphabet=5), every stage alike")  # fmt: skip
    parser.add_argument("--baseline-steps", type=int, default=100)
    parser.add_argument("--baseline-shots", type=int, nargs="+", default=[1, 5, 10])
    parser.add_argument("--baseline-samples", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--shots", type=int, nargs="+", help="eval: these K only (default: the config's)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    {
        "train": train,
        "tune": tune,
        "eval": evaluate,
        "oracle": oracle,
        "baselines": baselines,
        "report": report,
    }[args.stage](args)


if __name__ == "__main__":
    main()
